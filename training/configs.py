"""Named training configurations: the original 3D-StyleGAN table plus small CPU demo configs.

Each config is an EasyDict with the keys of docs/DESIGN.md. G_kwargs / D_kwargs are the Generator /
Discriminator keyword arguments without c_dim and img_channels (those come from the dataset).

The named paper configs train as the original did by default: regularisers on every step (no lazy intervals, so no
lr/beta correction), D resampling with the original's [1,3,3,3,1] filter then decimation, and R2 at the original's
effective strength (see ORIGINAL_R2_GAMMA). G keeps true upfirdn with [1,3,3,1] (the original's nearest-neighbour
upsampling and 2D gain were defects). Demo configs use lazy regularisation, where speed matters.
"""

import copy

from dnnlib import EasyDict
from dnnlib.errors import InputError

# StyleGAN2's lazy regularisation: path length every 4 G steps, R1/R2 every 16 D steps (lr/betas corrected).
LAZY_REG_INTERVALS = (4, 16)
G_RESAMPLE_FILTER = [1, 3, 3, 1]
# The original's discriminator filter (filter then decimate: no defect there, so the paper configs keep it).
ORIGINAL_D_RESAMPLE_FILTER = [1, 3, 3, 3, 1]
# The R2 gamma the original's R2 config names. Its penalty was summed over three of the four non-batch axes of the
# NCDHW gradient, leaving [N, W], then averaged with the [N, 1] loss: an effective weight of gamma / W.
ORIGINAL_R2_GAMMA = 10.0
def original_r2_gamma(gamma, img_shape):
    """Our R2 weight (sum over every axis) equal to the original's R2 with `gamma`: gamma / W, W the last axis."""
    return float(gamma) / int(img_shape[-1])


def _paper(z_w, fmaps, batch_gpu, r1_gamma=0.0, r2_gamma=0.0, d_arch="resnet", resolution="2mm",
           base_shape=(5, 6, 7), use_noise=True, img_shape=None, spacing_mm=None):
    """One row of REFERENCE.md's table. Every published config has fmap_min = fmap_max = F.

    r2_gamma is the original's nominal value; the config stores its effective strength (original_r2_gamma).
    """
    n_up = {"1mm": 5, "2mm": 4}.get(resolution, 4)
    up_factors = [[2, 2, 2]] * n_up
    if img_shape is None:
        img_shape = [b * 2**n_up for b in base_shape]
    if spacing_mm is None and resolution in ("1mm", "2mm"):
        spacing_mm = [float(resolution[0])] * 3
    return _make(
        z_dim=z_w, w_dim=z_w, mapping_layers=8, fmap_base=fmaps, fmap_min=fmaps, fmap_max=fmaps,
        base_shape=base_shape, up_factors=up_factors, g_arch="orig", d_arch=d_arch, use_noise=use_noise,
        batch_gpu=batch_gpu, r1_gamma=r1_gamma, r2_gamma=original_r2_gamma(r2_gamma, img_shape),
        img_shape=img_shape, spacing_mm=spacing_mm, total_kimg=25000,
        kimg_per_tick=12 if resolution == "1mm" else 8, ema_kimg=10.0, ema_rampup=None, lazy_reg=False,
        d_filter=ORIGINAL_D_RESAMPLE_FILTER, batch_per_device=True)


def _make(z_dim, w_dim, mapping_layers, fmap_base, fmap_min, fmap_max, base_shape, up_factors, g_arch, d_arch,
          use_noise, batch_gpu, r1_gamma, r2_gamma, img_shape, spacing_mm, total_kimg, kimg_per_tick, ema_kimg,
          ema_rampup, batch_size=None, lr=0.002, lazy_reg=True, d_filter=G_RESAMPLE_FILTER, batch_per_device=False):
    """batch_per_device: the batch is per device, as the original's minibatch_size (the global batch is batch_gpu
    times the number of devices); False: batch_size is the global batch whatever the devices."""
    fmaps = dict(fmap_base=fmap_base, fmap_min=fmap_min, fmap_max=fmap_max)
    g_reg_interval, d_reg_interval = LAZY_REG_INTERVALS if lazy_reg else (0, 0)  # 0: every step, no correction
    return EasyDict(
        G_kwargs=EasyDict(
            z_dim=z_dim, w_dim=w_dim,
            mapping_kwargs=EasyDict(num_layers=mapping_layers, lr_multiplier=0.01, w_avg_beta=0.995),
            synthesis_kwargs=EasyDict(base_shape=list(base_shape), up_factors=[list(f) for f in up_factors],
                                      architecture=g_arch, resample_filter=list(G_RESAMPLE_FILTER),
                                      use_noise=use_noise, conv_clamp=None, compute_dtype="float32", **fmaps),
        ),
        D_kwargs=EasyDict(img_shape=list(img_shape), base_shape=list(base_shape),
                          up_factors=[list(f) for f in up_factors], architecture=d_arch, mbstd_group_size=4,
                          mbstd_num_features=1, resample_filter=list(d_filter), conv_clamp=None,
                          compute_dtype="float32", **fmaps),
        loss_kwargs=EasyDict(r1_gamma=float(r1_gamma), r2_gamma=float(r2_gamma), pl_weight=2.0, pl_decay=0.01,
                             pl_batch_shrink=2, style_mixing_prob=0.9, G_reg_interval=g_reg_interval,
                             D_reg_interval=d_reg_interval),
        G_opt_kwargs=EasyDict(lr=lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
        D_opt_kwargs=EasyDict(lr=lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
        batch_size=int(batch_size or batch_gpu), batch_gpu=int(batch_gpu), batch_per_device=bool(batch_per_device),
        ema_kimg=float(ema_kimg), ema_rampup=ema_rampup, total_kimg=total_kimg, kimg_per_tick=kimg_per_tick,
        img_shape=list(img_shape), spacing_mm=None if spacing_mm is None else [float(s) for s in spacing_mm],
    )


CONFIGS = {
    # --- The original's named configs (REFERENCE.md). Batch = the per-GPU batch of the table: on N devices the
    # global batch is N times it, as the original's run_training.py (minibatch_size_base = batch * num_gpus).
    "Gorig-Dres-3d-1mm-base567": _paper(96, 18, 2, r1_gamma=10, resolution="1mm"),
    "Gorig-Dorig-3d-1mm-base567": _paper(96, 16, 2, d_arch="orig", resolution="1mm"),
    "Gorig-Dorig-r1-3d-1mm-base567": _paper(96, 24, 2, r1_gamma=10, d_arch="orig", resolution="1mm"),
    "Gorig-Dres-3d-2mm-base567": _paper(96, 96, 8),
    "Gorig-Dres-R1-3d-2mm-base567": _paper(128, 96, 2, r1_gamma=10),
    # R2 at the original's effective strength: 10 / 112 = 0.089 (our R2 sums over every axis; see ORIGINAL_R2_GAMMA).
    "Gorig-Dres-R2-3d-2mm-base567": _paper(96, 16, 2, r2_gamma=ORIGINAL_R2_GAMMA),
    "Gorig-Dres-DeepFil-R1-3d-2mm-base567": _paper(128, 128, 2, r1_gamma=10),
    # Base 16x16x2 with 4 isotropic stages -> 256x256x32; no noise inputs. Spacing None: the original
    # names no voxel size for this data set, so the dataset manifest supplies it.
    "Gorig-Dres-R1-3d-MG-base16162": _paper(128, 96, 4, r1_gamma=10, resolution="MG", base_shape=(16, 16, 2),
                                            use_noise=False),
    # --- CPU demo: 40x48x56 at 4 mm (base 5x6x7, 3 stages), features 64 at the base tapering to 8 at the top.
    # EMA half-life 1 kimg with ramp-up: a demo run sees only a few kimg, so 10 kimg would lag far behind.
    "demo": _make(z_dim=64, w_dim=64, mapping_layers=4, fmap_base=64, fmap_min=8, fmap_max=64,
                  base_shape=(5, 6, 7), up_factors=[(2, 2, 2)] * 3, g_arch="orig", d_arch="resnet",
                  use_noise=True, batch_gpu=4, r1_gamma=1.0, r2_gamma=0.0, img_shape=(40, 48, 56),
                  spacing_mm=(4, 4, 4), total_kimg=20, kimg_per_tick=0.2, ema_kimg=1.0, ema_rampup=0.05),
    # --- Tests: 20x24x28 at 8 mm, 2 stages, 8 -> 4 features, w 16, 2 mapping layers.
    "demo-tiny": _make(z_dim=16, w_dim=16, mapping_layers=2, fmap_base=8, fmap_min=4, fmap_max=8,
                       base_shape=(5, 6, 7), up_factors=[(2, 2, 2)] * 2, g_arch="orig", d_arch="resnet",
                       use_noise=True, batch_gpu=2, r1_gamma=1.0, r2_gamma=0.0, img_shape=(20, 24, 28),
                       spacing_mm=(8, 8, 8), total_kimg=1, kimg_per_tick=0.02, ema_kimg=0.1, ema_rampup=0.05),
}

# --- CPU demo with a wider generator: the synthesis feature maps doubled (128 at the base, 16 at the top), the
# discriminator and every other setting as "demo". At demo scale the narrow generator is what limits how well it
# reproduces held-out volumes; bench/bench_capacity.py widens a trained "demo" run into this config without
# changing what it generates.
CONFIGS["demo-wide"] = copy.deepcopy(CONFIGS["demo"])
CONFIGS["demo-wide"].G_kwargs.synthesis_kwargs.update(fmap_base=128, fmap_min=16, fmap_max=128)

# Augmentation defaults (training/augment.py): every config has "aug" and "ada_kimg". The paper trained without
# augmentation, so its configs keep noaug; the CPU demo configs a user trains learn from a few dozen volumes, where D
# overfits first, so they adapt p, fast enough (0 -> 1 in 20 kimg) to matter within a demo run; a no-flag run of them
# gets a wall-clock budget (train_options.DEMO_MINUTES). demo-tiny (tests) stays noaug.
CPU_DEMO_CONFIGS = ("demo", "demo-wide")
for _name, _cfg in CONFIGS.items():
    _demo = _name in CPU_DEMO_CONFIGS
    _cfg.update(aug="ada" if _demo else "noaug", ada_kimg=20.0 if _demo else 500.0)

PAPER_CONFIGS = [name for name in CONFIGS if not name.startswith("demo")]


def get_config(name):
    """A deep copy of the named config (callers may edit it freely)."""
    if name not in CONFIGS:
        raise InputError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return EasyDict.from_obj(copy.deepcopy(CONFIGS[name]))


def build_networks(cfg, c_dim=0, img_channels=1):
    """(G, D) for a config (a name or a config dict); c_dim and img_channels come from the dataset."""
    from training.networks import Discriminator, Generator

    if isinstance(cfg, str):
        cfg = get_config(cfg)
    G = Generator(c_dim=c_dim, img_channels=img_channels, **copy.deepcopy(dict(cfg["G_kwargs"])))
    D = Discriminator(c_dim=c_dim, img_channels=img_channels, **copy.deepcopy(dict(cfg["D_kwargs"])))
    if tuple(G.img_shape) != tuple(D.img_shape):
        raise InputError(f"config: generator makes {G.img_shape} volumes but the discriminator expects {D.img_shape}")
    return G, D
