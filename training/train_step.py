"""The per-phase training steps (Gmain, Greg, Dmain, Dreg, or Gboth/Dboth) as tf.functions under a strategy.

One call = one optimiser step of one phase on one global batch:
  cross-replica: draw the global random inputs from the checkpointed RNG;
  each replica:  take its strided share, compute objective and gradients (optionally XLA-compiled),
                 all-reduce gradients and statistics (tf.distribute's collective, not our own);
  cross-replica: skip the update if anything is non-finite, else Adam; update pl_mean / w_avg.
With batch_gpu below the per-replica batch, each replica sums its gradients over rounds of batch_gpu samples
(gradient accumulation) before the all-reduce; the result is the full-batch step's (see _accumulate).
With recompute, conv layers keep only their inputs (training.networks.recompute_layers) and the phase's loss terms
take their gradients one after another (compute), so one term's activations live at a time.
"""

import contextlib

import tensorflow as tf

from training.augment import augment_inputs
from training.loss import draw_generator_inputs, merge_stats, slice_replica
from training.networks import recompute_layers

SUM = tf.distribute.ReduceOp.SUM


class TrainSteps:
    def __init__(self, strategy, G, D, G_opt, D_opt, loss, state, batch_size, xla=False, batch_gpu=None,
                 recompute=False):
        self.strategy, self.G, self.D, self.G_opt, self.D_opt = strategy, G, D, G_opt, D_opt
        self.loss, self.state, self.batch_size = loss, state, int(batch_size)
        self.num_replicas = strategy.num_replicas_in_sync
        if self.batch_size % self.num_replicas:
            raise ValueError(f"batch {batch_size} is not divisible by {self.num_replicas} replicas")
        # Gradient accumulation: each replica runs `rounds` rounds of batch_gpu samples, then one optimiser step.
        per_replica = self.batch_size // self.num_replicas
        self.batch_gpu = min(int(batch_gpu or per_replica), per_replica)
        if self.batch_gpu < 1 or per_replica % self.batch_gpu:
            raise ValueError(f"per-device batch {batch_gpu} does not divide the per-replica batch {per_replica} "
                             f"(batch {batch_size} over {self.num_replicas} replicas)")
        self.rounds = per_replica // self.batch_gpu
        self.recompute = bool(recompute)  # recompute block activations in the backward pass (less memory)
        shrink = loss.pl_batch_shrink
        if self.batch_gpu % shrink and loss.pl_weight > 0:
            raise ValueError(f"per-device batch {self.batch_gpu} (batch {batch_size} over {self.num_replicas} "
                             f"replicas in {self.rounds} rounds) is not divisible by pl_batch_shrink={shrink}")
        self.phases = loss.phases()
        # XLA compiles the per-replica compute alone (a nested tf.function), which may not hold a cross-replica
        # all-reduce: with XLA and several replicas the pl running mean uses each replica's own batch.
        self.sync_pl = not (xla and self.num_replicas > 1)
        # autograph=False: the steps hold no Python control flow on tensors (the one conditional is an explicit
        # tf.cond), so converting every network and loss function they call would only add tracing time.
        self._compute = {p: (tf.function(self._make_compute(p), jit_compile=True, autograph=False) if xla
                             else self._make_compute(p)) for p, _ in self.phases}
        self._step = {p: tf.function(self._make_step(p), autograph=False) for p, _ in self.phases}
        self._ema = tf.function(self._ema_step, autograph=False)

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

        def term_gradients(term, variables, scale):
            # Only ever switched on here: an outer recompute_layers() stays in force.
            with tf.GradientTape(watch_accessed_variables=False) as tape, \
                    recompute_layers() if self.recompute else contextlib.nullcontext():
                tape.watch(variables)
                objective, stats = term()
                scaled = objective * scale
            grads = tape.gradient(scaled, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]
            return grads, objective, stats

        def compute(inp, reals, real_c, pl_mean, scale, pl_batch_mean=None):
            variables = module.trainable_variables
            args = (phase, inp, reals, real_c, B, pl_mean, sync_pl, pl_batch_mean)
            if not self.recompute:
                return term_gradients(lambda: loss.phase_objective(*args), variables, scale)
            terms = loss.phase_terms(*args)
            # Saving memory: the terms (G main / path length, D on fakes / on reals / R1) one after another, each
            # term's forward starting only when the previous term's gradients exist, so one term's activations
            # live at a time instead of the sum of all (the graph would otherwise run independent terms at once).
            grads, objective, stats = term_gradients(terms[0], variables, scale)
            for term in terms[1:]:
                with tf.control_dependencies(grads):
                    more, part, part_stats = term_gradients(term, variables, scale)
                grads = [a + b for a, b in zip(grads, more, strict=True)]
                objective += part
                merge_stats(stats, part_stats)
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
            if self.rounds == 1:
                grads, objective, stats = compute(inp, reals, real_c, pl_mean, scale)
            else:
                grads, objective, stats = self._accumulate(phase, compute, inp, reals, real_c, pl_mean, scale)
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
            inputs.update(augment_inputs(getattr(loss, "augment_pipe", None), phase, B))
            scale = state.loss_scale.scale.read_value()
            result = self.strategy.run(replica_fn, args=(inputs, reals, real_c, state.pl_mean.read_value(), scale))
            grads, means, extra, pl_new = [self._first_local(x) for x in result]
            grads = [g / scale for g in grads]
            grads_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            loss_finite = tf.reduce_all([tf.math.is_finite(v) for v in [extra["objective"], *means.values()]])
            finite = tf.logical_and(grads_finite, loss_finite)

            def update():
                opt.apply(grads, module.trainable_variables)
                if need_pl:
                    state.pl_mean.assign(pl_new)
                if track_w:
                    G.mapping.update_w_avg((extra["w_sum"] / B)[None])
                return tf.constant(True)

            tf.cond(finite, update, lambda: tf.constant(False))
            state.loss_scale.update(grads_finite)
            out = dict(means)
            out["objective"] = extra["objective"]
            out["grads_finite"] = tf.cast(grads_finite, tf.float32)
            out["loss_finite"] = tf.cast(loss_finite, tf.float32)
            return out

        return step

    def _accumulate(self, phase, compute, inp, reals, real_c, pl_mean, scale):
        """compute() summed over the rounds of this replica's share: gradients, objective and stats sums.

        Round k takes samples k, k + rounds, ... of the share (strided, as replicas do), so minibatch-std groups
        and the path-length head are the ones of a full-batch step whenever the group size divides batch_gpu.
        The rounds run one after another (while_loop, parallel_iterations=1): only one round's activations live.
        """
        K, shrink = self.rounds, self.loss.pl_batch_shrink

        def share(k):
            part = slice_replica({**inp, "_reals": reals, "_real_c": real_c}, k, K)
            return part.pop("_reals"), part.pop("_real_c"), part

        def loop(body, init):
            return tf.while_loop(lambda k, *_: k < K, body, (tf.constant(1), *init), parallel_iterations=1)[1:]

        pl_batch_mean = None
        if phase in ("Greg", "Gboth") and self.loss.pl_weight > 0:
            # pl_mean moves by the mean over the whole batch, as in one full-batch step: a first pass over the
            # rounds measures the lengths (first order only) before the penalty's gradients are taken.
            def lengths(k, total):
                with recompute_layers() if self.recompute else contextlib.nullcontext():
                    return k + 1, total + tf.reduce_sum(self.loss.pl_lengths(share(k)[2]))

            (total,) = loop(lengths, (lengths(0, 0.0)[1],))
            ctx = tf.distribute.get_replica_context()
            count = self.batch_size // shrink
            if ctx.num_replicas_in_sync > 1:
                if self.sync_pl:
                    total = ctx.all_reduce(SUM, total)
                else:
                    count = self.batch_size // self.num_replicas // shrink
            pl_batch_mean = total / count

        r_reals, r_c, part = share(0)
        grads, objective, stats = compute(part, r_reals, r_c, pl_mean, scale, pl_batch_mean)
        extra = {k: v for k, v in stats.items() if not isinstance(v, tuple)}  # pl_mean_new: the same every round
        counts = {k: v[1] for k, v in stats.items() if isinstance(v, tuple)}
        sums = {k: v[0] for k, v in stats.items() if isinstance(v, tuple)}

        def add(k, grads, objective, sums):
            r_reals, r_c, part = share(k)
            g, obj, st = compute(part, r_reals, r_c, pl_mean, scale, pl_batch_mean)
            return (k + 1, [a + b for a, b in zip(grads, g, strict=True)], objective + obj,
                    {t: sums[t] + st[t][0] for t in sums})

        grads, objective, sums = loop(add, (grads, objective, sums))
        return grads, objective, {**{k: (sums[k], counts[k]) for k in sums}, **extra}

    def _first_local(self, value):
        # After an all-reduce every replica holds the same values: take this worker's first copy.
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], value)

    def _ema_step(self, G_ema, beta):
        from training.train_state import update_ema

        update_ema(G_ema, self.G, beta)
