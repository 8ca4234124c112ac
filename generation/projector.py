"""Latent projection: find the W (or W+) and noise maps that make the generator reproduce given volumes.

The schedule is the original's: Adam, 1000 steps, lr 0.3 with a 5% linear ramp-up and a 25% cosine
ramp-down, Gaussian noise on W of 0.05 * (W spread) decaying quadratically to 0 over the first 75% of the
steps, noise maps renormalised to zero mean and unit variance after every step. Unlike the original, the 3D
noise regulariser (squared autocorrelation at one-voxel shifts along the three axes over a 2x pyramid,
weight 1e5) is actually added to the loss, so the noise maps cannot soak up the anatomy.
Loss per target = MSE at full resolution + MSE after 8x average pooling (+ optionally w * (1 - SSIM)).
Several targets are optimised together as one batch; each has its own W and noise maps, and since the loss
is a sum over targets their optimisations do not interact.
"""

import io
import json
import math
import os

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict
from dnnlib.errors import UserError
from dnnlib.fileutil import atomic_write_bytes
from metrics.ms_ssim import ssim_per_volume_tf
from training import networks
from volumes import records
from volumes.manifest import load_manifest, volume_affine
from volumes.volume_io import to_unit_range

LOSSES = ("mse", "mse+ssim")


def default_options():
    return EasyDict(
        num_steps=1000,
        initial_learning_rate=0.3,
        lr_rampup_length=0.05,
        lr_rampdown_length=0.25,
        initial_noise_factor=0.05,
        noise_ramp_length=0.75,
        regularize_noise_weight=1e5,
        w_avg_samples=10000,
        w_plus=False,
        loss="mse",
        ssim_weight=1.0,
        downsample_factor=8,
        seed=0,
    )


# ---------------------------------------------------------------------------------------------------------------
# Schedules (pure functions of t = step / num_steps, so tests can check them against the formulas).


def learning_rate(t, initial=0.3, rampup=0.05, rampdown=0.25):
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return initial * ramp


def latent_noise_scale(t, w_std, initial_factor=0.05, ramp_length=0.75):
    return w_std * initial_factor * max(0.0, 1.0 - t / ramp_length) ** 2


# ---------------------------------------------------------------------------------------------------------------
# Loss pieces (TF, per target: every function returns [N]).


def avg_pool_3d(x, factor):
    """factor x factor x factor average pooling of [N,D,H,W,C]; a partial window at an edge averages what is there."""
    if factor <= 1:
        return x
    return tf.nn.avg_pool3d(x, ksize=factor, strides=factor, padding="SAME")


def mse_per_item(x, y):
    return tf.reduce_mean(tf.square(x - y), axis=[1, 2, 3, 4])


def noise_regularizer(noise_maps):
    """Sum over maps and pyramid levels of the squared mean autocorrelation at a one-voxel (circular) shift,
    along each spatial axis. Levels halve the map by 2x average pooling while every axis is even and > 8.
    noise_maps: list of [N,D,H,W,1]; returns [N]."""
    total = 0.0
    for v in noise_maps:
        while True:
            for axis in (1, 2, 3):
                total += tf.square(tf.reduce_mean(v * tf.roll(v, shift=1, axis=axis), axis=[1, 2, 3, 4]))
            dims = v.shape[1:4]
            if min(dims) <= 8 or any(d % 2 for d in dims):
                break
            v = tf.nn.avg_pool3d(v, ksize=2, strides=2, padding="VALID")
    return total


# ---------------------------------------------------------------------------------------------------------------
# W statistics.


def w_statistics(G, num_samples=10000, c=None, seed=123, chunk=1000):
    """(w_avg [w_dim], w_std scalar) from mapping num_samples random z; w_std = sqrt(E ||w - w_avg||^2)."""
    if num_samples < 2:
        raise UserError(f"--w_avg_samples={num_samples}: need at least 2")
    rng = np.random.RandomState(seed)
    z_dim, c_dim = int(G.z_dim), int(G.c_dim)
    mapping = tf.function(lambda z, c_: G.mapping(z, c_, psi=1.0)[:, 0])
    ws = []
    for a in range(0, num_samples, chunk):
        n = min(chunk, num_samples - a)
        z = rng.randn(n, z_dim).astype(np.float32)
        cs = tf.constant(np.tile(np.asarray(c, np.float32).reshape(1, c_dim), [n, 1])) if c_dim else None
        ws.append(mapping(tf.constant(z), cs).numpy().astype(np.float64))
    ws = np.concatenate(ws)
    w_avg = ws.mean(axis=0)
    w_std = float(np.sqrt(np.sum((ws - w_avg) ** 2) / num_samples))
    return w_avg.astype(np.float32), w_std


# ---------------------------------------------------------------------------------------------------------------
# The optimisation.


class Projector:
    """Projects a batch of targets [N,D,H,W,C] in [-1, 1]. Build once, then run()."""

    def __init__(self, G, targets, c=None, opts=None, w_stats=None):
        self.G = G
        self.opts = o = EasyDict({**default_options(), **(opts or {})})
        if o.loss not in LOSSES:
            raise UserError(f"--loss={o.loss!r}: expected one of {', '.join(LOSSES)}")
        if o.num_steps < 1:
            raise UserError(f"--num_steps={o.num_steps}: must be at least 1")
        targets = np.asarray(targets, np.float32)
        want = (*tuple(int(s) for s in G.img_shape), int(G.img_channels))
        if targets.ndim != 5 or targets.shape[1:] != want:
            raise UserError(f"projection targets have shape {targets.shape[1:]}, the network makes {want}")
        self.n = n = targets.shape[0]
        self.num_ws, self.w_dim = int(G.num_ws), int(G.w_dim)
        self.w_avg, self.w_std = w_stats if w_stats is not None else w_statistics(G, o.w_avg_samples, c, o.seed)
        self.targets = tf.constant(targets)
        self.targets_down = avg_pool_3d(self.targets, o.downsample_factor)

        rng = np.random.RandomState(o.seed)
        w_rows = self.num_ws if o.w_plus else 1
        self.w_opt = tf.Variable(np.tile(self.w_avg.reshape(1, 1, -1), [n, w_rows, 1]), name="w_opt")
        self.noise = [tf.Variable(rng.randn(n, *[int(s) for s in shape[1:]]).astype(np.float32), name=f"noise{i}")
                      for i, shape in enumerate(G.synthesis.noise_shapes)]
        self.params = [self.w_opt, *self.noise]
        # Adam (beta1 0.9, beta2 0.999, eps 1e-8, as the original's tf.train.AdamOptimizer), written out so the
        # learning rate is a plain per-step input and the state is ours.
        self.m = [tf.Variable(tf.zeros_like(p)) for p in self.params]
        self.v = [tf.Variable(tf.zeros_like(p)) for p in self.params]
        self.t = tf.Variable(0.0)
        self.rand = tf.random.Generator.from_seed(o.seed + 1)
        self._renormalize_noise()
        self._step = tf.function(self._step_impl)

    def _ws(self, w):
        return w if self.opts.w_plus else tf.tile(w, [1, self.num_ws, 1])

    def _renormalize_noise(self):
        for v in self.noise:
            mean = tf.reduce_mean(v, axis=[1, 2, 3, 4], keepdims=True)
            std = tf.sqrt(tf.reduce_mean(tf.square(v - mean), axis=[1, 2, 3, 4], keepdims=True))
            v.assign((v - mean) / (std + 1e-8))

    def _losses(self, img):
        o = self.opts
        terms = {
            "mse": mse_per_item(img, self.targets),
            "mse_down": mse_per_item(avg_pool_3d(img, o.downsample_factor), self.targets_down),
            "noise_reg": noise_regularizer(self.noise) if self.noise else tf.zeros([self.n]),
        }
        total = terms["mse"] + terms["mse_down"] + o.regularize_noise_weight * terms["noise_reg"]
        if o.loss == "mse+ssim":
            terms["ssim"] = ssim_per_volume_tf(img, self.targets, data_range=2.0)
            total += o.ssim_weight * (1.0 - terms["ssim"])
        terms["loss"] = total
        return terms

    def _step_impl(self, lr, w_noise_scale):
        w_noise = self.rand.normal(self.w_opt.shape) * w_noise_scale
        with tf.GradientTape() as tape:
            # Gradients wrt ws and noise only: scaling the activations is cheaper than per-sample weights here.
            with networks.modulation_of_activations():
                img = self.G.synthesis(self._ws(self.w_opt + w_noise), noise=list(self.noise))
            terms = self._losses(img)
            total = tf.reduce_sum(terms["loss"])  # targets are independent: their gradients do not mix
        grads = tape.gradient(total, self.params)
        self.t.assign_add(1.0)
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.assign(b1 * m + (1 - b1) * g)
            v.assign(b2 * v + (1 - b2) * tf.square(g))
            m_hat = m / (1 - b1**self.t)
            v_hat = v / (1 - b2**self.t)
            p.assign_sub(lr * m_hat / (tf.sqrt(v_hat) + eps))
        self._renormalize_noise()
        return terms

    def run(self, progress=None, progress_every=100):
        """Optimise; returns EasyDict(ws [N,num_ws,w_dim], noise list of [N,D,H,W,1], volumes [N,D,H,W,C] in
        [-1,1], curve: list of per-step dicts {step, lr, loss, mse, mse_down, noise_reg[, ssim]} with [N] arrays).
        """
        o = self.opts
        curve = []
        for step in range(o.num_steps):
            t = step / o.num_steps
            lr = learning_rate(t, o.initial_learning_rate, o.lr_rampup_length, o.lr_rampdown_length)
            scale = latent_noise_scale(t, self.w_std, o.initial_noise_factor, o.noise_ramp_length)
            terms = self._step(tf.constant(lr, tf.float32), tf.constant(scale, tf.float32))
            row = {"step": step + 1, "lr": lr, **{k: v.numpy() for k, v in terms.items()}}
            curve.append(row)
            if progress is not None and ((step + 1) % progress_every == 0 or step + 1 == o.num_steps):
                progress(row)
        ws = self._ws(self.w_opt).numpy()
        noise = [v.numpy() for v in self.noise]
        volumes = self.G.synthesis(tf.constant(ws), noise=[tf.constant(v) for v in noise]).numpy()
        return EasyDict(ws=ws, noise=noise, volumes=volumes, curve=curve)


# ---------------------------------------------------------------------------------------------------------------
# Targets. Each is an EasyDict(name, volume [D,H,W,C] in [-1,1] on the dataset grid, label or None, and for image
# files: path, native_shape, native_affine, transform, so the projection can be written back in the file's grid).


def _unique_names(names):
    seen, out = {}, []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}-{k}")
    return out


def _file_stem(path):
    base = os.path.basename(os.path.normpath(str(path)))
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def find_manifest(network_path, data_dir=None):
    """The dataset manifest whose pipeline preprocesses image targets: --data's, else the run's copy
    (dataset.json in the network path or up to three folders above it: run dir, checkpoint, snapshot SavedModel).
    A run's copy has no shards beside it, so it is read as plain JSON: only its geometry and pipeline are used."""

    if data_dir:
        return load_manifest(data_dir)
    p = os.path.abspath(str(network_path))
    p = p if os.path.isdir(p) else os.path.dirname(p)
    for _ in range(4):
        cand = os.path.join(p, "dataset.json")
        if os.path.isfile(cand):
            try:
                m = EasyDict.load_json(cand)
            except (OSError, ValueError) as e:
                raise UserError(f"{cand}: unreadable dataset manifest ({e})") from None
            if "shape" not in m or "spacing" not in m:
                raise UserError(f"{cand}: dataset manifest lacks shape/spacing; pass --data=<dataset folder>")
            return m
        p = os.path.dirname(p)
    raise UserError(f"--target: image files are preprocessed with the training dataset's pipeline, but no "
                    f"dataset.json was found at or above {network_path}; pass --data=<dataset folder>")


def file_targets(paths, manifest):
    """Image files preprocessed exactly as the dataset was (preprocess.preprocess_like_manifest)."""
    from volumes import preprocess

    out = []
    for path in paths:
        arr, affine, transform = preprocess.preprocess_like_manifest(path, manifest)
        vol = np.asarray(arr, np.float32)
        vol = vol[..., None] if vol.ndim == 3 else vol
        out.append(EasyDict(name=_file_stem(path), volume=vol * 2 - 1, label=None, path=str(path),
                            transform=transform, affine=np.asarray(affine, np.float64)))
    return out


def dataset_targets(data_dir, indices):
    """Volumes `indices` of a converted dataset, read straight from its shards, with their affines."""

    manifest = load_manifest(data_dir)
    want, found = set(int(i) for i in indices), {}
    for ex in records.iterate_records(data_dir, manifest):
        if ex.index in want:
            found[ex.index] = ex
            if len(found) == len(want):
                break
    missing = sorted(want - set(found))
    if missing:
        raise UserError(f"--indices: {data_dir} has no volumes with indices {missing} "
                        f"(it holds {manifest.get('num_volumes', '?')} volumes)")
    out = []
    for i in indices:
        ex = found[int(i)]
        vol = records.decode_volume(ex.stored, manifest.storage_dtype).reshape(ex.shape)
        vol = vol[..., None] if vol.ndim == 3 else vol
        label = ex.label if ex.label.size else None
        out.append(EasyDict(name=f"index{int(i):05d}", volume=vol * 2 - 1, label=label,
                            affine=volume_affine(manifest, i)))
    return out, manifest


def seed_targets(G, seeds, psi=1.0, noise_mode="random", c=None):
    """Generated volumes as targets (recovery test); the true ws are kept to report the latent error."""
    from generation import sampling as generation

    runner = generation.Runner(G, batch_size=4)
    vols = generation.generate(runner, seeds, psi, noise_mode, c)
    ws = runner.map(np.stack([generation.seed_to_z(s, runner.z_dim) for s in seeds]), c, psi=psi)
    return [EasyDict(name=f"seed{s:04d}", volume=v, label=c, true_ws=w) for s, v, w in zip(seeds, vols, ws,
                                                                                         strict=True)]


# ---------------------------------------------------------------------------------------------------------------
# Outputs.


def curve_png(path, curve, keys=("loss", "mse", "mse_down"), size=(640, 400)):
    """Line plot (log10 y) of the loss curve of one target; curve rows hold scalars for that target."""
    from PIL import Image, ImageDraw


    w, h = size
    left, right, top, bottom = 60, 110, 20, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    colours = {"loss": (200, 30, 30), "mse": (30, 90, 200), "mse_down": (30, 150, 60), "ssim": (150, 90, 0)}
    series = {k: np.log10(np.maximum([float(r[k]) for r in curve], 1e-12)) for k in keys if k in curve[0]}
    lo = min(float(v.min()) for v in series.values())
    hi = max(float(v.max()) for v in series.values())
    hi = hi if hi > lo else lo + 1
    n = max(len(curve) - 1, 1)
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for frac in (0.0, 0.5, 1.0):
        y = top + (1 - frac) * (h - top - bottom)
        draw.text((5, y - 6), f"{10 ** (lo + frac * (hi - lo)):.3g}", fill="black")
        x = left + frac * (w - left - right)
        draw.text((x - 10, h - bottom + 5), str(int(round(frac * n)) + 1), fill="black")
    draw.text((left, h - 18), "step", fill="black")
    for row, (k, v) in enumerate(series.items()):
        pts = [(left + i / n * (w - left - right), top + (1 - (y - lo) / (hi - lo)) * (h - top - bottom))
               for i, y in enumerate(v)]
        colour = colours.get(k, (0, 0, 0))
        draw.line(pts if len(pts) > 1 else pts * 2, fill=colour, width=2)
        draw.text((w - right + 8, top + 15 * row), k, fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def comparison_png(path, target_unit, proj_unit, diff_gain=4.0):
    """Rows: target, projection, |difference| x diff_gain; columns: sagittal, coronal, axial mid-slices."""
    from PIL import Image

    from generation import sampling as generation
    from volumes import visualize
    from volumes.volume_io import atomic_write_bytes

    vols = [target_unit, proj_unit, np.clip(np.abs(target_unit - proj_unit) * diff_gain, 0, 1)]
    cells = [[visualize.slice_2d(np.asarray(v)[..., 0] if np.ndim(v) == 4 else v, a) for a in range(3)]
             for v in vols]
    col_w = [max(cells[r][a].shape[1] for r in range(3)) for a in range(3)]
    row_h = max(c.shape[0] for row in cells for c in row)
    gap = 2
    out = np.zeros((3 * row_h + 2 * gap, sum(col_w) + 2 * gap), np.uint8)
    for r in range(3):
        x = 0
        for a in range(3):
            c = generation.slice_to_uint8(cells[r][a], (0.0, 1.0))
            y0 = r * (row_h + gap) + (row_h - c.shape[0]) // 2
            x0 = x + (col_w[a] - c.shape[1]) // 2
            out[y0 : y0 + c.shape[0], x0 : x0 + c.shape[1]] = c
            x += col_w[a] + gap
    s = generation.png_scale(np.shape(target_unit)[:3])
    out = np.repeat(np.repeat(out, s, axis=0), s, axis=1)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def curve_csv(curve, i):
    keys = [k for k in ("loss", "mse", "mse_down", "noise_reg", "ssim") if k in curve[0]]
    lines = [",".join(["step", "lr", *keys])]
    for r in curve:
        lines.append(",".join([str(r["step"]), f"{r['lr']:.6g}", *(f"{float(r[k][i]):.6g}" for k in keys)]))
    return "\n".join(lines) + "\n"


def write_target_outputs(out, target, i, result, affine, uint8=False):
    """Everything for target i of a projection batch into folder `out`; returns its metrics dict."""
    from dnnlib.fileutil import atomic_write_text
    from generation import sampling as generation
    from metrics.reconstruction import reconstruction_metrics

    os.makedirs(out, exist_ok=True)
    proj, tgt = result.volumes[i], target.volume
    proj_unit, tgt_unit = to_unit_range(proj), to_unit_range(tgt)
    generation.write_volume(os.path.join(out, "projected.nii.gz"), proj, affine, uint8)
    generation.write_volume(os.path.join(out, "target.nii.gz"), tgt, affine, uint8)
    if target.get("transform") is not None:
        from volumes import volume_io

        native, native_affine = to_native_grid(proj_unit[..., 0], affine, target.transform)
        native, units = to_source_intensity(native, target.transform)
        volume_io.write_nifti(os.path.join(out, "projected_native.nii.gz"), native, native_affine)
    np.save(os.path.join(out, "latent.npy"), result.ws[i])
    np.savez(os.path.join(out, "noise.npz"), *[n[i] for n in result.noise])
    curve = result.curve
    atomic_write_text(os.path.join(out, "loss.csv"), curve_csv(curve, i))
    keys = [k for k in ("loss", "mse", "mse_down", "ssim") if k in curve[0]]
    curve_png(os.path.join(out, "loss.png"), [{k: r[k][i] for k in keys} for r in curve], keys)
    comparison_png(os.path.join(out, "comparison.png"), tgt_unit, proj_unit)
    metrics = {k: float(v) for k, v in reconstruction_metrics(tgt_unit, proj_unit, data_range=1.0).items()}
    metrics["grid"] = "dataset"  # metrics are measured on the dataset grid, in [0, 1]
    if target.get("transform") is not None:
        metrics["native_intensity"] = units
    if target.get("true_ws") is not None:
        metrics["w_rmse"] = float(np.sqrt(np.mean((result.ws[i] - target.true_ws) ** 2)))
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics


def to_native_grid(volume, dataset_affine, transform, fill=0.0):
    """Resample a dataset-grid volume [D,H,W] back into the source file's own grid (linear interpolation).

    Inverts what preprocessing recorded in `transform`: reorientation and crop/resample keep world
    coordinates, so a source voxel's world point is looked up directly in the dataset grid; with registration
    the point is first carried into template space (x_fixed = inv(fixed_to_moving) @ x_source).
    Returns (array [source_shape], source_affine).
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in transform["source_shape"][:3])
    src_affine = np.asarray(transform["source_affine"], np.float64)
    world_to_data = np.linalg.inv(np.asarray(dataset_affine, np.float64))
    reg = transform.get("registration")
    if reg:
        world_to_data = world_to_data @ np.linalg.inv(np.asarray(reg["fixed_to_moving_ras"], np.float64))
    m = world_to_data @ src_affine  # source voxel -> dataset voxel
    out = np.empty(shape, np.float32)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    base = m[:3, 0:1] * ii.ravel() + m[:3, 1:2] * jj.ravel() + m[:3, 3:4]
    for k in range(shape[2]):  # slab by slab: bounded memory for 1 mm scans
        coords = base + m[:3, 2:3] * k
        out[:, :, k] = ndimage.map_coordinates(np.asarray(volume, np.float32), coords, order=1, mode="constant",
                                               cval=fill).reshape(shape[:2])
    return out, src_affine


def to_source_intensity(volume01, transform):
    """Undo the dataset's linear intensity normalisation (clip [lo, hi] -> [0, 1]), so the projection written
    in the scan's own grid is also in the scan's own units. Returns (volume, description of the units)."""
    clip = (transform.get("intensity") or {}).get("clip")
    if not clip:
        return volume01, "[0, 1] (the dataset's)"
    lo, hi = float(clip[0]), float(clip[1])
    vol = (lo + np.asarray(volume01, np.float64) * (hi - lo)).astype(np.float32)
    return vol, f"source units: [0, 1] -> [{lo:g}, {hi:g}]"


# ---------------------------------------------------------------------------------------------------------------
# The command (what run_projector.py calls with its resolved options).


def run_projection(opts):
    from dnnlib.fileutil import atomic_output_dir
    from generation import sampling as generation
    from generation.network_loader import load_generator

    opts = EasyDict(opts)
    net = load_generator(opts.network)
    G = net.G
    c = generation.make_label(int(G.c_dim), opts.get("class_idx"), opts.get("label"))
    targets, geometry = [], getattr(net, "geometry", None) or {}
    if opts.get("targets"):
        manifest = find_manifest(opts.network, opts.get("data"))
        targets += file_targets(opts.targets, manifest)
    if opts.get("indices"):
        if not opts.get("data"):
            raise UserError("--indices needs --data=<dataset folder>")
        more, manifest = dataset_targets(opts.data, opts.indices)
        targets += more
    if opts.get("target_seeds"):
        targets += seed_targets(G, opts.target_seeds, opts.get("target_psi", 1.0), opts.get("target_noise_mode",
                                                                                         "random"), c)
    if not targets:
        raise UserError("nothing to project: give --target, --data with --indices, or --target_seeds")
    want = (*tuple(int(s) for s in G.img_shape), int(G.img_channels))
    for t, name in zip(targets, _unique_names([t.name for t in targets]), strict=True):
        t.name = name
        if tuple(t.volume.shape) != want:
            src = t.get("path") or opts.get("data") or "the dataset"
            raise UserError(f"{src}: target {name} has shape {tuple(t.volume.shape)} on the dataset grid, but the "
                            f"network makes {want}; use the dataset (--data) the network was trained on")
    seed_affine = generation.output_affine(geometry, G.img_shape) if opts.get("target_seeds") else None

    popts = {k: opts[k] for k in default_options() if k in opts}
    print(f"projecting {len(targets)} target(s) with {popts.get('num_steps', 1000)} steps; "
          f"W statistics from {popts.get('w_avg_samples', 10000)} samples")
    w_stats = w_statistics(G, popts.get("w_avg_samples", 10000), c, popts.get("seed", 0))
    batch = int(opts.get("batch", 4))
    summary = {}
    with atomic_output_dir(opts.outdir, overwrite=bool(opts.get("overwrite", False))) as out:
        for b0 in range(0, len(targets), batch):
            chunk = targets[b0 : b0 + batch]
            names = ", ".join(t.name for t in chunk)

            def progress(row, names=names):
                print(f"[{names}] step {row['step']:>5}  lr {row['lr']:.4f}  loss {np.mean(row['loss']):.5f}  "
                      f"mse {np.mean(row['mse']):.5f}  mse_down {np.mean(row['mse_down']):.5f}  "
                      f"noise_reg {np.mean(row['noise_reg']):.3g}", flush=True)

            pr = Projector(G, np.stack([t.volume for t in chunk]), c, popts, w_stats)
            res = pr.run(progress, int(opts.get("progress_every", 100)))
            for i, t in enumerate(chunk):
                affine = t.get("affine") if t.get("affine") is not None else seed_affine
                summary[t.name] = write_target_outputs(os.path.join(out, t.name), t, i, res, affine,
                                                       bool(opts.get("uint8", False)))
                print(f"{t.name}: " + "  ".join(f"{k} {v:.4f}" for k, v in summary[t.name].items()
                                                if isinstance(v, float)))
        EasyDict(options=opts, metrics=summary).save_json(os.path.join(out, "projection.json"))
    return summary
