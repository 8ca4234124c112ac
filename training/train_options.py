"""The training options: one table of what a user can set, and their resolution into one EasyDict.

OPTIONS documents every option once (name, type, default, one line of help); run_training.py derives its flags
from it. build_options resolves config + dataset + option values (or a resumed run's options) into the options
training_loop takes. They are saved as training_options.json and are enough to rerun:
`training_loop(EasyDict.load_json(...))`.
"""

import copy
import os

from dnnlib import EasyDict
from dnnlib.errors import InputError
from dnnlib.option_table import Option
from training.augment_spec import AUG_MODES, parse_augpipe
from training.run_files import load_run_options, resolve_resume

PRECISIONS = {"fp32": "float32", "mixed_fp16": "float16", "mixed_bf16": "bfloat16"}  # name -> conv compute dtype
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
DEMO_MINUTES = 11.0  # training budget of the no-flag demo run (plus start-up and the final snapshot)


OPTIONS = (
    Option("data", str, None, "Dataset directory from dataset_tool.py (default: the built-in demo dataset, "
           "built on first use)."),
    Option("config", str, "demo", "Training config name (training/configs.py; --summary to inspect)."),
    Option("outdir", str, "results", "Parent of the run directories NNNNN-<desc>."),
    Option("batch", int, None, "Global batch size (default: the config's; for the paper configs, whose batch is "
           "per device as in the original, the config's batch times the number of devices)."),
    Option("batch_gpu", int, None, "Volumes per device and round: a larger --batch is reached by accumulating "
           "gradients over batch / (batch_gpu x replicas) rounds before one optimiser step (default: the whole "
           "per-device batch, no accumulation)."),
    Option("kimg", float, None, "Length of training in thousands of real volumes shown (default: the config's)."),
    Option("kimg_per_tick", float, None, "Progress line every this many kimg (default: the config's)."),
    Option("gamma", float, None, "The config's own D penalty weight, as the original's --gamma: R2 on the R2 "
           "config (in the original's units: --gamma=g gives --r2_gamma=g / W, W the volume's last axis), else R1 "
           "(default: the config's)."),
    Option("r1_gamma", float, None, "R1 weight on reals, whatever the config (default: the config's; 0 = off)."),
    Option("r2_gamma", float, None, "R2 weight on fakes, penalty summed over every axis (default: the config's; "
           "0 = off; the original's R2 with gamma g is g / W, W the volume's last axis)."),
    Option("mirror", bool, False, "Random left-right flips along the dataset's mirror axis."),
    Option("aug", str, None, "Augmentation of every volume D sees (training/augment.py): ada (p adapts to D's "
           "overfitting), fixed (p stays --p) or noaug (default: the config's: ada for demo, noaug for the paper "
           "configs).", choices=AUG_MODES),
    Option("p", float, None, "Augmentation probability: the fixed p with --aug=fixed, the initial p with ada "
           "(default 0)."),
    Option("target", float, 0.6, "ADA target for r_t = E[sign(D(real))]: p rises while r_t is above it."),
    Option("augpipe", str, "bgc", "Augmentation groups: b blit, g geometric (in mm), c intensity, n noise and "
           "cutout; e.g. b, bg, bgc, bgcn."),
    Option("ada_kimg", float, None, "ADA speed: p could go from 0 to 1 in this many kimg (default: the config's; "
           "500 as ADA for the paper configs)."),
    Option("snap", int, None, "Snapshot + checkpoint every this many ticks (default: about every 2 kimg)."),
    Option("metrics", list, (), "Metrics at every snapshot, e.g. mmd_linear_batch8,ms_ssim (default: none)."),
    Option("metric_num", int, 64, "Volumes per metric evaluation."),
    Option("metric_feature_weights", str, None, "Standard FID Inception weights (.pb/.tgz/.npz/.pt) for fid_slices, "
           "kid, pr_slices (default: cached, or one pinned download when first needed); keras:<file> = Keras "
           "InceptionV3 (not comparable); see run_metrics.py --helpfull."),
    Option("metric_feature_network", str, None, "3D feature network (Keras file or SavedModel) for fid_3d."),
    Option("metric_feature_layer", str, None, "Layer of --metric_feature_network whose output is the feature."),
    Option("resume", str, None, "Run directory (latest checkpoint) or checkpoint prefix to continue from. The run "
           "continues in its own folder from its latest checkpoint; from an older one, or a shipped (pretrained/) or "
           "read-only run, in a new run folder <outdir>/NNNNN-<desc>-resume."),
    Option("seed", int, 0, "Random seed (weights, latents, data order)."),
    Option("precision", str, "fp32", "Compute precision of the conv layers (fp16 with dynamic loss scaling).",
           choices=tuple(PRECISIONS)),
    Option("xla", bool, False, "Compile the train steps with XLA (jit_compile)."),
    Option("recompute", bool, False, "Save memory: recompute each conv layer's activations (G and D) in the "
           "backward pass instead of keeping them, and take the loss terms' gradients one after another (G main "
           "then path length; D on fakes, on reals, then R1) instead of at once. Same gradients; costs time."),
    Option("strategy", str, "auto", "tf.distribute strategy; auto = multi_worker with TF_CONFIG, mirrored with >1 "
           "GPU, else one device.", choices=STRATEGIES),
    Option("collective_timeout", float, 300.0, "Several machines: a collective op (gradient all-reduce) fails "
           "after this many seconds without every worker, and training stops for a resume (0 = wait forever); a "
           "worker that dies is noticed sooner by the heartbeats."),
    Option("lazy_reg", bool, None, "Lazy regularisation (G every 4, D every 16 steps, lr/beta corrected); "
           "--nolazy_reg adds the regularisers on every step as the original did (default: the config's: off for "
           "the paper configs, on for demo configs)."),
    Option("max_skipped_steps", int, 100, "Non-finite steps: a step whose loss or gradients are NaN/Inf skips its "
           "update and training goes on, as the original's optimiser; the run stops after this many consecutive "
           "skipped steps (0 = never, as the original; 1 = at the first). Counted in the tick line and TensorBoard "
           "(Progress/skipped_steps)."),
    Option("max_minutes", float, None, "Stop (with a final snapshot) after this many minutes of training "
           f"(default: {DEMO_MINUTES:g} for the no-flag demo, and for --config=demo or demo-wide without --kimg; "
           "else no limit)."),
    Option("samples", int, 8, "Sample volumes written per snapshot."),
    Option("keep_checkpoints", int, 3, "Checkpoints kept (the last K)."),
    Option("allow_data_change", bool, False, "With --resume: continue on a dataset other than the run's own (same "
           "shape); without it such a resume is refused."),
    Option("data_shuffle", bool, True, "Shuffle the training data (off: a fixed order, for exact comparisons).",
           flag=False),
    Option("desc", str, None, "Run directory suffix (default: <config>-<dataset>-b<batch>).", flag=False),
)

# Names a resumed run does not take from the run it continues. allow_data_change: a one-time permission;
# strategy, collective_timeout: how this invocation is spread over devices and machines, not what is trained
# (the global batch is kept, so a run continues on another number of workers or GPUs).
_NOT_RESUMED = ("resume", "outdir", "desc", "allow_data_change", "strategy", "collective_timeout")


def build_options(explicit=None, **kwargs):
    """Options for training_loop from option values (names as in OPTIONS; absent names take their default).

    explicit: names the user actually gave. When resuming, every other name takes the resumed run's value,
    so resuming a run alone continues the same run and resuming with a larger kimg extends it.
    """
    from training import configs
    from volumes.demo_data import default_demo_dataset
    from volumes.manifest import label_dim, load_manifest

    args = EasyDict({o.name: o.default for o in OPTIONS})
    unknown = set(kwargs) - set(args)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}")
    args.update(kwargs)
    explicit = set(kwargs) if explicit is None else set(explicit)
    resume_run = resume_prefix = None
    if args.resume:
        resume_run, resume_prefix = resolve_resume(args.resume)
        saved = load_run_options(resume_run).get("cli_args", {})
        for k, v in saved.items():
            if k in args and k not in explicit and k not in _NOT_RESUMED:
                args[k] = v
        if "aug" not in saved and "aug" not in explicit:
            args.aug = "noaug"  # a run from before augmentation existed: its checkpoint holds no pipeline
    if args.precision not in PRECISIONS:
        raise InputError(f"unknown precision {args.precision!r}; choose one of {', '.join(PRECISIONS)}")

    data = os.path.abspath(args.data) if args.data else default_demo_dataset()
    manifest = load_manifest(data)
    cfg = configs.get_config(args.config)
    shape = [int(s) for s in manifest.shape]
    if [int(s) for s in cfg.img_shape] != shape:
        raise InputError(f"config {args.config} makes {tuple(cfg.img_shape)} volumes but dataset {data} holds "
                         f"{tuple(shape)}; pick a config of that shape or rebuild the dataset with dataset_tool.py "
                         f"at shape {'x'.join(map(str, cfg.img_shape))}")
    c_dim, channels = label_dim(manifest), int(manifest.get("channels", 1))

    G_kwargs = copy.deepcopy(cfg.G_kwargs)
    G_kwargs.update(c_dim=c_dim, img_channels=channels)
    D_kwargs = copy.deepcopy(cfg.D_kwargs)
    D_kwargs.update(c_dim=c_dim, img_channels=channels)
    dtype = PRECISIONS[args.precision]
    G_kwargs.synthesis_kwargs.compute_dtype = dtype
    D_kwargs.compute_dtype = dtype

    loss_kwargs = copy.deepcopy(cfg.loss_kwargs)
    _set_d_penalties(loss_kwargs, args, shape)
    if args.lazy_reg is not None:  # None: the config's schedule; False: every step, no lr/beta correction
        intervals = configs.LAZY_REG_INTERVALS if args.lazy_reg else (0, 0)
        loss_kwargs.G_reg_interval, loss_kwargs.D_reg_interval = intervals

    if args.batch is None and resume_run is not None:
        # A resumed run keeps its global batch, whatever devices it continues on.
        args.batch = load_run_options(resume_run).get("batch_size")
    # batch None: the paper configs' per-device batch on every device, resolved by training_loop once the devices
    # are known (the original's rule); the check below then holds for any number of devices.
    batch_per_device = int(cfg.batch_gpu) if (args.batch is None and cfg.get("batch_per_device")) else None
    batch = int(args.batch or cfg.batch_size) if batch_per_device is None else None
    if loss_kwargs.pl_weight > 0 and (batch or batch_per_device) % loss_kwargs.pl_batch_shrink:
        raise InputError(f"batch {batch} is not divisible by the path-length batch shrink "
                         f"{loss_kwargs.pl_batch_shrink} of config {args.config}; use a multiple of it")
    total_kimg = float(args.kimg if args.kimg is not None else cfg.total_kimg)
    kimg_per_tick = float(args.kimg_per_tick or cfg.kimg_per_tick)
    # Default: a snapshot about every 2 kimg (every tick for the paper's 8-kimg ticks), at most every 50 ticks.
    snap = int(args.snap) if args.snap else max(1, min(50, int(round(2.0 / kimg_per_tick))))
    # The no-flag demo must end in a time a new user waits for, whatever the machine: a wall-clock budget.
    max_minutes = args.max_minutes
    if max_minutes is None and args.config in configs.CPU_DEMO_CONFIGS and args.kimg is None:
        max_minutes = DEMO_MINUTES
    metrics = list(args.metrics or [])
    metric_kwargs = {k: args[f"metric_{k}"] for k in ("feature_weights", "feature_network", "feature_layer")
                     if args[f"metric_{k}"]}
    if metrics:
        # Fail now, not at the first snapshot hours later, when a metric lacks its feature network.
        from metrics.metric_main import preflight

        preflight(metrics, **metric_kwargs)

    aug, augment_kwargs = _augment_options(args, cfg, manifest)

    dataset_name = os.path.basename(os.path.normpath(data))
    # With a per-device batch, training_loop adds -b<global batch> once it knows the devices.
    desc = args.desc or f"{args.config}-{dataset_name}" + (f"-b{batch}" if batch else "")
    cli_args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}
    return EasyDict(
        config=args.config, data=data, cli_args=cli_args, desc=desc, outdir=os.path.abspath(args.outdir),
        G_kwargs=G_kwargs, D_kwargs=D_kwargs, loss_kwargs=loss_kwargs,
        G_opt_kwargs=copy.deepcopy(cfg.G_opt_kwargs), D_opt_kwargs=copy.deepcopy(cfg.D_opt_kwargs),
        batch_size=batch, batch_per_device=batch_per_device, ema_kimg=float(cfg.ema_kimg), ema_rampup=cfg.ema_rampup,
        total_kimg=total_kimg,
        batch_gpu=int(args.batch_gpu) if args.batch_gpu else None, recompute=bool(args.recompute),
        kimg_per_tick=kimg_per_tick, snap=snap, metrics=metrics, metric_num=int(args.metric_num),
        metric_kwargs=metric_kwargs,
        seed=int(args.seed), precision=args.precision, xla=bool(args.xla), strategy=args.strategy,
        collective_timeout=float(args.collective_timeout or 0),
        mirror=bool(args.mirror), samples=int(args.samples), keep_checkpoints=int(args.keep_checkpoints),
        data_shuffle=bool(args.data_shuffle), img_shape=shape, c_dim=c_dim, img_channels=channels,
        allow_data_change=bool(args.allow_data_change), max_skipped_steps=int(args.max_skipped_steps),
        spacing_mm=[float(s) for s in manifest.spacing], aug=aug, augment_kwargs=augment_kwargs,
        resume=resume_prefix, resume_run=resume_run, max_minutes=None if max_minutes is None else float(max_minutes),
    )


def global_batch(opts, num_replicas):
    """The global batch of options from build_options on num_replicas devices: --batch (or the config's global
    batch), or, for a paper config without --batch, its per-device batch times the devices, as the original's
    run_training.py (minibatch_size_base = batch * num_gpus); minibatch-std groups form within each device's share.
    """
    if opts.get("batch_size"):
        return int(opts["batch_size"])
    return int(opts["batch_per_device"]) * int(num_replicas)


def _set_d_penalties(loss_kwargs, args, img_shape):
    """--gamma sets the config's own D penalty, as the original's: R2 (in the original's units, gamma / W) on a
    config that has R2 and no R1, else R1. --r1_gamma and --r2_gamma set one penalty each, in ours."""
    from training.configs import original_r2_gamma

    own_is_r2 = loss_kwargs.r2_gamma > 0 and loss_kwargs.r1_gamma == 0
    if args.gamma is not None:
        own = "r2_gamma" if own_is_r2 else "r1_gamma"
        if args[own] is not None:
            raise ValueError(f"gamma and {own} both set the {own[:2].upper()} weight of config {args.config}; "
                             "give one of them")
        if own_is_r2:
            loss_kwargs.r2_gamma = original_r2_gamma(args.gamma, img_shape)
        else:
            loss_kwargs.r1_gamma = float(args.gamma)
    if args.r1_gamma is not None:
        loss_kwargs.r1_gamma = float(args.r1_gamma)
    if args.r2_gamma is not None:
        loss_kwargs.r2_gamma = float(args.r2_gamma)


def _augment_options(args, cfg, manifest):
    """(aug mode, augment_kwargs) from the option values, the config's defaults and the dataset's mirror axis."""
    aug = args.aug or cfg.get("aug", "noaug")
    if aug not in AUG_MODES:
        raise InputError(f"unknown augmentation mode {aug!r}; choose one of {', '.join(AUG_MODES)}")
    if aug == "fixed" and args.p is None:
        raise InputError("augmentation 'fixed' needs its probability p (0 to 1)")
    p = float(args.p or 0.0)
    target = float(args.target)
    ada_kimg = float(args.ada_kimg if args.ada_kimg is not None else cfg.get("ada_kimg", 500.0))
    if not 0.0 <= p <= 1.0:
        raise InputError(f"augmentation probability p={p:g} is outside [0, 1]")
    if not 0.0 < target < 1.0:
        raise InputError(f"ADA target {target:g} is outside (0, 1)")
    if ada_kimg <= 0:
        raise InputError(f"ADA speed ada_kimg={ada_kimg:g} must be positive")
    parse_augpipe(args.augpipe)  # a bad group string fails now, not at the first step
    return aug, EasyDict(augpipe=str(args.augpipe), p=p, target=target, ada_kimg=ada_kimg, ada_interval=4,
                         mirror_axis=int(manifest.get("mirror_axis", 0)))
