"""Named training configurations: the original 3D-StyleGAN table plus small CPU demo configs.

Each config is an EasyDict with the keys of docs/DESIGN.md. G_kwargs / D_kwargs are the Generator /
Discriminator keyword arguments without c_dim and img_channels (those come from the dataset).
"""

import copy

from dnnlib import EasyDict


def _paper(z_w, fmaps, batch_gpu, r1_gamma=0.0, r2_gamma=0.0, d_arch="resnet", resolution="2mm",
           base_shape=(5, 6, 7), use_noise=True, img_shape=None, spacing_mm=None):
    """One row of REFERENCE.md's table. Every published config has fmap_min = fmap_max = F."""
    n_up = {"1mm": 5, "2mm": 4}.get(resolution, 4)
    up_factors = [[2, 2, 2]] * n_up
    if img_shape is None:
        img_shape = [b * 2**n_up for b in base_shape]
    if spacing_mm is None and resolution in ("1mm", "2mm"):
        spacing_mm = [float(resolution[0])] * 3
    return _make(
        z_dim=z_w, w_dim=z_w, mapping_layers=8, fmap_base=fmaps, fmap_min=fmaps, fmap_max=fmaps,
        base_shape=base_shape, up_factors=up_factors, g_arch="orig", d_arch=d_arch, use_noise=use_noise,
        batch_gpu=batch_gpu, r1_gamma=r1_gamma, r2_gamma=r2_gamma, img_shape=img_shape, spacing_mm=spacing_mm,
        total_kimg=25000, kimg_per_tick=8 if resolution != "1mm" else 4, ema_kimg=10.0, ema_rampup=None)


def _make(z_dim, w_dim, mapping_layers, fmap_base, fmap_min, fmap_max, base_shape, up_factors, g_arch, d_arch,
          use_noise, batch_gpu, r1_gamma, r2_gamma, img_shape, spacing_mm, total_kimg, kimg_per_tick, ema_kimg,
          ema_rampup, batch_size=None, lr=0.002):
    fmaps = dict(fmap_base=fmap_base, fmap_min=fmap_min, fmap_max=fmap_max)
    return EasyDict(
        G_kwargs=EasyDict(
            z_dim=z_dim, w_dim=w_dim,
            mapping_kwargs=EasyDict(num_layers=mapping_layers, lr_multiplier=0.01, w_avg_beta=0.995),
            synthesis_kwargs=EasyDict(base_shape=list(base_shape), up_factors=[list(f) for f in up_factors],
                                      architecture=g_arch, resample_filter=[1, 3, 3, 1], use_noise=use_noise,
                                      conv_clamp=None, compute_dtype="float32", **fmaps),
        ),
        D_kwargs=EasyDict(img_shape=list(img_shape), base_shape=list(base_shape),
                          up_factors=[list(f) for f in up_factors], architecture=d_arch, mbstd_group_size=4,
                          mbstd_num_features=1, resample_filter=[1, 3, 3, 1], conv_clamp=None,
                          compute_dtype="float32", **fmaps),
        loss_kwargs=EasyDict(r1_gamma=float(r1_gamma), r2_gamma=float(r2_gamma), pl_weight=2.0, pl_decay=0.01,
                             pl_batch_shrink=2, style_mixing_prob=0.9, G_reg_interval=4, D_reg_interval=16),
        G_opt_kwargs=EasyDict(lr=lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
        D_opt_kwargs=EasyDict(lr=lr, beta_1=0.0, beta_2=0.99, epsilon=1e-8),
        batch_size=int(batch_size or batch_gpu), batch_gpu=int(batch_gpu),
        ema_kimg=float(ema_kimg), ema_rampup=ema_rampup, total_kimg=total_kimg, kimg_per_tick=kimg_per_tick,
        img_shape=list(img_shape), spacing_mm=None if spacing_mm is None else [float(s) for s in spacing_mm],
    )


CONFIGS = {
    # --- The original's named configs (REFERENCE.md). Batch = the per-GPU batch of the table, one replica.
    "Gorig-Dres-3d-1mm-base567": _paper(96, 18, 2, r1_gamma=10, resolution="1mm"),
    "Gorig-Dorig-3d-1mm-base567": _paper(96, 16, 2, d_arch="orig", resolution="1mm"),
    "Gorig-Dorig-r1-3d-1mm-base567": _paper(96, 24, 2, r1_gamma=10, d_arch="orig", resolution="1mm"),
    "Gorig-Dres-3d-2mm-base567": _paper(96, 96, 8),
    "Gorig-Dres-R1-3d-2mm-base567": _paper(128, 96, 2, r1_gamma=10),
    "Gorig-Dres-R2-3d-2mm-base567": _paper(96, 16, 2, r2_gamma=10),
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

PAPER_CONFIGS = [name for name in CONFIGS if not name.startswith("demo")]


def get_config(name):
    """A deep copy of the named config (callers may edit it freely)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of: {', '.join(CONFIGS)}")
    return EasyDict.from_obj(copy.deepcopy(CONFIGS[name]))


def build_networks(cfg, c_dim=0, img_channels=1):
    """(G, D) for a config (a name or a config dict); c_dim and img_channels come from the dataset."""
    from training.networks import Discriminator, Generator

    if isinstance(cfg, str):
        cfg = get_config(cfg)
    G = Generator(c_dim=c_dim, img_channels=img_channels, **copy.deepcopy(dict(cfg["G_kwargs"])))
    D = Discriminator(c_dim=c_dim, img_channels=img_channels, **copy.deepcopy(dict(cfg["D_kwargs"])))
    if tuple(G.img_shape) != tuple(D.img_shape):
        raise ValueError(f"config: generator makes {G.img_shape} volumes but the discriminator expects {D.img_shape}")
    return G, D
