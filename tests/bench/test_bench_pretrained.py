"""bench/bench_pretrained.py curve: every snapshot of a run scored against held-out volumes, at the kimg its log
gives, in a CSV and a picture."""

import csv
import math
import os

from tests.utils import REPO, run_script


def _run_with_two_snapshots(root):
    """A run folder whose two snapshots are the shipped demo generator, logged at kimg 1 and 2."""
    run = root / "run"
    lines = []
    for step, kimg in ((250, 1.0), (500, 2.0)):
        snap = run / "snapshots" / f"step{step:08d}-kimg{kimg:09.3f}"
        snap.mkdir(parents=True)
        os.symlink(os.path.join(REPO, "pretrained", "demo", "generator"), snap / "generator")
        lines += [f"tick {step // 250}  kimg {kimg:.3f}   time 1m", f"snapshot {snap}; checkpoint {run}/ckpt-{step}"]
    (run / "log.txt").write_text("\n".join(lines) + "\n")
    return run


def test_curve_scores_every_snapshot_at_its_logged_kimg(tmp_path):
    run = _run_with_two_snapshots(tmp_path)
    out = tmp_path / "curve"
    p = run_script("bench/bench_pretrained.py", "curve", f"--run={run}",
                   f"--heldout={os.path.join(REPO, 'pretrained', 'demo', 'heldout')}", "--num=4",
                   "--metrics=mmd", f"--out={out}", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    with open(f"{out}.csv") as f:
        rows = list(csv.reader(f))
    assert [float(r[0]) for r in rows[1:]] == [1.0, 2.0]
    first, second = ([float(v) for v in r[1:]] for r in rows[1:])
    assert len(first) == 2 and all(math.isfinite(v) for v in first)  # mmd_linear_unbiased, mmd_gaussian_median
    # The same generator, latents and reals; only the noise maps are drawn anew (metrics do not seed them).
    assert all(abs(a - b) <= 0.1 * abs(a) for a, b in zip(first, second, strict=True)), (first, second)
    assert os.path.getsize(f"{out}.png") > 1000
