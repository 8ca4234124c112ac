"""Data rates: scan conversion, demo-set building, tf.data read rate, beside the training step's appetite.

All measured in one run on this machine:
  1. create: 1 mm NIfTI scans (MNI-sized, 197x233x189, .nii.gz) -> 2 mm 80x96x112 records, volumes/s
     with every core (and with one worker, for the scaling ratio, unless --quick);
  2. demo: synthetic demo volumes built per second at 4 mm (40x48x56) and 2 mm (80x96x112);
  3. read: make_dataset volumes/s at 80x96x112 (GZIP shards, uint16, shuffle + decode + batch 8), and
     at 40x48x56;
  4. step: volumes/s a training step consumes (Gmain + Dmain of training/train_step.py on random reals:
     one Dmain eats `batch` reals) for the demo config and a 2 mm paper config; the ratio read / step says
     how many times faster the input pipeline is than the training that consumes it.

    python -m bench.bench_data --quick     # small counts (a few minutes on 2 busy cores)
    python -m bench.bench_data
"""

import os
import tempfile
import time

from absl import app, flags

from bench import common
from dnnlib.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Small counts: checks the script in a few minutes.")
flags.DEFINE_integer("num_scans", 12, "1 mm scans to convert.")
flags.DEFINE_integer("num_demo", 40, "Demo volumes to build per resolution.")
flags.DEFINE_integer("read_volumes", 256, "Volumes to read per read-rate measurement (after one warm-up batch).")
flags.DEFINE_list("step_configs", ["demo", "Gorig-Dres-R2-3d-2mm-base567"], "Configs for the step rate.")
flags.DEFINE_integer("step_batch", 2, "Batch for the paper (2 mm) step config.")
flags.DEFINE_integer("workers", None, "Worker processes for conversion (default: all cores).")
flags.DEFINE_list("parts", ["create", "demo", "read", "step"], "Measurements to run (read needs demo).")


def make_scans(folder, n, seed=0):
    """n 1 mm scans: the MNI template shifted, scaled in intensity, with noise, in LPS or RAS order."""
    import nibabel as nib
    import numpy as np

    from volumes.demo_data import load_template

    vol, aff = load_template()
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        v = np.roll(vol, tuple(rng.integers(-6, 7, 3)), axis=(0, 1, 2)) * rng.uniform(200, 1500)
        v = v + rng.normal(0, 5, v.shape).astype(np.float32)
        a = aff.copy()
        if i % 2:  # every other scan stored LPS-first, as many scanners write it
            v, a = v[::-1, ::-1], a @ np.array([[-1, 0, 0, v.shape[0] - 1], [0, -1, 0, v.shape[1] - 1],
                                                 [0, 0, 1, 0], [0, 0, 0, 1.0]])
        p = os.path.join(folder, f"scan{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(v, dtype=np.float32), a), p)
        paths.append(p)
    return paths


def _cpu_seconds():
    """CPU time of this process and its finished children (pool workers): unlike wall time, it barely
    depends on how many other jobs share the machine."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def convert_rate(paths, out, workers):
    from volumes import preprocess
    from volumes.dataset_create import create_dataset

    opts = preprocess.default_options(spacing=[2.0, 2.0, 2.0])
    t0, c0 = time.perf_counter(), _cpu_seconds()
    m = create_dataset(paths, out, opts, workers=workers, overwrite=True, verbose=False, log=lambda s: None)
    n = m["num_volumes"]
    return n / (time.perf_counter() - t0), (_cpu_seconds() - c0) / n


def demo_rate(out, res, n, workers):
    from volumes.demo_data import build_demo_dataset

    t0, c0 = time.perf_counter(), _cpu_seconds()
    build_demo_dataset(out, res=res, num_volumes=n, workers=workers, overwrite=True, verbose=False)
    return n / (time.perf_counter() - t0), (_cpu_seconds() - c0) / n


def read_rate(path, volumes, batch=8):
    from volumes.dataset_reader import make_dataset

    ds = make_dataset(path, batch, shuffle=True, repeat=True)
    it = iter(ds)
    next(it)[0].numpy()  # warm-up: pipeline start, first shuffle-buffer fill
    n_batches = max(1, volumes // batch)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)[0].numpy()
    return n_batches * batch / (time.perf_counter() - t0)


def step_rate(name, batch):
    """Volumes/s consumed by Gmain + Dmain (one real batch per Dmain step)."""
    from training.configs import get_config

    cfg = get_config(name)
    h = common.StepHarness(cfg, batch=batch if not name.startswith("demo") else None)
    for p in ("Gmain", "Dmain"):
        h.trace(p)
    repeats = 1 if not name.startswith("demo") else 3
    t = sum(common.time_fn(lambda p=p: h.run(p), warmup=1, repeats=repeats) for p in ("Gmain", "Dmain"))
    return h.batch / t, tuple(h.G.img_shape), h.batch


class _Rows(list):
    """Table rows that are also logged as they are measured (long runs show partial results)."""

    def append(self, row):
        super().append(row)
        common.log(f"  {row[0]}: {row[1]:.3g} volumes/s {row[2]}")


def main(_argv):
    f = FLAGS
    n_scans, n_demo, n_read = (4, 8, 64) if f.quick else (f.num_scans, f.num_demo, f.read_volumes)
    print(common.machine_line())
    rows = _Rows()
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        workers = f.workers or os.cpu_count()
        if "create" in f.parts:
            common.log(f"writing {n_scans} synthetic 1 mm scans")
            scans = make_scans(tmp, n_scans)
            r_all, cpu = convert_rate(scans, os.path.join(tmp, "ds2mm"), workers)
            rows.append([f"create 1mm->2mm 80x96x112, {workers} workers", r_all, f"{cpu:.2f} CPU s/vol"])
            if not f.quick:
                r_one, cpu = convert_rate(scans, os.path.join(tmp, "ds2mm_1"), 1)
                rows.append(["create 1mm->2mm 80x96x112, 1 worker", r_one,
                             f"{cpu:.2f} CPU s/vol; x{r_all / r_one:.2f} with {workers}"])
        read2 = read4 = None
        if "demo" in f.parts:
            common.log("demo sets")
            demo4 = os.path.join(tmp, "demo4")
            demo2 = os.path.join(tmp, "demo2")
            for res, path, label in (("demo", demo4, "4 mm 40x48x56"), ("2mm", demo2, "2 mm 80x96x112")):
                rate, cpu = demo_rate(path, res, n_demo, workers)
                rows.append([f"demo build {label} ({n_demo} vols)", rate, f"{cpu:.3f} CPU s/vol"])
            if "read" in f.parts:
                common.log("read rates")
                read2 = read_rate(demo2, n_read)
                read4 = read_rate(demo4, n_read)
                rows.append(["read make_dataset 80x96x112 batch 8", read2, ""])
                rows.append(["read make_dataset 40x48x56 batch 8", read4, ""])
        for name in f.step_configs if "step" in f.parts else []:
            common.log(f"step rate {name}")
            try:
                rate, shape, batch = step_rate(name, f.step_batch)
            except Exception as e:  # noqa: BLE001 - the step belongs to another part; report, don't die
                rows.append([f"step {name}", float("nan"), f"failed: {type(e).__name__}: {str(e)[:80]}"])
                continue
            read = read2 if tuple(shape) == (80, 96, 112) else read4 if tuple(shape) == (40, 48, 56) else None
            ratio = f"read/step x{read / rate:.0f}" if read else ""
            rows.append([f"step {name} {'x'.join(map(str, shape))} batch {batch} (Gmain+Dmain)", rate, ratio])
    common.print_table(rows, ["measurement", "volumes/s", "note"])
    print(common.load_line())


if __name__ == "__main__":
    app.run(run_main(main))
