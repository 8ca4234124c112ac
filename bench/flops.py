"""Analytic FLOP counts of the 3D StyleGAN2 networks and of one training step, phase by phase.

Counted from a config (training/configs.py layout), without building the networks, so it is instant
at any size. One multiply-add = 2 FLOPs. Counted: 3x3x3 convs (stride 1, transposed-upsampling and
strided-downsampling forms), 1x1x1 convs, dense layers. Not counted (elementwise, reported as "other"
time by the benchmarks): FIR resampling, bias/activation, modulation/demodulation, noise, mbstd.

Layer kinds and where their multiply-adds happen (mirrors training/networks.py):
  conv3  stride-1 3x3x3 conv at its output size         2 * vox * 27 * Cin * Cout
  up3    transposed conv (upsample_conv_3d) at the LOW-res input: each input voxel meets all 27 taps
  down3  strided conv (conv_downsample_3d) at the LOW-res output
  conv1  1x1x1 conv (fromRGB, toRGB, resnet skips; up1/down1 run at the low resolution)
  dense  fully connected (mapping, affine, epilogue)

Training-step cost model, in units of one forward pass of a network at a batch (F):
  a conv's input gradient and filter gradient each cost one forward (same multiply-adds).
  Gmain(B):  G fwd + dx + dw (3F_G);   D fwd + dx only (2F_D): D's weights are not updated.
  Dmain(B):  G fwd (1F_G);             D fwd + dx + dw at 2B (fakes and reals).
  Greg(B/s): path length, a gradient of a gradient: G fwd (1) + first backward, input grads only (1)
             + backward of both passes (2 + 2) = 6F_G at the shrunk batch.
  Dreg(B):   R1, same structure on D: 6F_D (R2 adds G fwd + 6F_D on fakes).
The mapping network runs twice in every G pass (style mixing draws z and z_mix).
A step, averaged over the lazy intervals = Gmain + Dmain + Greg / G_reg_interval + Dreg / D_reg_interval.
"""

import dataclasses
import math

import numpy as np

KINDS = ("conv3", "up3", "down3", "conv1", "dense")

# Multipliers (in forward-pass units) of each phase: {phase: [(net, batch factor, multiplier)]}.
_G_REG_MULT = 6
_D_REG_MULT = 6


@dataclasses.dataclass(frozen=True)
class Layer:
    """One weight layer, per sample. `spatial` is where the multiply-adds happen (see module doc)."""

    net: str  # "G", "G.mapping", "D", "D.mapping"
    name: str
    kind: str
    spatial: tuple  # (D, H, W); () for dense
    cin: int
    cout: int
    k: int = 1

    @property
    def flops(self):
        """Forward FLOPs for one sample (2 per multiply-add)."""
        vox = int(np.prod(self.spatial)) if self.spatial else 1
        return 2 * vox * self.k**3 * self.cin * self.cout

    @property
    def is_conv(self):
        return self.kind != "dense"

    def shape_key(self):
        """What the conv costs depend on: used to time the machine's forward speed at exactly this shape."""
        return (self.kind, tuple(self.spatial), self.cin, self.cout, self.k)


def _nf(stage, fmap_base, fmap_min, fmap_max):
    return int(np.clip(int(fmap_base / 2.0**stage), fmap_min, fmap_max))


def _resolutions(base_shape, up_factors):
    res = [tuple(int(b) for b in base_shape)]
    for f in up_factors:
        res.append(tuple(r * int(u) for r, u in zip(res[-1], f, strict=True)))
    return res


def _up_factors(kwargs, img_shape=None):
    f = kwargs.get("up_factors")
    if f is not None:
        return [tuple(int(a) for a in u) for u in f]
    base = tuple(kwargs.get("base_shape", (5, 6, 7)))
    if img_shape is None:
        return [(2, 2, 2)] * 4
    n = int(round(math.log2(int(img_shape[0]) // int(base[0]))))
    return [(2, 2, 2)] * n


def _mapping_layers(prefix, z_dim, c_dim, w_dim, num_layers=8, layer_features=None, embed_features=None, **_):
    layers = []
    embed = 0
    if c_dim > 0:
        embed = int(w_dim if embed_features is None else embed_features)
        layers.append(Layer(prefix, "embed", "dense", (), c_dim, embed))
    lf = int(w_dim if layer_features is None else layer_features)
    feats = [z_dim + embed] + [lf] * (int(num_layers) - 1) + [w_dim]
    layers += [Layer(prefix, f"fc{i}", "dense", (), feats[i], feats[i + 1]) for i in range(int(num_layers))]
    return layers


def generator_layers(G_kwargs, c_dim=0, img_channels=1, include_mapping=True):
    """Weight layers of the generator, per sample, in execution order."""
    s = dict(G_kwargs.get("synthesis_kwargs", {}))
    w_dim = int(G_kwargs["w_dim"])
    base = tuple(s.get("base_shape", (5, 6, 7)))
    ups = _up_factors(s)
    res = _resolutions(base, ups)
    arch = s.get("architecture", "orig")
    fm = (int(s.get("fmap_base", 96)), int(s.get("fmap_min", 96)), int(s.get("fmap_max", 96)))
    layers = []
    if include_mapping:
        m = dict(G_kwargs.get("mapping_kwargs", {}))
        layers += _mapping_layers("G.mapping", int(G_kwargs["z_dim"]), c_dim, w_dim, **m)
    top = len(res) - 1
    for stage, r in enumerate(res):
        out = _nf(stage, *fm)
        tag = "b" + "x".join(map(str, r))
        if stage == 0:
            layers.append(Layer("G", f"{tag}.conv.affine", "dense", (), w_dim, out))
            layers.append(Layer("G", f"{tag}.conv", "conv3", r, out, out, 3))
        else:
            cin, low = _nf(stage - 1, *fm), res[stage - 1]
            if arch == "resnet":
                layers.append(Layer("G", f"{tag}.skip", "conv1", low, cin, out))
            layers.append(Layer("G", f"{tag}.conv0.affine", "dense", (), w_dim, cin))
            layers.append(Layer("G", f"{tag}.conv0", "up3", low, cin, out, 3))
            layers.append(Layer("G", f"{tag}.conv1.affine", "dense", (), w_dim, out))
            layers.append(Layer("G", f"{tag}.conv1", "conv3", r, out, out, 3))
        if stage == top or arch == "skip":
            layers.append(Layer("G", f"{tag}.torgb.affine", "dense", (), w_dim, out))
            layers.append(Layer("G", f"{tag}.torgb", "conv1", r, out, img_channels))
    return layers


def discriminator_layers(D_kwargs, c_dim=0, img_channels=1):
    """Weight layers of the discriminator, per sample, in execution order."""
    d = dict(D_kwargs)
    base = tuple(d.get("base_shape", (5, 6, 7)))
    ups = _up_factors(d, d.get("img_shape"))
    res = _resolutions(base, ups)
    arch = d.get("architecture", "resnet")
    fm = (int(d.get("fmap_base", 96)), int(d.get("fmap_min", 96)), int(d.get("fmap_max", 96)))
    mbstd = int(d.get("mbstd_num_features", 1))
    layers = []
    top = len(res) - 1
    for stage in range(top, 0, -1):
        r, low = res[stage], res[stage - 1]
        tmp, out = _nf(stage, *fm), _nf(stage - 1, *fm)
        tag = "b" + "x".join(map(str, r))
        if stage == top or arch == "skip":
            layers.append(Layer("D", f"{tag}.fromrgb", "conv1", r, img_channels, tmp))
        if arch == "resnet":
            layers.append(Layer("D", f"{tag}.skip", "conv1", low, tmp, out))
        layers.append(Layer("D", f"{tag}.conv0", "conv3", r, tmp, tmp, 3))
        layers.append(Layer("D", f"{tag}.conv1_down", "down3", low, tmp, out, 3))
    nf0 = _nf(0, *fm)
    tag = "b" + "x".join(map(str, base))
    cmap = 0
    if c_dim > 0:
        cmap = int(d.get("cmap_dim") or nf0)
        m = dict(d.get("mapping_kwargs") or {})
        layers += _mapping_layers("D.mapping", 0, c_dim, cmap, **m)
    if arch == "skip" or (top == 0 and arch != "skip"):
        layers.append(Layer("D", f"{tag}.fromrgb", "conv1", base, img_channels, nf0))
    layers.append(Layer("D", f"{tag}.conv", "conv3", base, nf0 + mbstd, nf0, 3))
    layers.append(Layer("D", f"{tag}.fc", "dense", (), nf0 * int(np.prod(base)), nf0))
    layers.append(Layer("D", f"{tag}.out", "dense", (), nf0, cmap if cmap else 1))
    return layers


def forward_flops(layers, convs_only=False):
    """Forward FLOPs of one sample through `layers`."""
    return sum(layer.flops for layer in layers if layer.is_conv or not convs_only)


def _split_mapping(layers):
    return [la for la in layers if not la.net.endswith("mapping")], [la for la in layers if la.net.endswith("mapping")]


def phase_terms(cfg, batch=None, c_dim=0, img_channels=1):
    """{phase: [(layers, samples, multiplier)]}: the work of each phase of a training step.

    Phases as training/loss.py runs them: Gmain, Dmain every step; Greg (path length) every
    G_reg_interval steps on batch / pl_batch_shrink samples; Dreg (R1 and/or R2) every D_reg_interval.
    """
    B = int(batch or cfg["batch_size"])
    lk = cfg["loss_kwargs"]
    g_all = generator_layers(cfg["G_kwargs"], c_dim, img_channels)
    g_syn, g_map = _split_mapping(g_all)
    d_all = discriminator_layers(cfg["D_kwargs"], c_dim, img_channels)
    shrink = max(1, int(lk.get("pl_batch_shrink", 2)))
    # G forward = mapping twice (style mixing) + synthesis.
    terms = {
        "Gmain": [(g_syn, B, 3), (g_map, 2 * B, 3), (d_all, B, 2)],
        "Dmain": [(g_syn, B, 1), (g_map, 2 * B, 1), (d_all, 2 * B, 3)],
    }
    if float(lk.get("pl_weight", 0)) > 0:
        terms["Greg"] = [(g_syn, B // shrink, _G_REG_MULT), (g_map, 2 * (B // shrink), _G_REG_MULT)]
    dreg = []
    if float(lk.get("r1_gamma", 0)) > 0:
        dreg.append((d_all, B, _D_REG_MULT))
    if float(lk.get("r2_gamma", 0)) > 0:
        dreg += [(g_syn, B, 1), (g_map, 2 * B, 1), (d_all, B, _D_REG_MULT)]
    if dreg:
        terms["Dreg"] = dreg
    return terms


def phase_weights(cfg):
    """How often each phase runs per step: 1 for the main phases, 1/interval for the lazy regularisers."""
    lk = cfg["loss_kwargs"]
    gi, di = int(lk.get("G_reg_interval") or 0), int(lk.get("D_reg_interval") or 0)
    return {"Gmain": 1.0, "Dmain": 1.0, "Greg": 1.0 / gi if gi else 1.0, "Dreg": 1.0 / di if di else 1.0}


def phase_flops(cfg, batch=None, c_dim=0, img_channels=1, convs_only=False):
    """{phase: FLOPs of one execution of that phase}."""
    out = {}
    for phase, terms in phase_terms(cfg, batch, c_dim, img_channels).items():
        out[phase] = sum(forward_flops(layers, convs_only) * n * mult for layers, n, mult in terms)
    return out


def step_flops(cfg, batch=None, c_dim=0, img_channels=1, convs_only=False):
    """FLOPs of one training step averaged over the lazy regularisation intervals."""
    w = phase_weights(cfg)
    return sum(f * w[p] for p, f in phase_flops(cfg, batch, c_dim, img_channels, convs_only).items())


def conv_work(cfg, batch=None, c_dim=0, img_channels=1, phases=None):
    """{shape_key: FLOPs per averaged step} for every distinct conv shape of the step (multipliers applied).

    With a forward GFLOP/s measured at each key, sum(flops / rate) is the time the step's convolutions
    would take if every gradient ran at forward speed: the benchmark's "peak" time. phases: restrict to these.
    """
    w = phase_weights(cfg)
    work = {}
    for phase, terms in phase_terms(cfg, batch, c_dim, img_channels).items():
        if phases is not None and phase not in phases:
            continue
        for layers, n, mult in terms:
            for layer in layers:
                if layer.is_conv:
                    key = layer.shape_key()
                    work[key] = work.get(key, 0.0) + layer.flops * n * mult * w[phase]
    return work


def describe(cfg, batch=None, c_dim=0, img_channels=1):
    """Printable summary: per-network forward FLOPs per sample and per-phase/step totals."""
    g = generator_layers(cfg["G_kwargs"], c_dim, img_channels)
    d = discriminator_layers(cfg["D_kwargs"], c_dim, img_channels)
    B = int(batch or cfg["batch_size"])
    lines = [f"G forward/sample: {forward_flops(g) / 1e9:.3f} GFLOP (convs {forward_flops(g, True) / 1e9:.3f})",
             f"D forward/sample: {forward_flops(d) / 1e9:.3f} GFLOP (convs {forward_flops(d, True) / 1e9:.3f})"]
    w = phase_weights(cfg)
    for p, f in phase_flops(cfg, B, c_dim, img_channels).items():
        lines.append(f"{p:<6} batch {B}: {f / 1e9:10.2f} GFLOP per run, weight {w[p]:.4g} per step")
    lines.append(f"step (lazy-averaged) batch {B}: {step_flops(cfg, B, c_dim, img_channels) / 1e9:.2f} GFLOP")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from training.configs import CONFIGS, get_config

    for name in sys.argv[1:] or list(CONFIGS):
        print(f"== {name}")
        print(describe(get_config(name)))
