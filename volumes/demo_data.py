"""The built-in demo dataset: synthetic T1 brains made offline from the MNI152 template.

nilearn ships the (brain-masked) MNI152 T1 template inside its wheel, so nothing is downloaded. Each
volume is the template warped by a random smooth diffeomorphism (a Gaussian-smoothed random velocity
field integrated by scaling and squaring, composed with a small random global scaling), multiplied by
a smooth bias field, gamma-adjusted (contrast), given Rician noise inside the brain, then normalised
exactly like real scans. Each subject also has an age and a group that drive a stated atrophy (ventricle
enlargement, sulcal widening: volumes/demo_cohort.py); the manifest lists them and each volume's true ventricle
volume under files[].covariates. Everything follows from the seed. The manifest says "synthetic": true.
"""

import contextlib
import os
import time

import numpy as np

from dnnlib.easydict import EasyDict
from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_output_dir, check_output_dir, share_permissions
from volumes import demo_cohort, preprocess, records, work_pool
from volumes.manifest import load_manifest, make_manifest, write_manifest

# res name -> output shape, spacing (mm), default count.
RESOLUTIONS = {
    "demo": EasyDict(shape=(40, 48, 56), spacing=4.0, num_volumes=200),
    "2mm": EasyDict(shape=(80, 96, 112), spacing=2.0, num_volumes=200),
}

# Strength of the random variations (mm, fractions); documented in the manifest.
DEFAULT_VARIATION = EasyDict(
    velocity_mm=5.0,  # std of the smoothed velocity field (peak displacement ~ a few mm)
    velocity_smooth_mm=20.0,  # Gaussian smoothing of the velocity noise
    squaring_steps=6,
    global_scale=0.06,  # +-6% head size (uniform)
    bias=0.12,  # multiplicative bias field std (log scale)
    bias_smooth_mm=60.0,
    gamma=(0.75, 1.35),  # contrast: v ** gamma, gamma log-uniform in this range
    noise=(0.005, 0.02),  # Rician noise sigma as a fraction of full scale
)


_MNI_FILE = os.path.join("datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
_INSTALL_HINT = (
    "the demo dataset needs nilearn (it ships the MNI152 template offline): "
    "pip install nilearn   (or: pip install 'stylegan3d-tf2[demo]')"
)


def template_dir():
    """The installed nilearn package folder (its datasets/data holds the MNI152 template and tissue maps)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(_INSTALL_HINT)
    return list(spec.submodule_search_locations)[0]


def load_template():
    """(volume float32 [i,j,k] in [0,1], RAS affine) of nilearn's 1 mm skull-stripped MNI152 T1 template.

    The file is read straight from the installed package: importing nilearn.datasets pulls in scikit-learn and
    pandas, and its own loader returns the same array. FileNotFoundError (the template is missing) says what
    to install.
    """
    import nibabel as nib

    path = os.path.join(template_dir(), _MNI_FILE)
    if os.path.isfile(path):
        img = nib.load(path)
    else:  # a nilearn release that moved the file: ask its API
        try:
            from nilearn.datasets import load_mni152_template
        except ImportError:
            raise FileNotFoundError(_INSTALL_HINT) from None
        img = load_mni152_template(resolution=1)
    vol = np.clip(np.asarray(img.get_fdata(dtype=np.float32)), 0, None)
    return vol / max(float(vol.max()), 1e-6), np.asarray(img.affine, dtype=np.float64)


def _smooth_noise(rng, shape, sigma_vox, scale):
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return f * (scale / max(float(f.std()), 1e-6))


def _coarse_shape(shape):
    return tuple(max(4, s // 4) for s in shape)


def _upsample(fields, shape):
    """Linear interpolation of coarse fields [c, *coarse] (cell-centred) up to [c, *shape].

    Separable, one axis at a time with NumPy gathers, which is cheaper than map_coordinates on the full grid.
    Edges clamp (the same as map_coordinates' mode="nearest").
    """
    out = np.asarray(fields, dtype=np.float32)
    for axis, s in enumerate(shape, start=1):
        c = out.shape[axis]
        x = np.clip((np.arange(s) + 0.5) * c / s - 0.5, 0, c - 1)
        i0 = np.floor(x).astype(np.int64)
        i1 = np.minimum(i0 + 1, c - 1)
        w = (x - i0).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i1, axis=axis) * w
    return out


def random_velocity_exp(rng, coarse, c_spacing, var):
    """Diffeomorphic displacement [3, *coarse] in mm: exp of a smooth random velocity field.

    Drawn and integrated on a coarse grid (the field is smooth anyway) by scaling and squaring:
    u <- u + u o (x + u), squaring_steps times, starting from v / 2^steps.
    """
    from scipy import ndimage

    sigma = var.velocity_smooth_mm / c_spacing
    v = np.stack([_smooth_noise(rng, coarse, sigma, var.velocity_mm) for _ in range(3)])  # mm
    u = v / (2.0**var.squaring_steps) / c_spacing[:, None, None, None]  # coarse voxels
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in coarse], indexing="ij"))
    for _ in range(var.squaring_steps):
        pts = grid + u
        u = u + np.stack([ndimage.map_coordinates(u[a], pts, order=1, mode="nearest") for a in range(3)])
    return u * c_spacing[:, None, None, None]


def synth_volume(seed, template, t_affine, out_affine, shape, var, cohort=None):
    """One synthetic volume in [0, 1] on the output grid (out_affine, shape) and a record of its parameters.

    cohort: the template's atrophy fields (demo_cohort.atrophy_fields, antialiased like the template) or None.
    With them the subject gets its covariates (demo_cohort.draw_covariates), its atrophy, and params["covariates"]
    holds age, group and the true ventricle volume; params["ventricle_mask"] (not JSON) is that mask on the grid.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    spacing = np.linalg.norm(out_affine[:3, :3], axis=0)
    coarse = _coarse_shape(shape)
    c_spacing = spacing * np.asarray(shape) / np.asarray(coarse)
    ijk = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")).reshape(3, -1)
    world = out_affine[:3, :3] @ ijk + out_affine[:3, 3:4]
    centre = out_affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + out_affine[:3, 3]
    scale = float(np.exp(rng.uniform(-var.global_scale, var.global_scale)))
    disp = random_velocity_exp(rng, coarse, c_spacing, var)
    log_bias = _smooth_noise(rng, coarse, var.bias_smooth_mm / c_spacing, var.bias)
    fine = _upsample(np.concatenate([disp, log_bias[None]]), shape).reshape(4, -1)
    # Pull-back: the output voxel at x shows the template at centre + (x + u(x) - centre) / scale, after atrophy.
    src_world = centre[:, None] + (world + fine[:3] - centre[:, None]) / scale
    params = {"seed": int(seed), "global_scale": scale}
    if cohort is None:
        src_vox = demo_cohort.template_points(src_world, t_affine, None, 0.0)
        vol = ndimage.map_coordinates(template, src_vox, order=1, mode="constant", cval=0.0).reshape(shape)
    else:
        age, group = demo_cohort.draw_covariates(seed)
        a = demo_cohort.atrophy_fraction(age, group)
        src_vox = demo_cohort.template_points(src_world, t_affine, cohort.direction, a)

        def sample(field):
            return ndimage.map_coordinates(field, src_vox, order=1, mode="constant", cval=0.0).reshape(shape)

        vol = np.clip(sample(template) + demo_cohort.SULCAL_BLEND * a * sample(cohort.difference), 0, None)
        vent = np.clip(sample(cohort.ventricle), 0, 1)
        vent_ml = float(vent.sum() * np.prod(spacing) / 1000.0)
        params["covariates"] = {"age": round(age, 3), "group": group, "ventricle_volume_ml": round(vent_ml, 4)}
    brain = vol > 0.02
    bias = np.exp(fine[3]).reshape(shape)
    gamma = float(np.exp(rng.uniform(np.log(var.gamma[0]), np.log(var.gamma[1]))))
    sigma = float(rng.uniform(*var.noise))
    v = np.clip(vol * bias, 0, None) ** gamma
    n1, n2 = rng.standard_normal((2, *shape), dtype=np.float32) * sigma
    v = np.sqrt((v + n1) ** 2 + n2**2)  # Rician: magnitude of a complex signal with Gaussian noise
    v = np.where(brain, v, 0.0).astype(np.float32)  # skull-stripped like the template: air stays 0
    out, intensity = preprocess.normalize_intensity(v, brain)
    params.update(gamma=gamma, noise_sigma=sigma, intensity=intensity)
    if cohort is not None:
        params["ventricle_mask"] = vent.astype(np.float32)
    return out, params


def cohort_fields(template, t_affine, spacing):
    """The template's atrophy fields (demo_cohort.atrophy_fields), antialiased for output voxels of `spacing` mm
    like the template itself; direction is smooth already."""
    ventricle, direction, difference = demo_cohort.atrophy_fields(template, t_affine, template_dir())
    return EasyDict(
        ventricle=preprocess.antialias(ventricle, t_affine, spacing)[0],
        direction=direction,
        difference=preprocess.antialias(difference, t_affine, spacing)[0],
    )


# Worker state (set once per process by _init).
_W = EasyDict()


def _init(template, t_affine, out_affine, shape, var, storage_dtype, cohort):
    _W.update(template=template, t_affine=t_affine, out_affine=out_affine, shape=shape, var=var, dtype=storage_dtype,
              cohort=cohort)


def _work(seed):
    vol, params = synth_volume(seed, _W.template, _W.t_affine, _W.out_affine, _W.shape, _W.var, _W.cohort)
    params.pop("ventricle_mask", None)
    return records.encode_volume(vol, _W.dtype), params


def demo_grid(template, t_affine, shape, spacing):
    """Output grid: RAS axes at `spacing`, centred on the template brain."""
    opts = EasyDict(shape=list(shape), spacing=[spacing] * 3, resample=True)
    centre = preprocess.foreground_centre(template > 0.02)
    return preprocess.output_grid(t_affine, template.shape, centre, opts)


def build_demo_dataset(
    out_dir, res="demo", num_volumes=None, seed=0, storage_dtype="uint16", workers=None, overwrite=False, verbose=True
):
    """Write the synthetic demo dataset to out_dir (atomically). Returns the manifest dict.

    The output folder is checked (dnnlib.fileutil.check_output_dir) before the template is loaded.
    """
    cfg = _resolution(res)
    n = int(cfg.num_volumes if num_volumes is None else num_volumes)
    if n < 1:
        raise InputError(f"the demo dataset needs at least 1 volume, got {n}")
    check_output_dir(out_dir, overwrite=overwrite)
    t0 = time.time()
    template, t_affine = load_template()
    out_affine = demo_grid(template, t_affine, cfg.shape, cfg.spacing)
    cohort = cohort_fields(template, t_affine, [cfg.spacing] * 3)
    if cfg.spacing > np.min(np.linalg.norm(t_affine[:3, :3], axis=0)) + 1e-6:
        template, _ = preprocess.antialias(template, t_affine, [cfg.spacing] * 3)  # once, before the warps
    var = EasyDict(DEFAULT_VARIATION)
    seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32)]
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp, contextlib.ExitStack() as stack:
        writer = stack.enter_context(records.ShardedWriter(tmp, records.choose_num_shards(n, cfg.shape, storage_dtype)))
        progress = work_pool.Progress(n, label=f"demo-{res} ", enabled=verbose)
        files = []
        init_args = (template, t_affine, out_affine, tuple(cfg.shape), var, storage_dtype, cohort)
        results = stack.enter_context(
            contextlib.closing(work_pool.imap_ordered(_work, seeds, workers, _init, init_args))
        )
        for index, (stored, params) in enumerate(results):
            raw = stored.tobytes()
            shard = writer.write(records.serialize_example(stored, index))
            files.append(
                {
                    "path": f"synthetic:mni152-{res}-{index:05d}",
                    "sha256": None,
                    "stored_sha256": records.sha256_bytes(raw),
                    "index": index,
                    "shard": shard,
                    "covariates": params["covariates"],
                    "transform": {"synthetic": params},
                }
            )
            progress.update()
        shards = writer.close()
        for f in files:
            f["shard"] = writer.shard_map[f["shard"]]
        manifest = make_manifest(
            cfg.shape,
            [cfg.spacing] * 3,
            out_affine,
            storage_dtype,
            shards,
            files,
            normalisation={"method": "foreground_percentile_clip", "percentiles": [0.5, 99.5], "range": [0, 1]},
            synthetic=True,
            description=(
                f"SYNTHETIC demo data: {n} random smooth diffeomorphic warps of the MNI152 T1 template "
                "(nilearn, 1 mm) with an age- and group-driven atrophy, bias fields, gamma contrast and Rician noise. "
                "Not real subjects; for smoke tests and demos only."
            ),
            covariates=demo_cohort.COVARIATES,
            covariate_rule=demo_cohort.RULE,
            generator={
                "seed": int(seed),
                "res": res,
                "variation": var,
                "template": "nilearn MNI152 T1 1mm (skull-stripped)",
            },
            build_seconds=round(time.time() - t0, 2),
        )
        write_manifest(tmp, manifest)
        share_permissions(tmp)
    return manifest


def _resolution(res):
    if res not in RESOLUTIONS:
        raise InputError(f"demo resolution {res!r} unknown; choose one of {sorted(RESOLUTIONS)}")
    return RESOLUTIONS[res]


def data_root():
    """Where built-in datasets live: $STYLEGAN3D_DATA, else <repo>/datasets."""
    env = os.environ.get("STYLEGAN3D_DATA")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")


def default_demo_dataset(res="demo", root=None, num_volumes=None, verbose=True):
    """Path of the built-in synthetic demo dataset datasets/demo-<res>, built once (atomically) if absent.

    res: "demo" (40x48x56 at 4 mm, the demo training config) or "2mm" (80x96x112 at 2 mm).
    Concurrent callers wait on a lock file, so the set is built only once.
    """
    _resolution(res)
    root = os.path.abspath(root or data_root())
    path = os.path.join(root, f"demo-{res}")
    if _is_valid_dataset(path):
        return path
    os.makedirs(root, exist_ok=True)
    with _file_lock(os.path.join(root, f".demo-{res}.lock")):
        if _is_valid_dataset(path):  # someone else built it while we waited
            return path
        if os.path.exists(path):  # never delete something we did not make
            try:
                load_manifest(path)
            except (ValueError, OSError) as e:
                reason = f"{path} exists but is not a usable dataset ({e}); remove it to rebuild"
                raise FileExistsError(reason) from None
        kwargs = {} if num_volumes is None else {"num_volumes": num_volumes}
        build_demo_dataset(path, res=res, verbose=verbose, **kwargs)
    return path


def _is_valid_dataset(path):
    try:
        load_manifest(path)
        return True
    except (ValueError, OSError):
        return False


@contextlib.contextmanager
def _file_lock(path):
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
