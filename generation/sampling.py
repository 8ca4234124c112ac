"""Using a trained generator: seeds -> volumes, style mixing, interpolation, average volume.

Everything here works on a networks.Generator and returns NumPy arrays in the generator's range [-1, 1],
shaped [N, D, H, W, C]; writing files is left to the `write_*` helpers at the bottom so tests can check the
arrays directly. A seed always means z = RandomState(seed).randn(z_dim) (reproducible across machines) and,
in 'random' noise mode, noise maps drawn from the same RandomState right after z: the same seed gives the
same volume on every run.
"""

import io
import math
import os
import warnings

import numpy as np
import tensorflow as tf

from dnnlib.errors import UserError
from dnnlib.fileutil import atomic_write_bytes
from training.networks import NOISE_MODES
from volumes.volume_io import to_unit_range

# ---------------------------------------------------------------------------------------------------------------
# Seeds, labels, noise.


def seed_rng(seed):
    if not 0 <= int(seed) < 2**32:
        raise UserError(f"seed {seed} is out of range: seeds must be in [0, 2^32)")
    return np.random.RandomState(int(seed))


def seed_to_z(seed, z_dim):
    """The latent of one seed: RandomState(seed).randn(z_dim), float32."""
    return seed_rng(seed).randn(z_dim).astype(np.float32)


def seed_noise(seed, noise_shapes, z_dim):
    """Per-layer noise maps of one seed, drawn after its z from the same stream: list of [1, D, H, W, 1]."""
    rng = seed_rng(seed)
    rng.randn(z_dim)  # z comes first, so z alone matches seed_to_z
    return [rng.randn(*[int(s) for s in shape]).astype(np.float32) for shape in noise_shapes]


def make_label(c_dim, class_idx=None, label=None):
    """Label vector [c_dim] for a conditional generator (None for an unconditional one).

    class_idx: one-hot class; label: an explicit vector (a list of floats). Exactly one for c_dim > 0.
    """
    if c_dim == 0:
        if class_idx is not None or label is not None:
            raise UserError("--class/--label given, but the network is unconditional (c_dim = 0); drop them")
        return None
    if (class_idx is None) == (label is None):
        raise UserError(f"the network is conditional (c_dim = {c_dim}): pass exactly one of --class or --label")
    if class_idx is not None:
        if not 0 <= class_idx < c_dim:
            raise UserError(f"--class={class_idx} is out of range: the network has {c_dim} classes (0..{c_dim - 1})")
        c = np.zeros([c_dim], np.float32)
        c[class_idx] = 1
        return c
    c = np.asarray(label, np.float32).reshape(-1)
    if c.shape[0] != c_dim:
        raise UserError(f"--label has {c.shape[0]} values; the network expects c_dim = {c_dim}")
    return c


# ---------------------------------------------------------------------------------------------------------------
# Compiled calls. One tf.function per generator and call kind, with a fixed batch size (the last batch is padded),
# so a run of many seeds traces once.


class Runner:
    """Batched, compiled mapping and synthesis of one Generator."""

    def __init__(self, G, batch_size=4):
        if batch_size < 1:
            raise UserError(f"--batch={batch_size}: must be at least 1")
        self.G = G
        self.batch_size = int(batch_size)
        self.z_dim, self.c_dim, self.w_dim = int(G.z_dim), int(G.c_dim), int(G.w_dim)
        self.num_ws = int(G.num_ws)
        self.noise_shapes = [tuple(int(s) for s in shape) for shape in G.synthesis.noise_shapes]
        self._map = tf.function(self._map_impl)
        self._synth_mode = tf.function(self._synth_mode_impl)
        self._synth_noise = tf.function(self._synth_noise_impl)

    # Python scalars (psi, cutoff, mode) are trace-time constants: a run uses one value of each.
    def _map_impl(self, z, c, psi, truncation_cutoff):
        return self.G.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff)

    def _synth_mode_impl(self, ws, noise_mode):
        return self.G.synthesis(ws, noise_mode=noise_mode)

    def _synth_noise_impl(self, ws, noise):
        return self.G.synthesis(ws, noise=noise)

    def _batches(self, n):
        for start in range(0, n, self.batch_size):
            yield start, min(start + self.batch_size, n)

    def _pad(self, x, n):
        # Pad the batch axis to batch_size by repeating the last item (keeps one static shape).
        if x.shape[0] == self.batch_size:
            return x
        reps = np.repeat(x[-1:], self.batch_size - x.shape[0], axis=0)
        return np.concatenate([x, reps], axis=0)

    def labels(self, c, n):
        if self.c_dim == 0:
            return np.zeros([n, 0], np.float32)
        if c is None:
            raise UserError(f"the network is conditional (c_dim = {self.c_dim}): pass --class or --label")
        return np.tile(np.asarray(c, np.float32).reshape(1, self.c_dim), [n, 1])

    def map(self, z, c=None, psi=1.0, truncation_cutoff=None):
        """z [N, z_dim] (+ label [c_dim]) -> ws [N, num_ws, w_dim] as NumPy."""
        z = np.asarray(z, np.float32)
        cs = self.labels(c, z.shape[0])
        out = []
        for a, b in self._batches(z.shape[0]):
            zb, cb = self._pad(z[a:b], b - a), self._pad(cs[a:b], b - a)
            ws = self._map(tf.constant(zb), tf.constant(cb) if self.c_dim else None, float(psi), truncation_cutoff)
            out.append(ws.numpy()[: b - a])
        return np.concatenate(out, axis=0)

    def synthesize(self, ws, noise_mode="const", noise=None):
        """ws [N, num_ws, w_dim] -> volumes [N, D, H, W, C] in [-1, 1].

        noise: None (use noise_mode) or a list, one array per noised layer, of [N, D, H, W, 1] (per item) or
        [1, D, H, W, 1] (shared by all items).
        """
        if noise_mode not in NOISE_MODES:
            raise UserError(f"noise mode {noise_mode!r}: expected one of {', '.join(NOISE_MODES)}")
        ws = np.asarray(ws, np.float32)
        out = []
        for a, b in self._batches(ws.shape[0]):
            wb = tf.constant(self._pad(ws[a:b], b - a))
            if noise is None:
                img = self._synth_mode(wb, noise_mode)
            else:
                nb = [n if n.shape[0] == 1 else self._pad(n[a:b], b - a) for n in noise]
                nb = [tf.constant(np.broadcast_to(n, (self.batch_size,) + n.shape[1:])) for n in nb]
                img = self._synth_noise(wb, nb)
            out.append(img.numpy()[: b - a])
        return np.concatenate(out, axis=0)

    def seeds_noise(self, seeds):
        """Seed-derived noise for a list of seeds: list of [N, D, H, W, 1]."""
        per_seed = [seed_noise(s, self.noise_shapes, self.z_dim) for s in seeds]
        return [np.concatenate([p[i] for p in per_seed], axis=0) for i in range(len(self.noise_shapes))]

    def shared_noise(self, noise_seed):
        """One noise draw for every item (style mixing, interpolation): list of [1, D, H, W, 1]."""
        rng = seed_rng(noise_seed)
        return [rng.randn(*shape).astype(np.float32) for shape in self.noise_shapes]


def _check_mode(noise_mode):
    if noise_mode not in NOISE_MODES:
        raise UserError(f"--noise_mode={noise_mode!r}: expected one of {', '.join(NOISE_MODES)}")


# ---------------------------------------------------------------------------------------------------------------
# Generation.


def generate(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None):
    """Volumes of the given seeds, [N, D, H, W, C] in [-1, 1]. 'random' noise comes from each seed."""
    _check_mode(noise_mode)
    seeds = list(seeds)
    out = []
    for a in range(0, len(seeds), runner.batch_size):  # chunked: seed noise of many seeds is large at 1 mm
        chunk = seeds[a : a + runner.batch_size]
        z = np.stack([seed_to_z(s, runner.z_dim) for s in chunk])
        ws = runner.map(z, c, psi=psi, truncation_cutoff=truncation_cutoff)
        if noise_mode == "random" and runner.noise_shapes:
            out.append(runner.synthesize(ws, noise=runner.seeds_noise(chunk)))
        else:
            out.append(runner.synthesize(ws, noise_mode="const" if noise_mode == "random" else noise_mode))
    return np.concatenate(out, axis=0)


def average_volume(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None):
    """Voxel-wise mean over the seeds' volumes [D, H, W, C], accumulated batch by batch (float64 sum)."""
    total = None
    for a in range(0, len(seeds), runner.batch_size):
        vols = generate(runner, seeds[a : a + runner.batch_size], psi, noise_mode, c, truncation_cutoff)
        s = vols.astype(np.float64).sum(axis=0)
        total = s if total is None else total + s
    return (total / len(seeds)).astype(np.float32)


def average_w_volume(runner, seeds, psi=1.0, noise_mode="const", c=None, truncation_cutoff=None, noise_seed=0):
    """The volume of the mean W of the seeds ([D, H, W, C]): the 'average brain' as the generator sees it."""
    z = np.stack([seed_to_z(s, runner.z_dim) for s in seeds])
    ws = runner.map(z, c, psi=psi, truncation_cutoff=truncation_cutoff).mean(axis=0, keepdims=True)
    return _synthesize_shared(runner, ws, noise_mode, noise_seed)[0]


def _synthesize_shared(runner, ws, noise_mode, noise_seed):
    # Noise identical for every item: 'random' draws one set from noise_seed, so only the styles differ.
    _check_mode(noise_mode)
    if noise_mode == "random" and runner.noise_shapes:
        return runner.synthesize(ws, noise=runner.shared_noise(noise_seed))
    return runner.synthesize(ws, noise_mode="const" if noise_mode == "random" else noise_mode)


# ---------------------------------------------------------------------------------------------------------------
# Style mixing.


def ws_resolutions(G):
    """Resolution (D, H, W) that each ws index controls (networks.layer_names: for an index shared by a ToRGB and
    the next block's conv0, the higher resolution). Falls back to StyleGAN2's numbering without layer_names."""
    try:
        from training import networks

        return [tuple(int(r) for r in res) for _, _, res in networks.layer_names(G)]
    except (ImportError, AttributeError):
        pass
    # Index 0 = base conv; stage l >= 1 uses 2l-1 and 2l; the last index is the final ToRGB.
    levels = _stage_shapes(G)
    return [levels[min((i + 1) // 2, len(levels) - 1)] for i in range(int(G.num_ws))]


def _stage_shapes(G):
    cfg = G.synthesis
    base = tuple(int(s) for s in getattr(cfg, "base_shape", (0, 0, 0)))
    ups = getattr(cfg, "up_factors", None)
    if not base[0] or ups is None:
        n = int(G.num_ws) // 2
        final = tuple(int(s) for s in G.img_shape)
        return [tuple(s // 2 ** (n - 1 - k) for s in final) for k in range(n)]
    shapes = [base]
    for f in ups:
        f = (f,) * 3 if np.isscalar(f) else tuple(f)
        shapes.append(tuple(s * int(u) for s, u in zip(shapes[-1], f, strict=True)))
    return shapes


def style_presets(G):
    """{'coarse'|'middle'|'fine': (ws indices, resolutions)} splitting the resolutions in thirds.

    coarse = the lowest third of the resolutions (global anatomy), fine = the highest third (detail), middle =
    the rest. At 2 mm (5 resolutions) that is coarse 5x6x7-10x12x14, middle 20x24x28, fine 40x48x56-80x96x112.
    """
    res_of_ws = ws_resolutions(G)
    levels = sorted(set(res_of_ws), key=lambda r: int(np.prod(r)))
    n = len(levels)
    k = max(1, round(n / 3))
    groups = {"coarse": levels[:k], "middle": levels[k : max(k, n - k)], "fine": levels[max(k, n - k) :]}
    return {
        name: ([i for i, r in enumerate(res_of_ws) if r in group], group) for name, group in groups.items()
    }


def describe_presets(G):
    lines = []
    for name, (idx, res) in style_presets(G).items():
        res_txt = ", ".join("x".join(map(str, r)) for r in res) or "(none at this depth)"
        idx_txt = f"{idx[0]}-{idx[-1]}" if idx else "-"
        lines.append(f"{name:>6}: ws {idx_txt:<6} resolutions {res_txt}")
    return "\n".join(lines)


def parse_styles(text, G):
    """--styles -> sorted ws indices taken from the column seed. Comma-separated tokens, each a preset (coarse,
    middle, fine), a resolution or resolution range named like the network's (10x12x14, 5x6x7-10x12x14), or ws
    index ranges (0-3). 'all' and 'none' stand alone."""
    from dnnlib.cli import parse_int_ranges

    num_ws = int(G.num_ws)
    text = str(text).strip().lower()
    if text in ("none", ""):
        return []
    if text == "all":
        return list(range(num_ws))
    presets, res_of_ws = style_presets(G), ws_resolutions(G)
    names = {"x".join(map(str, r)): r for r in res_of_ws}
    out = set()

    def fail(why):
        one_line = "; ".join(" ".join(line.split()) for line in describe_presets(G).splitlines())
        raise UserError(f"--styles={text}: {why} (presets: {one_line})")

    for tok in (t.strip() for t in text.split(",")):
        if tok in presets:
            if not presets[tok][0]:
                fail(f"this network is too shallow for a '{tok}' preset")
            out.update(presets[tok][0])
        elif "x" in tok:
            ends = tok.split("-")
            if len(ends) > 2 or any(e not in names for e in ends):
                fail(f"'{tok}' is not a resolution (range) of this network: {', '.join(names)}")
            sizes = [int(np.prod(names[e])) for e in ends]
            lo, hi = min(sizes), max(sizes)
            out.update(i for i, r in enumerate(res_of_ws) if lo <= int(np.prod(r)) <= hi)
        else:
            idx = parse_int_ranges(tok, "--styles")
            bad = [i for i in idx if not 0 <= i < num_ws]
            if bad:
                fail(f"indices {bad} out of range; this network has ws 0-{num_ws - 1}")
            out.update(idx)
    return sorted(out)


def style_mix(runner, row_seeds, col_seeds, col_styles, psi=1.0, noise_mode="const", c=None,
              truncation_cutoff=None, noise_seed=0):
    """Row seeds x column seeds; each cell takes the row seed's ws and the column seed's ws at col_styles.

    Noise never depends on the seed here (const maps, none, or one 'random' draw from noise_seed shared by
    every volume), so an empty col_styles reproduces the row seed's volume and all styles the column seed's.
    Returns dict rows [R,...], cols [C,...], mix [R, C, ...] (volumes in [-1, 1]).
    """
    seeds = list(row_seeds) + list(col_seeds)
    z = np.stack([seed_to_z(s, runner.z_dim) for s in seeds])
    ws = runner.map(z, c, psi=psi, truncation_cutoff=truncation_cutoff)
    row_ws, col_ws = ws[: len(row_seeds)], ws[len(row_seeds) :]
    mixed = np.repeat(row_ws[:, None], len(col_seeds), axis=1)  # [R, C, num_ws, w_dim]
    cols = list(col_styles)
    if cols:
        mixed[:, :, cols] = col_ws[None, :, cols]
    all_ws = np.concatenate([ws, mixed.reshape((-1,) + ws.shape[1:])], axis=0)
    vols = _synthesize_shared(runner, all_ws, noise_mode, noise_seed)
    r, n = len(row_seeds), len(seeds)
    from dnnlib import EasyDict

    return EasyDict(rows=vols[:r], cols=vols[r:n], mix=vols[n:].reshape((r, len(col_seeds)) + vols.shape[1:]))


# ---------------------------------------------------------------------------------------------------------------
# Interpolation.


def slerp(a, b, t):
    """Spherical interpolation along the last axis (magnitude interpolated linearly); lerp when parallel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    ua, ub = a / np.maximum(na, 1e-12), b / np.maximum(nb, 1e-12)
    dot = np.clip(np.sum(ua * ub, axis=-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(dot)
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    # Direction by slerp on the unit sphere, length by lerp: for Gaussian z this keeps the typical norm.
    direction = wa * ua + wb * ub
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
    return direction * ((1 - t) * na + t * nb)


def lerp(a, b, t):
    return (1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)


def interpolation_ts(num_seeds, frames):
    """(segment, t) pairs: `frames` per segment including both ends, shared ends counted once."""
    if frames < 2:
        raise UserError(f"--frames={frames}: need at least 2 frames per segment")
    out = []
    for seg in range(num_seeds - 1):
        for f in range(frames if seg == num_seeds - 2 else frames - 1):
            out.append((seg, f / (frames - 1)))
    return out


def interpolate(runner, seeds, frames=8, space="z", kind="linear", psi=1.0, noise_mode="const", c=None,
                truncation_cutoff=None, noise_seed=0):
    """Volumes along the path seeds[0] -> seeds[1] -> ... in Z or W, linear or spherical.

    Returns (volumes [F, D, H, W, C] in [-1, 1], list of (segment, t)). Noise is the same for every frame.
    """
    if len(seeds) < 2:
        raise UserError("--seeds: interpolation needs at least two seeds")
    if space not in ("z", "w"):
        raise UserError(f"--space={space!r}: expected z or w")
    if kind not in ("linear", "slerp"):
        raise UserError(f"--interp={kind!r}: expected linear or slerp")
    fn = slerp if kind == "slerp" else lerp
    z = np.stack([seed_to_z(s, runner.z_dim) for s in seeds])
    ts = interpolation_ts(len(seeds), frames)
    if space == "z":
        zs = np.stack([fn(z[s], z[s + 1], t) for s, t in ts]).astype(np.float32)
        ws = runner.map(zs, c, psi=psi, truncation_cutoff=truncation_cutoff)
    else:
        w = runner.map(z, c, psi=psi, truncation_cutoff=truncation_cutoff)
        ws = np.stack([fn(w[s], w[s + 1], t) for s, t in ts]).astype(np.float32)
    return _synthesize_shared(runner, ws, noise_mode, noise_seed), ts


# ---------------------------------------------------------------------------------------------------------------
# Output: NIfTI with the training data's geometry, PNG slices, GIF.


def output_affine(geometry, img_shape):
    """4x4 affine for written volumes: the training data's, or identity (with a warning) for a bare network."""
    aff = (geometry or {}).get("affine")
    if aff is None:
        warnings.warn("the network carries no dataset geometry: writing volumes with an identity affine "
                      "(1 mm voxels, no world position)", stacklevel=2)
        return np.eye(4)
    aff = np.asarray(aff, np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise UserError(f"the network's geometry has an invalid affine {aff.tolist()}")
    shape = (geometry or {}).get("shape")
    if shape is not None and tuple(int(s) for s in shape[:3]) != tuple(int(s) for s in img_shape):
        warnings.warn(f"the network's geometry shape {list(shape)} differs from its output {list(img_shape)}; "
                      "using the geometry's affine anyway", stacklevel=2)
    return aff


def _squeeze_channels(vol):
    vol = np.asarray(vol)
    return vol[..., 0] if vol.ndim == 4 and vol.shape[-1] == 1 else vol


def write_volume(path, vol, affine, uint8=False):
    """Write one [-1, 1] volume [D,H,W,C] as float32 NIfTI in [0, 1] at `path` (+ '_uint8' copy when asked)."""
    from volumes import volume_io

    unit = _squeeze_channels(to_unit_range(vol))
    volume_io.write_nifti(path, unit, affine, dtype="float32")
    if uint8:
        stem = path[: -len(".nii.gz")] if path.endswith(".nii.gz") else os.path.splitext(path)[0]
        volume_io.write_nifti(stem + "_uint8.nii.gz", unit, affine, dtype="uint8")


def png_scale(img_shape):
    """Integer enlargement so small (demo) volumes still give pictures about 128 pixels across."""
    return max(1, math.ceil(128 / max(int(d) for d in img_shape)))


def slice_to_uint8(sl, value_range=(-1.0, 1.0)):
    lo, hi = value_range
    return np.clip(np.rint((np.asarray(sl, np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def _image_bytes(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_strip_and_gif(png_path, gif_path, vols, axis=2, duration_ms=80):
    """Mid-slices of the frames side by side (PNG) and as an animation that loops forth and back (GIF)."""
    from PIL import Image

    from volumes import visualize

    frames = [slice_to_uint8(visualize.slice_2d(_squeeze_channels(v), axis)) for v in vols]
    scale = png_scale(np.shape(vols)[1:4])
    big = [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames]
    strip = np.concatenate([np.pad(f, ((0, 0), (0, 2))) for f in big], axis=1)[:, :-2]
    atomic_write_bytes(png_path, _image_bytes(Image.fromarray(strip), "PNG"))
    loop = [Image.fromarray(f) for f in big + big[-2:0:-1]]
    gif = _image_bytes(loop[0], "GIF", save_all=True, append_images=loop[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(gif_path, gif)


# ---------------------------------------------------------------------------------------------------------------
# Commands (what run_generator.py calls with its resolved options).

COMMANDS = ("generate", "style-mix", "interpolate", "average")
ORIENTATIONS = ("sagittal", "coronal", "axial")  # slice across array axis 0, 1, 2 (RAS data)


def _grids(prefix, vols, rows, cols):
    from volumes import visualize

    for axis, name in enumerate(ORIENTATIONS):
        visualize.grid_png(f"{prefix}_{name}.png", to_unit_range(vols), rows, cols, axis, drange=(0, 1),
                           scale=png_scale(vols.shape[1:4]))


def run_command(opts):
    """Load the network, run opts.command, write everything into opts.outdir atomically. Returns a summary dict."""
    from dnnlib import EasyDict
    from dnnlib.fileutil import atomic_output_dir
    from generation.network_loader import load_generator
    from volumes import visualize

    opts = EasyDict(opts)
    if opts.command not in COMMANDS:
        raise UserError(f"unknown command {opts.command!r}: expected one of {', '.join(COMMANDS)}")
    _check_mode(opts.noise_mode)
    net = load_generator(opts.network)
    G = net.G
    runner = Runner(G, batch_size=opts.get("batch", 4))
    c = make_label(runner.c_dim, opts.get("class_idx"), opts.get("label"))
    affine = output_affine(getattr(net, "geometry", None), G.img_shape)
    psi, cutoff = float(opts.get("psi", 1.0)), opts.get("truncation_cutoff")
    uint8 = bool(opts.get("uint8", False))
    scale = png_scale(G.img_shape)
    summary = EasyDict(command=opts.command, network=str(getattr(net, "source", opts.network)), outdir=opts.outdir)

    with atomic_output_dir(opts.outdir, overwrite=bool(opts.get("overwrite", False))) as out:
        def path(name):
            return os.path.join(out, name)

        if opts.command == "generate":
            seeds = list(opts.seeds)
            vols = generate(runner, seeds, psi, opts.noise_mode, c, cutoff)
            for s, v in zip(seeds, vols, strict=True):
                write_volume(path(f"seed{s:04d}.nii.gz"), v, affine, uint8)
                visualize.mid_slices_png(path(f"seed{s:04d}.png"), to_unit_range(v), (0, 1), scale)
            cols = min(len(seeds), int(opts.get("grid_cols", 8)))
            _grids(path("grid"), vols, math.ceil(len(seeds) / cols), cols)
            summary.files = len(seeds)

        elif opts.command == "style-mix":
            col_styles = parse_styles(opts.styles, G)
            res = style_mix(runner, opts.row_seeds, opts.col_seeds, col_styles, psi, opts.noise_mode, c, cutoff,
                            opts.get("noise_seed", 0))
            seeds = list(opts.row_seeds) + list(opts.col_seeds)
            for s, v in zip(seeds, np.concatenate([res.rows, res.cols]), strict=True):
                write_volume(path(f"seed{s:04d}.nii.gz"), v, affine, uint8)
            for i, r in enumerate(opts.row_seeds):
                for j, cs in enumerate(opts.col_seeds):
                    write_volume(path(f"mix-row{r:04d}-col{cs:04d}.nii.gz"), res.mix[i, j], affine, uint8)
            # Grid as in the StyleGAN papers: column seeds on top, row seeds on the left, mixes inside.
            blank = -np.ones_like(res.rows[:1])
            cells = [blank, res.cols]
            for i in range(len(opts.row_seeds)):
                cells += [res.rows[i : i + 1], res.mix[i]]
            _grids(path("stylemix"), np.concatenate(cells), len(opts.row_seeds) + 1, len(opts.col_seeds) + 1)
            summary.col_styles = col_styles
            summary.presets = describe_presets(G).splitlines()

        elif opts.command == "interpolate":
            vols, ts = interpolate(runner, list(opts.seeds), int(opts.frames), opts.space, opts.interp, psi,
                                   opts.noise_mode, c, cutoff, opts.get("noise_seed", 0))
            axis = int(opts.get("axis", 2))
            write_strip_and_gif(path("interpolation.png"), path("interpolation.gif"), vols, axis)
            if opts.get("save_frames", False):
                for f, v in enumerate(vols):
                    write_volume(path(f"frame{f:04d}.nii.gz"), v, affine, uint8)
            summary.frames = len(ts)

        else:  # average
            seeds = list(opts.seeds)
            mean = average_volume(runner, seeds, psi, opts.noise_mode, c, cutoff)
            mean_w = average_w_volume(runner, seeds, psi, "const" if opts.noise_mode == "random" else opts.noise_mode,
                                      c, cutoff)
            write_volume(path("average.nii.gz"), mean, affine, uint8)
            write_volume(path("average_w.nii.gz"), mean_w, affine, uint8)
            visualize.mid_slices_png(path("average.png"), to_unit_range(mean), (0, 1), scale)
            visualize.mid_slices_png(path("average_w.png"), to_unit_range(mean_w), (0, 1), scale)
            summary.num_seeds = len(seeds)

        EasyDict(options=opts, summary=summary).save_json(path("generation.json"))
    return summary
