"""StyleGAN2 losses and regularisers for 3D volumes (NDHWC).

G: non-saturating logistic, softplus(-D(G(z))), plus path-length regularisation.
D: logistic, softplus(D(G(z))) + softplus(-D(x)), plus R1 on reals and/or R2 on fakes.

Everything random (latents, mixing cutoff, noise maps, path-length directions) is drawn by the caller
from one checkpointed tf.random.Generator and passed in, so a resumed run continues the exact stream
and replicas of a tf.distribute strategy see slices of the same global draw.

Per-sample terms come back unreduced; `phase_objective` sums them and divides by the *global* count, so
summing replica gradients (tf.distribute) equals the single-device mean.
"""

import math

import tensorflow as tf

from dnnlib.ops.modulated_conv3d import NOISE_SCOPE, modulation_of_activations

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


def draw_generator_inputs(rng, G, batch, c=None, style_mixing_prob=0.0, with_pl_noise=False):
    """One global draw for `batch` generated volumes: z, mixing latents/cutoff, noise maps (and pl directions)."""
    num_ws = G.num_ws
    out = {"z": rng.normal([batch, G.z_dim]), "z_mix": rng.normal([batch, G.z_dim])}
    # As StyleGAN2: one cutoff per batch in [1, num_ws); with prob 1-p no mixing (cutoff = num_ws).
    cutoff = rng.uniform([], 1, num_ws, dtype=tf.int32) if num_ws > 1 else tf.constant(num_ws, tf.int32)
    coin = rng.uniform([])
    out["cutoff"] = tf.where(coin < style_mixing_prob, cutoff, num_ws)
    with tf.name_scope(NOISE_SCOPE):
        out["noise"] = [rng.normal([batch, *s[1:]]) for s in G.synthesis.noise_shapes]
    if with_pl_noise:
        d, h, w = G.img_shape
        out["pl_noise"] = rng.normal([batch, d, h, w, G.img_channels]) / math.sqrt(d * h * w)
    out["c"] = tf.zeros([batch, 0]) if c is None else c
    return out


def slice_replica(inputs, replica_id, num_replicas):
    """This replica's share of a global draw: samples replica_id, replica_id + R, ... (strided).

    Strided (not contiguous) slicing keeps minibatch-stddev groups identical to a single device
    (networks.minibatch_stddev groups sample i with i mod N/g), so R replicas match one device exactly.
    """
    if num_replicas == 1:
        return inputs

    def take(x):
        if not isinstance(x, tf.Tensor) or x.shape.rank == 0:
            return x
        n = x.shape[0] // num_replicas
        return tf.gather(x, replica_id + num_replicas * tf.range(n))

    return {k: ([take(v) for v in val] if isinstance(val, list) else take(val)) for k, val in inputs.items()}


class StyleGAN2Loss:
    """The terms of StyleGAN2's loss on a (G, D) pair; stateless apart from reading pl_mean."""

    def __init__(self, G, D, r1_gamma=10.0, r2_gamma=0.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2,
                 style_mixing_prob=0.9, G_reg_interval=4, D_reg_interval=16, augment_pipe=None):
        self.G, self.D = G, D
        self.r1_gamma, self.r2_gamma = float(r1_gamma), float(r2_gamma)
        self.pl_weight, self.pl_decay = float(pl_weight), float(pl_decay)
        self.pl_batch_shrink = max(1, int(pl_batch_shrink))
        self.style_mixing_prob = float(style_mixing_prob)
        self.G_reg_interval = int(G_reg_interval or 0)
        self.D_reg_interval = int(D_reg_interval or 0)
        # training.augment.AugmentPipe or None; its per-sample parameters arrive in inp["aug_fake"/"aug_real"].
        self.augment_pipe = augment_pipe

    # --- forward passes -------------------------------------------------------------------------

    def mapping(self, z, c, z_mix=None, cutoff=None):
        """ws [N,num_ws,w_dim]; layers >= cutoff take the styles of z_mix (style-mixing regularisation)."""
        ws = self.G.mapping(z, c if self.G.c_dim else None)
        if z_mix is not None and cutoff is not None:
            ws_mix = self.G.mapping(z_mix, c if self.G.c_dim else None)
            mask = (tf.range(self.G.num_ws) >= cutoff)[None, :, None]
            ws = tf.where(mask, ws_mix, ws)
        return ws

    def run_G(self, inp, ws=None):
        if ws is None:
            ws = self.mapping(inp["z"], inp["c"], inp.get("z_mix"), inp.get("cutoff"))
        noise = [n[..., None] if n.shape.rank == 4 else n for n in inp["noise"]] or None
        img = self.G.synthesis(ws, noise=noise) if noise else self.G.synthesis(ws, noise_mode="none")
        return img, ws

    def run_D(self, img, c, aug=None):
        if aug is not None and self.augment_pipe is not None:
            img = self.augment_pipe(img, aug)  # differentiable: G and R1 take their gradients through it
        return self.D(img, c if self.D.c_dim else None)

    # --- terms (per sample, unweighted) ----------------------------------------------------------

    def g_main(self, inp):
        """Non-saturating logistic G loss softplus(-D(G(z))) per sample, and the fake logits."""
        img, _ = self.run_G(inp)
        logits = self.run_D(img, inp["c"], inp.get("aug_fake"))[:, 0]
        return tf.nn.softplus(-logits), logits

    def path_lengths(self, inp):
        """|J_w^T y|: y ~ N(0, I)/sqrt(D*H*W), gradient wrt all ws, squared-summed over w_dim, mean over num_ws."""
        ws = self.mapping(inp["z"], inp["c"], inp.get("z_mix"), inp.get("cutoff"))
        with tf.GradientTape() as tape:
            tape.watch(ws)
            with modulation_of_activations():  # the cheaper form for a gradient wrt the styles alone
                img, _ = self.run_G(inp, ws=ws)
            proj = tf.reduce_sum(img * inp["pl_noise"])
        grads = tape.gradient(proj, ws)
        return tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))

    def d_fake_logits(self, inp):
        """D's logits of generated volumes (no gradient into G)."""
        fake, _ = self.run_G(inp)
        return self.run_D(tf.stop_gradient(fake), inp["c"], inp.get("aug_fake"))[:, 0]

    def grad_penalty(self, img, c, aug=None):
        """|dD(x)/dx|^2 summed over ALL non-batch axes (D, H, W, C); the original dropped one axis for 5-D."""
        with tf.GradientTape() as tape:
            tape.watch(img)
            logits = self.run_D(img, c, aug)  # w.r.t. the volume before augmentation (StyleGAN2-ADA)
            total = tf.reduce_sum(logits)
        g = tape.gradient(total, img)
        return tf.reduce_sum(tf.square(g), axis=list(range(1, g.shape.rank))), logits[:, 0]

    # --- phases ----------------------------------------------------------------------------------

    def phase_objective(self, phase, inp, reals, real_c, global_batch, pl_mean=None, sync_pl=True,
                        pl_batch_mean=None):
        """Scalar objective of one phase on this replica's share, plus statistics (sums over samples).

        global_batch: generated/real samples over all replicas. The objective is sum(terms) / global count,
        so gradients summed over replicas equal one device's mean. Lazy phases carry the interval as gain.
        Returns (objective, stats) where stats maps tag -> (sum, count) and, for G reg phases,
        stats["pl_mean_new"] is the updated running mean (identical on every replica when sync_pl).
        pl_batch_mean: the path-length mean of the whole global batch when the caller computed it beforehand
        (gradient accumulation: this call sees one round of it); None = the mean of this call's lengths.
        """
        objective, stats = tf.constant(0.0), {}
        for term in self.phase_terms(phase, inp, reals, real_c, global_batch, pl_mean, sync_pl, pl_batch_mean):
            part, part_stats = term()
            objective += part
            merge_stats(stats, part_stats)
        return objective, stats

    def phase_terms(self, phase, inp, reals, real_c, global_batch, pl_mean=None, sync_pl=True, pl_batch_mean=None):
        """The phase's objective as independent terms: [() -> (objective part, stats)], summed by phase_objective.

        Each term runs its own networks (G main, path length, D on fakes, D on reals, R1, R2), so a caller may take
        their gradients one after another (training.train_step with recompute: one term's activations at a time).
        Stats of the same tag from several terms add up (merge_stats).
        """
        terms = []
        if phase in ("Gmain", "Gboth"):
            def g_main():
                loss, logits = self.g_main(inp)
                return tf.reduce_sum(loss) / global_batch, {"Loss/G/loss": (tf.reduce_sum(loss), global_batch),
                                                            "Loss/scores/fake_G": (tf.reduce_sum(logits), global_batch)}
            terms.append(g_main)
        if phase in ("Greg", "Gboth") and self.pl_weight > 0:
            g_gain = self.G_reg_interval if phase == "Greg" else 1

            def path_length():
                pl_inp = {k: self._head(v, self.pl_batch_shrink) for k, v in inp.items()}
                pl_global = global_batch // self.pl_batch_shrink
                lengths = self.path_lengths(pl_inp)
                # Running mean over the *global* batch: all replicas agree, as on one device.
                ctx = tf.distribute.get_replica_context()
                total, count = tf.reduce_sum(lengths), pl_global
                if pl_batch_mean is None and ctx is not None and ctx.num_replicas_in_sync > 1:
                    if sync_pl:
                        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
                    else:
                        count = lengths.shape[0]
                batch_mean = tf.stop_gradient(total / count if pl_batch_mean is None else pl_batch_mean)
                pl_mean_new = pl_mean + (batch_mean - pl_mean) * self.pl_decay
                penalty = tf.square(lengths - pl_mean_new)
                return tf.reduce_sum(penalty) * (self.pl_weight * g_gain) / pl_global, {
                    "Loss/pl_penalty": (tf.reduce_sum(penalty), pl_global),
                    "Loss/G/reg": (tf.reduce_sum(penalty) * self.pl_weight, pl_global),
                    "pl_mean_new": pl_mean_new}
            terms.append(path_length)
        if phase in ("Dmain", "Dboth"):
            def d_fake():
                fake_logits = self.d_fake_logits(inp)
                loss = tf.reduce_sum(tf.nn.softplus(fake_logits))
                return loss / global_batch, {"Loss/D/loss": (loss, global_batch),
                                             "Loss/scores/fake": (tf.reduce_sum(fake_logits), global_batch)}

            def d_real():
                real_logits = self.run_D(reals, real_c, inp.get("aug_real"))[:, 0]
                loss = tf.reduce_sum(tf.nn.softplus(-real_logits))
                stats = {"Loss/D/loss": (loss, global_batch),
                         "Loss/scores/real": (tf.reduce_sum(real_logits), global_batch)}
                if self.augment_pipe is not None:  # ADA's overfitting heuristic r_t = E[sign(D(real))]
                    stats["Loss/signs/real"] = (tf.reduce_sum(tf.sign(real_logits)), global_batch)
                return loss / global_batch, stats
            terms += [d_fake, d_real]
        if phase in ("Dreg", "Dboth"):
            d_gain = self.D_reg_interval if phase == "Dreg" else 1
            if self.r1_gamma > 0:
                def r1_term():
                    r1, _ = self.grad_penalty(reals, real_c, inp.get("aug_real"))
                    return tf.reduce_sum(r1) * (self.r1_gamma / 2 * d_gain) / global_batch, {
                        "Loss/r1_penalty": (tf.reduce_sum(r1), global_batch),
                        "Loss/D/reg": (tf.reduce_sum(r1) * self.r1_gamma / 2, global_batch)}
                terms.append(r1_term)
            if self.r2_gamma > 0:
                def r2_term():
                    fake, _ = self.run_G(inp)
                    r2, _ = self.grad_penalty(tf.stop_gradient(fake), inp["c"], inp.get("aug_fake"))
                    return tf.reduce_sum(r2) * (self.r2_gamma / 2 * d_gain) / global_batch, {
                        "Loss/r2_penalty": (tf.reduce_sum(r2), global_batch)}
                terms.append(r2_term)
        return terms

    def pl_lengths(self, inp):
        """Path lengths of the share of `inp` the path-length term uses (its first 1/pl_batch_shrink)."""
        return self.path_lengths({k: self._head(v, self.pl_batch_shrink) for k, v in inp.items()})

    @staticmethod
    def _head(v, shrink):
        if isinstance(v, list):
            return [x[: x.shape[0] // shrink] for x in v]
        if isinstance(v, tf.Tensor) and v.shape.rank and v.shape.rank > 0:
            return v[: v.shape[0] // shrink]
        return v

    def phases(self):
        """[(name, module, interval)] in StyleGAN2 order; interval 0 = every step, regularisers folded in."""
        out = []
        for prefix, interval, has_reg in (("G", self.G_reg_interval, self.pl_weight > 0),
                                          ("D", self.D_reg_interval, self.r1_gamma > 0 or self.r2_gamma > 0)):
            if not has_reg:
                out.append((prefix + "main", 1))
            elif interval == 0:
                out.append((prefix + "both", 1))
            else:
                out += [(prefix + "main", 1), (prefix + "reg", interval)]
        return out


def merge_stats(stats, more):
    """Adds `more` (tag -> (sum, count), or a tensor such as pl_mean_new) into `stats`; sums of a tag add up."""
    for tag, value in more.items():
        if isinstance(value, tuple) and tag in stats:
            stats[tag] = (stats[tag][0] + value[0], stats[tag][1])
        else:
            stats[tag] = value
    return stats


def lazy_regularization_ratio(interval):
    """StyleGAN2's lr/beta correction for lazy regularisation: mb_ratio = interval / (interval + 1)."""
    return 1.0 if not interval else interval / (interval + 1)
