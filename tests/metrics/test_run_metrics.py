"""run_metrics.py: flags validated with one-line errors naming the flag; the command prints a table, writes JSON."""

import json

import pytest

from dnnlib import EasyDict
from metrics import feature_networks, metric_main
from tests.utils import FakeG, make_reals, make_tiny_dataset, run_script

# (extra flags, substrings of the one error line). --network and --data are a scratch directory; {json} is an
# existing file there. Every case fails before any volume is generated.
CLI_ERRORS = [
    pytest.param(["--metrics=fid50k"], ["--metrics", "fid50k", "ms_ssim_legacy_kwon"], id="unknown-metric"),
    pytest.param(["--metrics=mmd,fid_slices", "--feature_weights=keras:"],
                 ["--feature_weights", feature_networks.INCEPTION_NOTOP_FILE], id="no-keras-weights"),
    pytest.param(["--metrics=kid", "--feature_weights={missing}"], ["--feature_weights", "no such FID Inception"],
                 id="no-fid-weights-file"),
    pytest.param(["--metrics=fid_3d"], ["--feature_network", "fid_3d needs a 3D feature network"], id="no-3d-network"),
    pytest.param(["--num=1"], ["--num=1", "at least 2 volumes"], id="too-few-volumes"),
    pytest.param(["--json={json}"], ["--json=", "already exists", "--overwrite"], id="json-exists"),
]


@pytest.mark.parametrize("extra, expected", CLI_ERRORS)
def test_flag_errors_exit_2_naming_the_flag(tmp_path, extra, expected):
    existing = tmp_path / "m.json"
    existing.write_text("{}")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = [a.format(json=existing, missing=tmp_path / "inception-2015-12-05.tgz") for a in extra]
    p = run_script("run_metrics.py", f"--network={scratch}", f"--data={scratch}", *args,
                   env={"KERAS_HOME": str(tmp_path)}, timeout=300)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, p.stderr
    for text in expected:
        assert text in err[0], err[0]


def test_grid_mismatch_exits_2_naming_both_grids(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "data"))  # 20x24x28; the shipped demo network makes 40x48x56
    p = run_script("run_metrics.py", "--network=demo", f"--data={data}", "--metrics=ms_ssim", timeout=300)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "the reals are 20x24x28 volumes but the network makes 40x48x56" in err[0], p.stderr


def test_run_metrics_table_and_json(tmp_path, capsys):
    _, ds = make_reals()
    out = tmp_path / "m.json"
    opts = EasyDict(network=FakeG(), data=ds, metrics=["mmd_linear_unbiased", "ms_ssim"], num=8, batch=4,
                    json=str(out))
    metric_main.run_metrics(opts)
    printed = capsys.readouterr().out
    assert "mmd_linear_unbiased" in printed and "ms_ssim_fakes" in printed
    saved = json.loads(out.read_text())
    assert [r["metric"] for r in saved["results"]] == ["mmd_linear_unbiased", "ms_ssim"]
    assert saved["options"]["num"] == 8
    # The library applies the one output rule: an existing file is replaced only with overwrite, and only when
    # the folder's record lists it as written here, unchanged.
    with pytest.raises(FileExistsError):
        metric_main.run_metrics(EasyDict(opts, metrics=["mmd_linear_unbiased"]))
    metric_main.run_metrics(EasyDict(opts, metrics=["mmd_linear_unbiased"], overwrite=True))
    assert [r["metric"] for r in json.loads(out.read_text())["results"]] == ["mmd_linear_unbiased"]


def test_missing_slice_weights_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _, ds = make_reals()
    G = FakeG()
    with pytest.raises(metric_main.MetricOptionError, match=feature_networks.INCEPTION_NOTOP_FILE) as e:
        metric_main.run_metrics(EasyDict(network=G, data=ds, metrics=["mmd", "fid_slices"], num=8, batch=4,
                                         feature_weights="keras:"))
    assert e.value.option == "feature_weights"
    assert G.calls == []
