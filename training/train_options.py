"""Resolve the training options once (config + dataset + flags, or a resumed run's options) into one EasyDict.

The result is saved as training_options.json and is enough to rerun: `training_loop(EasyDict.load_json(...))`.
"""

import copy
import os

import numpy as np

from dnnlib import EasyDict, UserError
from training.checkpoints import latest_intact_checkpoint

PRECISIONS = {"fp32": "float32", "mixed_fp16": "float16", "mixed_bf16": "bfloat16"}
DEMO_MINUTES = 11.0  # training budget of the no-flag demo run (plus start-up and the final snapshot)
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")

# Defaults of the flags run_training.py exposes; build_options(**overrides) takes the same names.
DEFAULTS = dict(data=None, config="demo", outdir="results", batch=None, kimg=None, kimg_per_tick=None, gamma=None,
                r2_gamma=None, mirror=False, snap=None, metrics=(), metric_num=64, metric_feature_weights=None,
                metric_feature_network=None, metric_feature_layer=None, resume=None, seed=0,
                precision="fp32", xla=False, strategy="auto", lazy_reg=True, samples=8, keep_checkpoints=3,
                data_shuffle=True, desc=None, max_minutes=None)


def resolve_resume(path):
    """(run_dir, checkpoint prefix) for --resume given a run directory, its checkpoints/ or a ckpt-N prefix."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path + ".index"):
        ckpt_dir = os.path.dirname(path)
        return os.path.dirname(ckpt_dir), path
    if os.path.isdir(path):
        run_dir = path if os.path.isdir(os.path.join(path, "checkpoints")) else os.path.dirname(path)
        ckpt_dir = os.path.join(run_dir, "checkpoints")
        prefix = latest_intact_checkpoint(ckpt_dir)
        if prefix is None:
            raise UserError(f"--resume={path}: no checkpoint in {ckpt_dir}")
        return run_dir, prefix
    raise UserError(f"--resume={path}: not a run directory or a checkpoint prefix (<run>/checkpoints/ckpt-N)")


def load_run_options(run_dir, flag="--resume"):
    path = os.path.join(run_dir, "training_options.json")
    if not os.path.isfile(path):
        raise UserError(f"{flag}: {path} is missing; cannot tell how that run was configured")
    try:
        return EasyDict.load_json(path)
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def build_options(explicit=None, **kwargs):
    """Options for training_loop from flag values (names as DEFAULTS).

    explicit: names the user actually gave. When resuming, every other name takes the resumed run's value,
    so `--resume=<run>` alone continues the same run and `--resume=<run> --kimg=50` extends it.
    """
    from training import configs
    from volumes.demo_data import default_demo_dataset
    from volumes.manifest import label_dim, load_manifest

    unknown = set(kwargs) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    args = EasyDict(DEFAULTS)
    args.update(kwargs)
    explicit = set(kwargs) if explicit is None else set(explicit)
    resume_run = resume_prefix = None
    if args.resume:
        resume_run, resume_prefix = resolve_resume(args.resume)
        saved = load_run_options(resume_run).get("cli_args", {})
        for k, v in saved.items():
            if k in DEFAULTS and k not in explicit and k not in ("resume", "outdir", "desc"):
                args[k] = v
    _validate_args(args)

    data = os.path.abspath(args.data) if args.data else default_demo_dataset()
    manifest = load_manifest(data)
    cfg = configs.get_config(args.config)
    shape = [int(s) for s in manifest.shape]
    if [int(s) for s in cfg.img_shape] != shape:
        raise UserError(f"--config={args.config} makes {tuple(cfg.img_shape)} volumes but --data={data} holds "
                        f"{tuple(shape)}; pick a config of that shape or rebuild the dataset with dataset_tool.py "
                        f"--shape={'x'.join(map(str, cfg.img_shape))}")
    c_dim, channels = label_dim(manifest), int(manifest.get("channels", 1))

    G_kwargs = copy.deepcopy(cfg.G_kwargs)
    G_kwargs.update(c_dim=c_dim, img_channels=channels)
    D_kwargs = copy.deepcopy(cfg.D_kwargs)
    D_kwargs.update(c_dim=c_dim, img_channels=channels)
    dtype = PRECISIONS[args.precision]
    G_kwargs.synthesis_kwargs.compute_dtype = dtype
    D_kwargs.compute_dtype = dtype

    loss_kwargs = copy.deepcopy(cfg.loss_kwargs)
    if args.gamma is not None:
        loss_kwargs.r1_gamma = float(args.gamma)
    if args.r2_gamma is not None:
        loss_kwargs.r2_gamma = float(args.r2_gamma)
    if not args.lazy_reg:  # the original's mode: regularisers added on every step, no lr/beta correction
        loss_kwargs.G_reg_interval = 0
        loss_kwargs.D_reg_interval = 0

    batch = int(args.batch or cfg.batch_size)
    if loss_kwargs.pl_weight > 0 and batch % loss_kwargs.pl_batch_shrink:
        raise UserError(f"--batch={batch} must be divisible by the path-length batch shrink "
                        f"{loss_kwargs.pl_batch_shrink}")
    total_kimg = float(args.kimg if args.kimg is not None else cfg.total_kimg)
    kimg_per_tick = float(args.kimg_per_tick or cfg.kimg_per_tick)
    # Default: a snapshot about every 2 kimg (every tick for the paper's 8-kimg ticks), at most every 50 ticks.
    snap = int(args.snap) if args.snap else max(1, min(50, int(round(2.0 / kimg_per_tick))))
    # The no-flag demo must end in a time a new user waits for, whatever the machine: a wall-clock budget.
    max_minutes = args.max_minutes
    if max_minutes is None and args.config == "demo" and args.kimg is None:
        max_minutes = DEMO_MINUTES
    metrics = list(args.metrics or [])
    metric_kwargs = {k: args[f"metric_{k}"] for k in ("feature_weights", "feature_network", "feature_layer")
                     if args[f"metric_{k}"]}
    if metrics:
        # Fail now, not at the first snapshot hours later, when a metric lacks its feature network.
        from metrics.metric_main import preflight

        preflight(metrics, **metric_kwargs)

    dataset_name = os.path.basename(os.path.normpath(data))
    desc = args.desc or f"{args.config}-{dataset_name}-b{batch}"
    cli_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}
    return EasyDict(
        config=args.config, data=data, cli_args=cli_args, desc=desc, outdir=os.path.abspath(args.outdir),
        G_kwargs=G_kwargs, D_kwargs=D_kwargs, loss_kwargs=loss_kwargs,
        G_opt_kwargs=copy.deepcopy(cfg.G_opt_kwargs), D_opt_kwargs=copy.deepcopy(cfg.D_opt_kwargs),
        batch_size=batch, ema_kimg=float(cfg.ema_kimg), ema_rampup=cfg.ema_rampup, total_kimg=total_kimg,
        kimg_per_tick=kimg_per_tick, snap=snap, metrics=metrics, metric_num=int(args.metric_num),
        metric_kwargs=metric_kwargs,
        seed=int(args.seed), precision=args.precision, xla=bool(args.xla), strategy=args.strategy,
        mirror=bool(args.mirror), samples=int(args.samples), keep_checkpoints=int(args.keep_checkpoints),
        data_shuffle=bool(args.data_shuffle), img_shape=shape, c_dim=c_dim, img_channels=channels,
        spacing_mm=[float(s) for s in manifest.spacing],
        resume=resume_prefix, resume_run=resume_run, max_minutes=None if max_minutes is None else float(max_minutes),
    )


def _validate_args(a):
    def positive(name, cast=float, allow_none=True):
        v = a[name]
        if v is None and allow_none:
            return
        try:
            ok = cast(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"--{name}={v!r}: must be a positive number")

    for name in ("batch", "kimg", "kimg_per_tick", "snap", "max_minutes"):
        positive(name, int if name in ("batch", "snap") else float)
    for name in ("samples", "keep_checkpoints", "metric_num"):
        positive(name, int, allow_none=False)
    for name in ("gamma", "r2_gamma"):
        if a[name] is not None and (not np.isfinite(float(a[name])) or float(a[name]) < 0):
            raise UserError(f"--{name}={a[name]!r}: must be >= 0")
    if a.precision not in PRECISIONS:
        raise UserError(f"--precision={a.precision!r}: choose one of {', '.join(PRECISIONS)}")
    if a.strategy not in STRATEGIES:
        raise UserError(f"--strategy={a.strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if a.data and not os.path.isdir(a.data):
        raise UserError(f"--data={a.data}: no such dataset directory (create one with dataset_tool.py create)")


def check_resume_compatible(opts, saved, manifest_shape=None):
    """Refuse to resume with another architecture or dataset geometry; the message names what differs."""
    problems = []
    for key in ("G_kwargs", "D_kwargs"):
        a, b = _arch(saved.get(key, {})), _arch(opts[key])
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                problems.append(f"{key}.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}")
    if saved.get("img_shape") and list(saved.img_shape) != list(opts.img_shape):
        problems.append(f"dataset shape: checkpoint {tuple(saved.img_shape)} vs now {tuple(opts.img_shape)}")
    if saved.get("c_dim", 0) != opts.c_dim:
        problems.append(f"label dimension: checkpoint {saved.get('c_dim', 0)} vs now {opts.c_dim}")
    if problems:
        raise UserError(f"--resume={opts.resume}: the run was trained with a different config or dataset ("
                        + "; ".join(problems[:4]) + "); resume with the same --config and a dataset of the same shape")


def _arch(kwargs):
    """Architecture-defining kwargs, flattened; compute dtype is allowed to change on resume."""
    out = {}
    for k, v in dict(kwargs).items():
        if isinstance(v, dict):
            for k2, v2 in _arch(v).items():
                out[f"{k}.{k2}"] = v2
        elif not k.endswith("compute_dtype"):
            out[k] = v
    return out
