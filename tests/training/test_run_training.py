"""run_training.py front end: flags are validated with one-line errors (exit 2); --summary; option resolution."""

import os
import subprocess
import sys

import pytest

from dnnlib import UserError
from tests.utils import REPO as ROOT
from tests.utils import make_tiny_dataset


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_training.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_bad_flags_exit_2_with_one_line(tmp_path):
    proc = _run(f"--data={tmp_path / 'missing'}", f"--outdir={tmp_path / 'out'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --data=")
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out")
    proc = _run("positional")
    assert proc.returncode == 2 and "unexpected arguments" in proc.stderr


def test_summary_prints_layers_and_totals():
    proc = _run("--config=demo-tiny", "--summary")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Generator" in proc.stdout and "Discriminator" in proc.stdout
    assert "demo-tiny: G " in proc.stdout and "trainable parameters" in proc.stdout


def test_options_resolution(tmp_path):
    from training.train_options import build_options

    data = make_tiny_dataset(str(tmp_path / "data"), num=2)
    opts = build_options(data=data, config="demo-tiny", gamma=3.5, batch=4, kimg=2, precision="mixed_bf16",
                         lazy_reg=False)
    assert opts.loss_kwargs.r1_gamma == 3.5 and opts.batch_size == 4 and opts.total_kimg == 2.0
    assert opts.G_kwargs.synthesis_kwargs.compute_dtype == "bfloat16" and opts.D_kwargs.compute_dtype == "bfloat16"
    assert opts.loss_kwargs.G_reg_interval == 0 and opts.loss_kwargs.D_reg_interval == 0
    assert opts.G_kwargs.c_dim == 0 and opts.img_shape == [20, 24, 28]
    assert opts.max_minutes is None  # the time budget applies to the no-flag demo only
    with pytest.raises(UserError, match="divisible"):
        build_options(data=data, config="demo-tiny", batch=3)
    with pytest.raises(UserError, match="--gamma"):
        build_options(data=data, config="demo-tiny", gamma=-1)
    with pytest.raises(UserError, match="unknown config"):
        build_options(data=data, config="nope")
    # Metrics that need a feature network fail at start-up, not at the first snapshot.
    with pytest.raises(UserError, match="feature_network"):
        build_options(data=data, config="demo-tiny", metrics=["fid_3d"])
    with pytest.raises(UserError, match="unknown metric|choose"):
        build_options(data=data, config="demo-tiny", metrics=["no_such_metric"])
    opts = build_options(data=data, config="demo-tiny", metrics=["fid_3d"], metric_feature_network="/x/net.keras",
                         metric_feature_layer="pool")
    assert opts.metric_kwargs == {"feature_network": "/x/net.keras", "feature_layer": "pool"}
