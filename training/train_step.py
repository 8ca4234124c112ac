"""The per-phase training steps (Gmain, Greg, Dmain, Dreg, or Gboth/Dboth) as tf.functions under a strategy.

One call = one optimiser step of one phase on one global batch:
  cross-replica: draw the global random inputs from the checkpointed RNG;
  each replica:  take its strided share, compute objective and gradients (optionally XLA-compiled),
                 all-reduce gradients and statistics (tf.distribute's collective, not our own);
  cross-replica: skip the update if anything is non-finite, else Adam; update pl_mean / w_avg.
"""

import tensorflow as tf

from training.loss import draw_generator_inputs, slice_replica

SUM = tf.distribute.ReduceOp.SUM


class TrainSteps:
    def __init__(self, strategy, G, D, G_opt, D_opt, loss, state, batch_size, xla=False):
        self.strategy, self.G, self.D, self.G_opt, self.D_opt = strategy, G, D, G_opt, D_opt
        self.loss, self.state, self.batch_size = loss, state, int(batch_size)
        self.num_replicas = strategy.num_replicas_in_sync
        if self.batch_size % self.num_replicas:
            raise ValueError(f"batch {batch_size} is not divisible by {self.num_replicas} replicas")
        shrink = loss.pl_batch_shrink
        if (self.batch_size // self.num_replicas) % shrink and loss.pl_weight > 0:
            raise ValueError(f"per-replica batch {self.batch_size // self.num_replicas} is not divisible by "
                             f"pl_batch_shrink={shrink}")
        self.phases = loss.phases()
        # XLA compiles the per-replica compute alone (a nested tf.function), which may not hold a cross-replica
        # all-reduce: with XLA and several replicas the pl running mean uses each replica's own batch.
        self.sync_pl = not (xla and self.num_replicas > 1)
        self._compute = {p: (tf.function(self._make_compute(p), jit_compile=True) if xla else self._make_compute(p))
                         for p, _ in self.phases}
        self._step = {p: tf.function(self._make_step(p)) for p, _ in self.phases}
        self._ema = tf.function(self._ema_step)

    def __call__(self, phase, reals, real_c):
        """Run one phase; returns dict of Python floats (tag -> mean, 'finite', 'pl_mean', ...)."""
        out = self._step[phase](reals, real_c)
        return {k: float(v) for k, v in out.items()}

    def ema(self, G_ema, beta):
        self._ema(G_ema, tf.constant(beta, tf.float32))

    # ------------------------------------------------------------------------------------------

    def _module(self, phase):
        return (self.G, self.G_opt) if phase.startswith("G") else (self.D, self.D_opt)

    def _make_compute(self, phase):
        module, _ = self._module(phase)
        loss, B, sync_pl = self.loss, self.batch_size, self.sync_pl

        def compute(inp, reals, real_c, pl_mean, scale):
            variables = module.trainable_variables
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(variables)
                objective, stats = loss.phase_objective(phase, inp, reals, real_c, B, pl_mean, sync_pl=sync_pl)
                scaled = objective * scale
            grads = tape.gradient(scaled, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]
            return grads, objective, stats

        return compute

    def _make_step(self, phase):
        module, opt = self._module(phase)
        G, loss, state, B = self.G, self.loss, self.state, self.batch_size
        compute = self._compute[phase]
        need_pl = phase in ("Greg", "Gboth")
        track_w = phase in ("Gmain", "Gboth") and getattr(G.mapping, "w_avg_beta", None) is not None

        def replica_fn(inputs, reals, real_c, pl_mean, scale):
            ctx = tf.distribute.get_replica_context()
            inp = slice_replica(inputs, ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync)
            if G.c_dim > 0:
                inp["c"] = real_c  # generated volumes take the labels of this replica's reals
            grads, objective, stats = compute(inp, reals, real_c, pl_mean, scale)
            pl_new = stats.pop("pl_mean_new", pl_mean)
            sums = {k: v[0] for k, v in stats.items()}
            counts = {k: float(v[1]) for k, v in stats.items()}
            extra = {"objective": objective}
            if track_w:
                extra["w_sum"] = tf.reduce_sum(G.mapping(inp["z"], inp["c"] if G.c_dim else None)[:, 0], axis=0)
            if ctx.num_replicas_in_sync > 1:
                grads, sums, extra = ctx.all_reduce(SUM, (grads, sums, extra))
            means = {k: sums[k] / counts[k] for k in sums}
            return grads, means, extra, pl_new

        def step(reals, real_c):
            inputs = draw_generator_inputs(state.rng, G, B, style_mixing_prob=loss.style_mixing_prob,
                                           with_pl_noise=need_pl)
            scale = state.loss_scale.scale.read_value()
            result = self.strategy.run(replica_fn, args=(inputs, reals, real_c, state.pl_mean.read_value(), scale))
            grads, means, extra, pl_new = [self._first_local(x) for x in result]
            grads = [g / scale for g in grads]
            grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            loss_finite = tf.reduce_all([tf.math.is_finite(v) for v in [extra["objective"], *means.values()]])
            finite = tf.logical_and(grads_finite, loss_finite)
            if finite:
                opt.apply(grads, module.trainable_variables)
                if need_pl:
                    state.pl_mean.assign(pl_new)
                if track_w:
                    G.mapping.update_w_avg((extra["w_sum"] / B)[None])
            state.loss_scale.update(grads_finite)
            out = dict(means)
            out["objective"] = extra["objective"]
            out["grads_finite"] = tf.cast(grads_finite, tf.float32)
            out["loss_finite"] = tf.cast(loss_finite, tf.float32)
            return out

        return step

    def _first_local(self, value):
        # After an all-reduce every replica holds the same values: take this worker's first copy.
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], value)

    def _ema_step(self, G_ema, beta):
        from training.train_state import update_ema

        update_ema(G_ema, self.G, beta)
