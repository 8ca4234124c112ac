"""run_metrics.py: flags validated with one-line errors; the command writes a table and JSON."""

import json
import os
import subprocess
import sys

import pytest

from dnnlib import EasyDict, UserError
from metrics import metric_main
from tests.utils import REPO as ROOT
from tests.utils import FakeG, make_reals


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_metrics.py"), *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_unknown_metric_exits_2_listing_names(tmp_path):
    p = _run(f"--network={tmp_path}", f"--data={tmp_path}", "--metrics=fid50k")
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "fid50k" in err[0] and "ms_ssim_legacy_kwon" in err[0]


def test_run_command_table_and_json(tmp_path, capsys):
    _, ds = make_reals()
    out = str(tmp_path / "m.json")
    opts = EasyDict(network=FakeG(), data=ds, metrics=["mmd_linear_unbiased", "ms_ssim"], num=8, batch=4,
                    json=out, overwrite=False)
    metric_main.run_command(opts)
    printed = capsys.readouterr().out
    assert "mmd_linear_unbiased" in printed and "ms_ssim_fakes" in printed
    saved = json.load(open(out))
    assert [r["metric"] for r in saved["results"]] == ["mmd_linear_unbiased", "ms_ssim"]
    with pytest.raises(UserError, match="already exists"):
        metric_main.run_command(opts)


def test_missing_slice_weights_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _, ds = make_reals()
    G = FakeG()
    with pytest.raises(UserError, match="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        metric_main.run_command(EasyDict(network=G, data=ds, metrics=["mmd", "fid_slices"], num=8, batch=4))
    assert G.calls == []
