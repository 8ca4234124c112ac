"""Is the demo generator capacity-limited? Widen a trained run's generator without changing what it makes, then
train the wide copy beside the narrow original for the same wall time.

Widening (Net2Net-style, function-preserving): every synthesis layer gets `--fmap` / fmap_max times its feature maps.
The old weights are copied into the first channels; weights from a new input channel into an old output channel
are zero, so the old channels compute what they computed; new output channels start as a fresh network would;
toRGB's weights are rescaled for its 1/sqrt(in) gain (the modulated convs demodulate, so their gain cancels). The
widened EMA generator's volumes equal the narrow one's (printed: max |difference|, same z, constant noise). D, the
training state and the narrow part of G's Adam moments are copied; new moments start at m = 0 and v = the mean v of
their variable, so the new weights' first steps are not Adam's 1/sqrt(1 - beta_2) jump.

    python -m bench.bench_capacity widen --run=<run dir> --fmap=128 --out=<folder>
    python -m bench.bench_capacity train --run=<folder>/<wide run> --minutes=60      # continue the wide run

A widening that a named config builds (demo at --fmap=128: demo-wide) is recorded under that config, so the wide run
continues with run_training.py --resume like any run. `train` continues a run from its own training_options.json
(its networks as recorded), for runs whose networks no named config builds.
"""

import copy
import json
import os
import shutil

import numpy as np
from absl import app, flags

from dnnlib import EasyDict, UserError
from dnnlib.cli import run_main

FLAGS = flags.FLAGS


def define_flags():
    """Defined when run as a script, not at import: tests import several bench modules into one process."""
    flags.DEFINE_string("run", None, "widen: the narrow run folder; train: the run folder to continue.")
    flags.DEFINE_integer("fmap", 128, "widen: the wide generator's fmap_base and fmap_max.")
    flags.DEFINE_string("out", None, "widen: the folder the wide run folder is created in.")
    flags.DEFINE_float("minutes", 60.0, "train: wall-clock budget.")
    flags.DEFINE_float("kimg", 600.0, "train: the run's total length (it stops at --minutes first).")


def wide_kwargs(G_kwargs, fmap):
    """G_kwargs with the synthesis fmap_base/fmap_max set to fmap, fmap_min scaled alike."""
    kw = copy.deepcopy(dict(G_kwargs))
    syn = dict(kw["synthesis_kwargs"])
    ratio = fmap / syn["fmap_max"]
    syn.update(fmap_base=int(fmap), fmap_max=int(fmap), fmap_min=int(round(syn["fmap_min"] * ratio)))
    kw["synthesis_kwargs"] = syn
    return kw


def wide_config_name(config, G_kwargs):
    """The named config that builds these widened G_kwargs (config + "-wide", e.g. demo-wide), else None. A wide run
    recorded under it continues with run_training.py --resume like any run."""
    from training import configs

    name = f"{config}-wide"
    if name not in configs.CONFIGS:
        return None
    keys = ("fmap_base", "fmap_min", "fmap_max")
    want = configs.get_config(name).G_kwargs.synthesis_kwargs
    return name if all(want[k] == G_kwargs["synthesis_kwargs"][k] for k in keys) else None


def widen_value(path, old, fresh):
    """The wide variable's value at module path `path` (a tuple) from the narrow value `old` and a fresh wide
    initialisation `fresh` (same rank; every axis at least as long)."""
    old, out = np.asarray(old), np.array(fresh, copy=True)
    if old.shape == out.shape:
        return old.copy()
    out[tuple(slice(0, n) for n in old.shape)] = old
    name, layer = path[-1], path[-2] if len(path) > 1 else ""
    if name == "weight" and out.ndim == 5:  # [k, k, k, in, out]: new inputs must not reach old outputs
        out[..., old.shape[3]:, :old.shape[4]] = 0.0
        if layer == "torgb":  # no demodulation: keep the old channels' gain 1/sqrt(in)
            out[..., :old.shape[3], :old.shape[4]] *= np.sqrt(out.shape[3] / old.shape[3])
    return out


def _paths(module):
    import tensorflow as tf

    return list(module._flatten(predicate=lambda v: isinstance(v, tf.Variable), with_path=True))


def widen_generator(narrow, wide):
    """Assign to every variable of `wide` its widened value from `narrow` (Generators of the same structure)."""
    pairs = list(zip(_paths(narrow), _paths(wide), strict=True))
    for (p_old, v_old), (p_new, v_new) in pairs:
        if p_old != p_new:
            raise ValueError(f"generators differ in structure: {p_old} vs {p_new}")
        v_new.assign(widen_value(p_new, v_old.numpy(), v_new.numpy()))


def widen_adam(narrow_opt, wide_opt):
    """G's Adam moments: the narrow block copied, new m = 0, new v = the variable's mean v."""
    wide_opt.lr.assign(narrow_opt.lr)
    wide_opt.iterations.assign(narrow_opt.iterations)
    for m_old, m_new, v_old, v_new in zip(narrow_opt.m, wide_opt.m, narrow_opt.v, wide_opt.v, strict=True):
        block = tuple(slice(0, n) for n in m_old.shape)
        m = np.zeros(m_new.shape, np.float32)
        m[block] = m_old.numpy()
        v = np.full(v_new.shape, float(np.mean(v_old.numpy())) if v_old.shape.num_elements() else 0.0, np.float32)
        v[block] = v_old.numpy()
        m_new.assign(m)
        v_new.assign(v)


def _copy_same(src, dst):
    for a, b in zip(src.variables, dst.variables, strict=True):
        b.assign(a)


def widen_run(run_dir, fmap, out):
    import tensorflow as tf

    from dnnlib.run_dir import next_run_dir
    from training import run_files
    from training.checkpoints import intact_checkpoints
    from training.training_loop import _build

    found = intact_checkpoints(run_files.checkpoints_dir(run_dir))
    if not found:
        raise FileNotFoundError(f"{run_dir}: no intact checkpoint in {run_files.checkpoints_dir(run_dir)} to widen")
    prefix = found[0]
    opts = run_files.load_run_options(run_dir)
    record = run_files.load_run_record(run_dir)
    opts.G_kwargs = record.get("G_kwargs", opts.G_kwargs)
    strategy = tf.distribute.get_strategy()
    narrow = _build(opts, strategy)
    names = ("G", "D", "G_ema", "G_opt", "D_opt", "state")
    tf.train.Checkpoint(**dict(zip(names, narrow[:6], strict=True))).read(prefix).assert_existing_objects_matched()
    wide_opts = EasyDict(opts, G_kwargs=wide_kwargs(opts.G_kwargs, fmap), desc=f"{opts.get('desc', 'run')}-fmap{fmap}")
    config = wide_config_name(opts.get("config"), wide_opts.G_kwargs)
    if config:
        wide_opts.config = config
        wide_opts.cli_args = dict(opts.get("cli_args", {}), config=config)
    wide = _build(wide_opts, strategy)
    widen_generator(narrow[0], wide[0])
    widen_generator(narrow[2], wide[2])
    widen_adam(narrow[3], wide[3])
    for k in (1, 4, 5):  # D, D's Adam, the training state
        _copy_same(narrow[k], wide[k])

    G_n, G_w = narrow[2], wide[2]
    z = tf.constant(np.random.RandomState(0).standard_normal([2, G_n.z_dim]), tf.float32)
    diff = float(tf.reduce_max(tf.abs(G_n(z, None, noise_mode="const") - G_w(z, None, noise_mode="const"))))
    params = [sum(int(np.prod(v.shape)) for v in g.trainable_variables) for g in (G_n, G_w)]
    print(f"widened {prefix}: G {params[0]:,} -> {params[1]:,} parameters; max |EMA output difference| {diff:.2e}")

    wide_dir = next_run_dir(out, wide_opts.desc)
    try:  # a failure below leaves no half-written run folder (wide_dir is new: this call made it)
        name = run_files.MANIFEST_COPY_NAME
        shutil.copy(os.path.join(run_dir, name), os.path.join(wide_dir, name))
        wide_opts.update(resume=None, resume_run=None, outdir=out)
        with open(os.path.join(wide_dir, run_files.OPTIONS_NAME), "w") as f:
            f.write(wide_opts.to_json() + "\n")
        with open(os.path.join(wide_dir, run_files.RECORD_NAME), "w") as f:
            json.dump({"G_kwargs": G_w.get_config(), "D_kwargs": record.get("D_kwargs", opts.D_kwargs),
                       "widened_from": prefix, "max_output_difference": diff}, f, indent=1)
        number = int(os.path.basename(prefix).split("-")[1])
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(**dict(zip(names, wide[:6], strict=True))),
                                             run_files.checkpoints_dir(wide_dir), max_to_keep=None,
                                             checkpoint_name="ckpt")
        print(f"wrote {manager.save(checkpoint_number=number)} in {wide_dir}")
    except BaseException:
        shutil.rmtree(wide_dir, ignore_errors=True)
        raise
    return wide_dir, diff


def train_run(run_dir, minutes, kimg):
    from training import run_files
    from training.training_loop import training_loop

    run_dir = os.path.abspath(run_dir)
    _, prefix = run_files.resolve_resume(run_dir)
    opts = run_files.load_run_options(run_dir)
    opts.update(resume=prefix, resume_run=run_dir, max_minutes=float(minutes), total_kimg=float(kimg))
    return training_loop(opts)


def main(argv):
    if len(argv) != 2 or argv[1] not in ("widen", "train"):
        raise UserError("give one command: widen or train")
    if not FLAGS.run or not os.path.isdir(FLAGS.run):
        raise UserError(f"--run={FLAGS.run}: no such run folder")
    if argv[1] == "widen":
        if not FLAGS.out:
            raise UserError("--out is required: the folder the wide run folder is created in")
        widen_run(FLAGS.run, FLAGS.fmap, FLAGS.out)
    else:
        train_run(FLAGS.run, FLAGS.minutes, FLAGS.kimg)


if __name__ == "__main__":
    define_flags()
    app.run(run_main(main))
