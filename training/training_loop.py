"""The training loop: networks, losses and Adam under a tf.distribute strategy; ticks, snapshots, checkpoints.

Structure as StyleGAN2-ADA: each batch runs the phases Gmain, Greg (every G_reg_interval), Dmain, Dreg (every
D_reg_interval), then the G EMA update. Only the chief writes (run dir, log, TensorBoard, checkpoints,
snapshots, metrics). Resume is exact: optimiser slots, EMA, w_avg, pl_mean, counters and the RNG are in the
checkpoint, and the data stream restarts at every checkpoint from a seed derived from the image count, so a
run resumed from a checkpoint sees the same batches as one that never stopped.

The run directory holds the options as given (training_options.json, enough to rerun) and, separately, what
the loop learned at run time (run.json: run directory, the networks' full kwargs as built, the checkpoint
resumed from, devices and replicas, start time, TensorFlow version).
"""

import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict, tb_log
from dnnlib.cli import error_line
from dnnlib.errors import InputError
from dnnlib.fileutil import write_record
from dnnlib.logging_util import Logger
from dnnlib.run_dir import next_run_dir
from training import multi_worker, resume
from training import snapshot as snap_io
from training.augment import make_augment_pipe
from training.checkpoints import latest_intact_checkpoint, save_checkpoint
from training.loss import StyleGAN2Loss, lazy_regularization_ratio
from training.run_files import (
    CHECKPOINTS_NAME,
    LOG_NAME,
    MANIFEST_COPY_NAME,
    OPTIONS_NAME,
    RECORD_NAME,
    SNAPSHOTS_NAME,
    checkpoints_dir,
    resumed_architecture,
    snapshots_dir,
)
from training.train_options import global_batch
from training.train_state import Adam, TrainState, copy_weights, ema_beta
from training.train_step import TrainSteps
from volumes.dataset_reader import make_dataset
from volumes.manifest import load_manifest
from volumes.records import check_shards


class TrainingDiverged(RuntimeError):
    """Too many consecutive steps had a NaN/Inf loss or gradient: the run stops, the last good checkpoint stays."""


# ----------------------------------------------------------------------------------------------
# Small helpers.


def peak_memory_gb():
    """Peak resident memory of this process (and the GPU peak when there is one), in GiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux
    text = f"{rss:.2f}GB"
    if tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(Exception):
            text += f" gpu {tf.config.experimental.get_memory_info('GPU:0')['peak'] / 2**30:.2f}GB"
    return rss, text


def format_time(s):
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s // 60 % 60:02d}m"


def data_seed(seed, cur_nimg):
    # A new but reproducible shuffle after every checkpoint: a resumed run sees the same stream.
    return int((int(seed) * 1_000_003 + int(cur_nimg)) % (2**31 - 1))


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes the step, checkpoints and exits cleanly."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading_main():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: give up waiting
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nreceived {signal.Signals(signum).name}: finishing this step, then checkpointing", flush=True)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def threading_main():
    import threading

    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------------------------
# The loop.


def training_loop(opts, strategy=None, dry_run=False, max_steps=None, log_fn=print, tick_callback=None):
    """Train as `opts` (from train_options.build_options) says. Returns EasyDict(run_dir, snapshot_dir, ...).

    opts is not modified; it is saved as training_options.json, and what the run learns is saved as run.json.
    tick_callback(cur_nimg, G_ema), if given, is a progress callback: it runs on the chief at the start and after
    every tick, with the images shown so far and the current EMA generator (to watch or evaluate a run as it goes).
    """
    opts = EasyDict.from_obj(json.loads(json.dumps(opts, default=str)))  # private copy, as saved (JSON-clean)
    strategy = strategy or multi_worker.make_strategy(opts.strategy, opts.get("collective_timeout"))
    if opts.get("batch_size") is None:  # a paper config's per-device batch on every device, as the original
        opts.batch_size = global_batch(opts, strategy.num_replicas_in_sync)
        opts.desc = f"{opts.desc}-b{opts.batch_size}"
    chief = multi_worker.is_chief(strategy)
    manifest = load_manifest(opts.data)
    # A corrupt record is refused before the run folder exists; a resume skips the shards its run checked, unchanged.
    shards_checked = {"data": os.path.realpath(opts.data),
                      "shards": check_shards(opts.data, manifest, resume.checked_shards(opts))}
    # Read before this run may overwrite them (a resume continues in the same directory).
    resumed_arch = resumed_architecture(opts.resume_run) if opts.get("resume") else None

    # Run directory: a new results/NNNNN-desc, or the resumed run's own directory when continuing its latest
    # checkpoint in a folder it may write (resume.continues_in_place). Non-chief workers get a scratch directory
    # they delete at the end.
    tmp_dirs = []
    if dry_run:
        run_dir = None
    elif not chief:
        run_dir = tempfile.mkdtemp(prefix="stylegan3d-worker-")
        tmp_dirs.append(run_dir)
    elif opts.get("resume") and resume.continues_in_place(opts.resume_run, opts.resume):
        run_dir = opts.resume_run
    else:
        run_dir = next_run_dir(opts.outdir, opts.desc + ("-resume" if opts.get("resume") else ""))
    new_run_dir = run_dir if (chief and run_dir and run_dir != opts.get("resume_run")) else None

    logger = Logger(os.path.join(run_dir, LOG_NAME), "a") if (chief and run_dir) else None
    finished = False
    try:
        result = _train(opts, run_dir, strategy, chief, manifest, resumed_arch, dry_run, max_steps, log_fn,
                        tick_callback, shards_checked)
        finished = True
        return result
    except multi_worker.LOST_PEER_ERRORS as e:
        if not multi_worker.is_multi_worker(strategy):
            raise
        # Nothing is saved now: the step that failed may have updated some phases and not others.
        where = run_dir if chief else (opts.get("resume_run") or "the chief's run directory")
        last = latest_intact_checkpoint(checkpoints_dir(run_dir)) if (chief and run_dir) else None
        last = last or ("none yet" if chief else "the chief's latest")
        message = (f"training stopped: {multi_worker.describe_lost_peer(e, opts.get('collective_timeout'))}. "
                   f"Last checkpoint: {last}; resume from {where} (with any number of workers)")
        log_fn(message)
        raise multi_worker.WorkerLost(message) from None
    finally:
        if logger is not None:
            logger.close()
        for d in tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if new_run_dir and not finished:
            _remove_if_untrained(new_run_dir)


# What a new run folder holds before its first snapshot and checkpoint: all written by this run at its start.
_START_FILES = re.compile(r"^(log\.txt|(training_options|run|dataset)(\.\d+)?\.json|events\.out\.tfevents\..*)$")


def _remove_if_untrained(run_dir):
    """Remove a run folder this call created when it stopped (an error, a signal) before anything was trained into it:
    no snapshot and no checkpoint, only the files every run writes at its start. Anything else found there (a
    checkpoint, a snapshot, a file somebody else put in) keeps the folder and all it holds."""
    for sub in (CHECKPOINTS_NAME, SNAPSHOTS_NAME):
        path = os.path.join(run_dir, sub)
        if os.path.lexists(path) and (not os.path.isdir(path) or os.path.islink(path) or os.listdir(path)):
            return
    try:
        names = os.listdir(run_dir)
    except OSError:
        return
    if any(n not in (CHECKPOINTS_NAME, SNAPSHOTS_NAME) and not _START_FILES.match(n) for n in names):
        return
    for n in names:
        path = os.path.join(run_dir, n)
        with contextlib.suppress(OSError):
            os.rmdir(path) if os.path.isdir(path) else os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(run_dir)


def _build(opts, strategy):
    from training.networks import Discriminator, Generator

    tf.random.set_seed(opts.seed)
    lk = opts.loss_kwargs
    with strategy.scope():
        G = Generator(**opts.G_kwargs)
        D = Discriminator(**opts.D_kwargs)
        G_ema = Generator(**opts.G_kwargs)
        copy_weights(G_ema, G)
        opt = {}
        for name, module, interval in (("G", G, lk.G_reg_interval), ("D", D, lk.D_reg_interval)):
            kw = EasyDict(opts[f"{name}_opt_kwargs"])
            # Lazy regularisation: the reg phase runs every `interval` steps; correct lr and betas (StyleGAN2).
            ratio = lazy_regularization_ratio(interval)
            opt[name] = Adam(module.trainable_variables, lr=kw.lr * ratio, beta_1=kw.beta_1**ratio,
                             beta_2=kw.beta_2**ratio, epsilon=kw.epsilon, name=f"{name}_opt")
    # The RNG and counters live outside the strategy: every worker draws the same global stream.
    augment_pipe = make_augment_pipe(opts)  # None for noaug: the step is then exactly the one without ADA
    state = TrainState(opts.seed, loss_scale=opts.precision == "mixed_fp16", augment=augment_pipe, name="state")
    loss = StyleGAN2Loss(G, D, augment_pipe=augment_pipe, **opts.loss_kwargs)
    return G, D, G_ema, opt["G"], opt["D"], state, loss


def run_summary(opts, record, manifest):
    """A few lines saying what this run is: config, data, length, batch, devices, run directory."""
    shape = "x".join(str(s) for s in manifest.get("shape", ()))
    spacing = "x".join(f"{s:g}" for s in manifest.get("spacing", ()))
    devices = ", ".join(record.get("devices") or []) or "default device"
    return "\n".join([
        f"config   {opts.config}",
        f"data     {opts.data} ({manifest.get('num_volumes', '?')} volumes, {shape} at {spacing} mm)",
        f"length   {opts.total_kimg:g} kimg, batch {opts.batch_size}, precision {opts.get('precision', 'fp32')}",
        f"devices  {record.num_replicas} replica(s): {devices}",
        f"run dir  {record.run_dir or '(none: dry run)'}  (full options: training_options.json, run.json, log.txt)",
    ])


def projected_training_seconds(step_seconds, phases, total_nimg, batch_size):
    """Seconds of train steps for total_nimg images: each phase's step time times the steps it runs (a phase with
    interval k runs on every k-th step)."""
    steps = math.ceil(total_nimg / batch_size)
    return sum(step_seconds[phase] * math.ceil(steps / max(int(interval), 1)) for phase, interval in phases)


def _train(opts, run_dir, strategy, chief, manifest, resumed_arch, dry_run, max_steps, log, tick_callback=None,
           shards_checked=None):
    start_time = time.time()
    G, D, G_ema, G_opt, D_opt, state, loss = _build(opts, strategy)
    record = EasyDict(
        run_dir=run_dir, started=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start_time)),
        tensorflow=tf.__version__, python=platform.python_version(), strategy=type(strategy).__name__,
        num_replicas=int(strategy.num_replicas_in_sync), devices=multi_worker.worker_devices(strategy),
        # Every constructor argument, defaults included: the networks as built, whatever the defaults become.
        G_kwargs=json.loads(json.dumps(G.get_config())), D_kwargs=json.loads(json.dumps(D.get_config())),
        resumed_from=None,
        shards_checked=shards_checked,  # what the start read whole (check_shards): a resume skips it if unchanged
    )
    if resumed_arch is not None:
        now = dict(G_kwargs=record.G_kwargs, D_kwargs=record.D_kwargs, img_shape=opts.img_shape, c_dim=opts.c_dim)
        resume.check_resume_compatible(now, resumed_arch, opts.resume)
        resume.check_same_data(manifest, opts.resume_run, allow_change=bool(opts.get("allow_data_change")))
    B = int(opts.batch_size)
    steps = TrainSteps(strategy, G, D, G_opt, D_opt, loss, state, B, xla=opts.xla, batch_gpu=opts.get("batch_gpu"),
                       recompute=bool(opts.get("recompute")))

    ckpt = tf.train.Checkpoint(G=G, D=D, G_ema=G_ema, G_opt=G_opt, D_opt=D_opt, state=state)
    manager = None
    if run_dir is not None:
        manager = tf.train.CheckpointManager(ckpt, checkpoints_dir(run_dir),
                                             max_to_keep=opts.keep_checkpoints, checkpoint_name="ckpt")
    if opts.get("resume"):
        record.resumed_from = resume.restore_checkpoint(ckpt, opts.resume, log)
        log(f"Resumed from {record.resumed_from} at kimg {int(state.cur_nimg.numpy()) / 1000:.3f}, "
            f"step {int(state.batch_idx.numpy())}")

    _record_start(opts, record, manifest, run_dir, chief, dry_run, (G, D), log)

    def data_iter():
        seed = data_seed(opts.seed, int(state.cur_nimg.numpy()))

        def fn(ctx):
            return make_dataset(opts.data, B, shuffle=opts.data_shuffle, repeat=True, mirror=opts.mirror,
                                seed=seed, input_context=ctx)

        return iter(strategy.distribute_datasets_from_function(fn))

    # Fixed latents and a batch of reals for the snapshot pictures.
    snap_inputs = snap_io.SnapshotInputs(G, opts.samples, opts.seed)
    reals_np = None
    if chief and not dry_run:
        try:
            reals_np, labels = next(iter(make_dataset(opts.data, opts.samples, shuffle=False, repeat=False,
                                                      drop_remainder=False)))
        except tf.errors.DataLossError as e:
            raise _damaged_mid_run(e, opts.data, None, state, strategy, chief, run_dir, log) from None
        reals_np = reals_np.numpy()
        snap_inputs = snap_io.SnapshotInputs(G, opts.samples, opts.seed, labels=labels.numpy())
    affine = np.asarray(manifest.affine, np.float64)
    geometry = {k: manifest[k] for k in ("shape", "spacing", "affine", "orientation", "mirror_axis") if k in manifest}
    snap_options = dict(config=opts.config, G_kwargs=record.G_kwargs, data=opts.data, spacing_mm=opts.spacing_mm,
                        img_shape=opts.img_shape)

    writer = tf.summary.create_file_writer(run_dir) if (chief and run_dir) else None
    total_nimg = int(round(opts.total_kimg * 1000))
    tick_nimg = max(1, int(round(opts.kimg_per_tick * 1000)))
    it = data_iter()

    if dry_run:
        _time_phases(steps, next(it), opts.total_kimg, B, log)
        return EasyDict(run_dir=None, snapshot_dir=None, cur_nimg=0)

    log(f"Training for {opts.total_kimg:g} kimg on {strategy.num_replicas_in_sync} replica(s), batch {B} "
        f"({steps.rounds} round(s) of {steps.batch_gpu} per replica); "
        f"run directory {run_dir}" + ("" if chief else " (worker scratch)"))
    tick_start_nimg = int(state.cur_nimg.numpy())
    tick_start_time = time.time()
    maintenance = time.time() - start_time
    sums, counts = {}, {}
    skips = SkippedSteps(opts.get("max_skipped_steps", 1))
    last_snapshot = None
    cur_nimg = int(state.cur_nimg.numpy())
    done = cur_nimg >= total_nimg
    steps_this_call = 0
    deadline = None if not opts.get("max_minutes") else start_time + 60.0 * opts.max_minutes
    tty = sys.__stderr__ is not None and sys.__stderr__.isatty()

    with _StopFlag() as stop:
        if tick_callback is not None and chief:
            tick_callback(int(state.cur_nimg.numpy()), G_ema)
        while not done:
            try:
                reals, c = next(it)
            except tf.errors.DataLossError as e:
                raise _damaged_mid_run(e, opts.data, manager, state, strategy, chief, run_dir, log) from None
            batch_idx = int(state.batch_idx.numpy())
            skipped = _run_phases(steps, batch_idx, reals, c, opts.precision, loss.augment_pipe, sums, counts)
            where = f"step {batch_idx} (kimg {int(state.cur_nimg.numpy()) / 1000:.3f})"
            if skips.record(skipped):
                log(f"{where}: {'; '.join(skipped)} NaN/Inf; update skipped, training goes on "
                    f"({skips.describe_limit()})")
            if skips.limit_reached():
                last = latest_intact_checkpoint(manager.directory) if manager is not None else None
                raise TrainingDiverged(f"non-finite value at {where}, {'; '.join(skipped)} is NaN/Inf, "
                                       f"{skips.consecutive} consecutive step(s) skipped; training stopped without "
                                       f"saving. Last good checkpoint: {last or 'none yet'}")
            beta = ema_beta(B, opts.ema_kimg, opts.ema_rampup, int(state.cur_nimg.numpy()))
            steps.ema(G_ema, beta)
            state.cur_nimg.assign_add(B)
            state.batch_idx.assign_add(1)
            if loss.augment_pipe is not None:
                loss.augment_pipe.after_batch(int(state.batch_idx.numpy()), B)
            steps_this_call += 1
            cur_nimg = int(state.cur_nimg.numpy())
            done = cur_nimg >= total_nimg or (max_steps is not None and steps_this_call >= max_steps)
            if deadline is not None and time.time() >= deadline and not done:
                log(f"time budget of {opts.max_minutes:g} min reached at kimg {cur_nimg / 1000:.3f}; finishing")
                done = True
            if tty and chief:
                frac = min(1.0, (cur_nimg - tick_start_nimg) / tick_nimg)
                print(f"\r  tick {int(state.cur_tick.numpy())}: {frac:4.0%} ({cur_nimg / 1000:.3f} kimg)",
                      end="", file=sys.__stderr__, flush=True)
            if stop.signum is not None:
                if manager is not None:
                    path = _save(manager, state, chief)
                    log(f"stopped by {signal.Signals(stop.signum).name} at kimg {cur_nimg / 1000:.3f}; "
                        f"checkpoint {path}; resume from {run_dir} to continue")
                return EasyDict(run_dir=run_dir, snapshot_dir=last_snapshot, cur_nimg=cur_nimg, stopped=True,
                                signum=int(stop.signum))
            if not done and cur_nimg < tick_start_nimg + tick_nimg:
                continue

            # ---- tick ----
            if tty and chief:
                print("\r", end="", file=sys.__stderr__)
            tick_end = time.time()
            tick_time = tick_end - tick_start_time
            kimg_done = (cur_nimg - tick_start_nimg) / 1000
            sec_per_kimg = tick_time / max(kimg_done, 1e-9)
            state.cur_tick.assign_add(1)
            cur_tick = int(state.cur_tick.numpy())
            _, mem = peak_memory_gb()
            means = {k: sums[k] / counts[k] for k in sums}
            skipped_in_tick = skips.take_tick_count()  # steps with a skipped (non-finite) update in this tick
            if loss.augment_pipe is not None:
                means.update(loss.augment_pipe.progress())  # p and r_t: in the tick line and TensorBoard
            log(f"tick {cur_tick:<4d} kimg {cur_nimg / 1000:<8.3f} time {format_time(tick_end - start_time):<9s} "
                f"sec/tick {tick_time:<6.1f} sec/kimg {sec_per_kimg:<7.1f} maintenance {maintenance:<5.1f} "
                f"peak_mem {mem}  skipped {skipped_in_tick}  "
                + " ".join(f"{k.split('/', 1)[1]} {v:.3f}" for k, v in sorted(means.items())))
            if writer is not None:
                timing = {"Timing/sec_per_kimg": sec_per_kimg, "Timing/sec_per_tick": tick_time,
                          "Timing/maintenance_sec": maintenance}
                _tick_scalars(writer, cur_nimg, means, timing, skipped_in_tick, state, G_opt, D_opt)
            sums, counts = {}, {}

            # ---- snapshot, checkpoint, metrics ----
            maint_start = time.time()
            if tick_callback is not None and chief:
                tick_callback(cur_nimg, G_ema)
            if done or cur_tick % opts.snap == 0:
                if chief:
                    last_snapshot = _snapshot(snap_options, run_dir, cur_nimg, G_ema, snap_inputs, reals_np, affine,
                                              geometry, writer, step=int(state.batch_idx.numpy()))
                path = _save(manager, state, chief)
                if chief:
                    log(f"snapshot {last_snapshot}; checkpoint {path}")
                if chief and opts.metrics:
                    _metrics(opts, run_dir, G_ema, writer, cur_nimg, last_snapshot, log,
                             step=int(state.batch_idx.numpy()))
                it = data_iter()  # restart the stream at the checkpoint (exact resume)
                # Workers wait for the chief's snapshot and metrics here, not inside a collective with a timeout.
                multi_worker.wait_for_workers(strategy, f"tick-{cur_tick}")
            if writer is not None:
                writer.flush()
            tick_start_nimg, tick_start_time = cur_nimg, time.time()
            maintenance = tick_start_time - maint_start

    if chief:
        log(f"Done: {cur_nimg / 1000:.3f} kimg in {format_time(time.time() - start_time)}"
            + (f"; {skips.total} step(s) skipped a non-finite update." if skips.total else "."))
        if last_snapshot:
            log(f"Samples (NIfTI + PNG) are in {last_snapshot}")
    return EasyDict(run_dir=run_dir, snapshot_dir=last_snapshot, cur_nimg=cur_nimg, stopped=False,
                    skipped_steps=skips.total)


def _record_start(opts, record, manifest, run_dir, chief, dry_run, networks, log):
    """The run's records (options, run.json, the manifest copy) and the summary: in the log, on the console."""
    if chief and run_dir:
        # A resumed run adds to its records; earlier versions are kept beside them (training_options.1.json, ...).
        write_record(os.path.join(run_dir, OPTIONS_NAME), opts.to_json() + "\n")
        write_record(os.path.join(run_dir, RECORD_NAME), record.to_json() + "\n")
        write_record(os.path.join(run_dir, MANIFEST_COPY_NAME), EasyDict(manifest).to_json() + "\n")
    details = (f"Options:\n{json.dumps({k: v for k, v in opts.items() if k != 'cli_args'}, indent=1, default=str)}"
               f"\nRun:\n{json.dumps(record, indent=1, default=str)}\n")
    if dry_run:
        log(details)
    if dry_run or chief:
        log(run_summary(opts, record, manifest))
    if chief and run_dir:
        # The full options go to the log file only: on the console they would bury the summary.
        with open(os.path.join(run_dir, LOG_NAME), "a") as f:
            f.write(details)
    if dry_run:
        from training.networks import summary

        for network in networks:
            log(summary(network))


def _time_phases(steps, batch, total_kimg, batch_size, log):
    """--dry_run: trace each phase of the step, time a second call of each, and project the run's step time."""
    reals, c = batch
    log(f"dry run: tracing the {len(steps.phases)} train step phases (each first call compiles), then timing one "
        "step of each")
    step_seconds = {}
    for phase, _ in steps.phases:
        t0 = time.time()
        steps(phase, reals, c)
        t1 = time.time()
        steps(phase, reals, c)
        step_seconds[phase] = time.time() - t1
        log(f"dry run: phase {phase:<6} first call {t1 - t0:.2f}s (trace), then {step_seconds[phase]:.3f}s/step")
    total_nimg = int(round(total_kimg * 1000))
    projected = projected_training_seconds(step_seconds, steps.phases, total_nimg, batch_size)
    log(f"dry run: {total_kimg:g} kimg = {math.ceil(total_nimg / batch_size)} steps of batch {batch_size}: about "
        f"{format_time(projected)} of train steps (snapshots, metrics and data loading come on top)")
    log("dry run: nothing written")


def _run_phases(steps, batch_idx, reals, c, precision, augment_pipe, sums, counts):
    """One training step: every phase due at batch_idx (lazy regularisation skips the others). Adds the applied
    phases' losses to sums/counts; returns the phases whose update was skipped for a non-finite value."""
    skipped = []
    for phase, interval in steps.phases:
        if interval > 1 and batch_idx % interval:
            continue
        out = steps(phase, reals, c)
        if not update_applied(out, precision):  # the step skipped this phase's update
            skipped.append(_nonfinite_term(out, phase))
            continue  # its NaN/Inf values stay out of the tick means and of ADA's r_t
        if "Loss/signs/real" in out:  # all-reduced over replicas: every worker adapts p alike
            augment_pipe.record_signs(out["Loss/signs/real"])
        for k, v in out.items():
            if k.startswith("Loss/"):
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
    return skipped


def _tick_scalars(writer, cur_nimg, means, timing, skipped, state, G_opt, D_opt):
    """A tick's TensorBoard scalars, at step = images seen."""
    with writer.as_default():
        for k, v in {**means, **timing}.items():
            tb_log.scalar(k, v, cur_nimg)
        tb_log.scalar("Progress/kimg", cur_nimg / 1000, cur_nimg)
        tb_log.scalar("Progress/skipped_steps", skipped, cur_nimg)
        tb_log.scalar("Progress/pl_mean", float(state.pl_mean.numpy()), cur_nimg)
        tb_log.scalar("Progress/lr_G", float(G_opt.lr.numpy()), cur_nimg)
        tb_log.scalar("Progress/lr_D", float(D_opt.lr.numpy()), cur_nimg)
        if state.loss_scale.enabled:
            tb_log.scalar("Progress/loss_scale", float(state.loss_scale.scale.numpy()), cur_nimg)


def _damaged_mid_run(error, data, manager, state, strategy, chief, run_dir, log):
    """The InputError for a record that could not be read after the start's check of every shard passed (the
    dataset changed or was damaged during the run). The state is at a step boundary, so it is checkpointed first,
    as on SIGTERM (single worker only: other workers would not join the save), and nothing trained is lost."""
    step = int(state.batch_idx.numpy())
    saved = ""
    if manager is not None and not multi_worker.is_multi_worker(strategy):
        path = _save(manager, state, chief)
        saved = f"; checkpoint {path} saved, resume from {run_dir} once the dataset is whole again"
    message = (f"{data}: a record could not be read at step {step} ({error_line(error)[:200]}): "
               f"the dataset was changed or damaged after training started; `dataset_tool.py info "
               f"--dataset={data}` names the shard{saved}")
    if chief:
        log(f"error: {message}")
    return InputError(message)


def _save(manager, state, chief):
    # Every worker saves (MultiWorkerMirroredStrategy may need them all); non-chiefs write to scratch dirs.
    # CheckpointManager writes the 'checkpoint' index last, so a kill mid-save leaves the previous one current; a
    # failed save (a full disk) is removed by save_checkpoint.
    return save_checkpoint(manager, int(state.batch_idx.numpy()))


def update_applied(out, precision):
    """Whether a phase's step (train_step.TrainSteps) applied its update: it skips it when the loss or, outside
    mixed_fp16 (where an overflow only lowers the loss scale), the gradients are NaN/Inf."""
    return bool(out["loss_finite"]) and (bool(out["grads_finite"]) or precision == "mixed_fp16")


def _nonfinite_term(out, phase):
    bad = [k for k, v in out.items() if k.startswith("Loss/") and not np.isfinite(v)]
    term = ", ".join(bad) if bad else ("the objective" if not np.isfinite(out["objective"]) else
                                        f"the gradients of phase {phase}")
    return f"phase {phase}: {term}"


class SkippedSteps:
    """The non-finite policy. As the original's optimiser, a step whose loss or gradients are NaN/Inf skips its
    update and training goes on; after `limit` consecutive such steps the run stops (limit 0: never, as the
    original; 1: at the first). Counts steps with at least one skipped phase."""

    def __init__(self, limit):
        self.limit = int(limit)
        self.consecutive = self.in_tick = self.total = 0

    def record(self, skipped):
        """After a step, with the descriptions of its skipped phases; True when the step starts a run of skips."""
        if not skipped:
            self.consecutive = 0
            return False
        self.consecutive += 1
        self.in_tick += 1
        self.total += 1
        return self.consecutive == 1

    def limit_reached(self):
        return self.limit > 0 and self.consecutive >= self.limit

    def describe_limit(self):
        return "never stops" if self.limit == 0 else f"stops after {self.limit} consecutive skipped steps"

    def take_tick_count(self):
        n, self.in_tick = self.in_tick, 0
        return n


def _snapshot(options, run_dir, cur_nimg, G_ema, inputs, reals, affine, geometry, writer, step):
    # Named by step, never reused: a resumed run that reaches the same kimg writes a new folder.
    snap_dir = snap_io.new_snapshot_dir(snapshots_dir(run_dir), step, cur_nimg)
    fakes = snap_io.generate_fakes(G_ema, inputs)
    snap_io.write_snapshot(snap_dir, fakes, reals, affine, G_ema=G_ema, geometry=geometry, options=options)
    if writer is not None:
        with writer.as_default():
            tb_log.image("Images/fakes_mid_slices", snap_io.mid_slice_image(fakes)[0], cur_nimg)
    return snap_dir


def _metrics(opts, run_dir, G_ema, writer, cur_nimg, snap_dir, log, step):
    from metrics import metric_main

    # TensorBoard values are written here (tb_log works without the tensorboard package).
    results = metric_main.calc_metrics(opts.metrics, G=G_ema, dataset_dir=opts.data, run_dir=run_dir,
                                       tb_writer=None, step=step, kimg=cur_nimg / 1000, snapshot=snap_dir,
                                       num=opts.metric_num,
                                       batch=min(8, opts.metric_num), **opts.get("metric_kwargs", {}))
    log(metric_main.format_table(results))
    if writer is not None:
        with writer.as_default():
            for r in results:
                for k, v in r.results.items():
                    tb_log.scalar(f"Metrics/{k}", v, cur_nimg)
