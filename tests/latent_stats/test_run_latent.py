"""run_latent.py's flag checks: each mistake is one `error:` line naming the flag, exit 2, before TensorFlow loads."""

import os

import pytest

from tests.utils import run_script

CASES = [
    ([], "give one command: embed | atlas | regress | trajectory | progress"),
    (["regress", "--outdir=OUT"], "regress needs --embedding"),
    (["regress", "--embedding=EMB", "--at=age", "--outdir=OUT"], "--at=age: expected a covariate and numbers"),
    (["regress", "--embedding=EMB", "--at=age=30", "--hold=group", "--outdir=OUT"], "--hold=group: expected"),
    (["trajectory", "--embedding=EMB", "--subject=1", "--change=age=old", "--outdir=OUT"], "--change: change"),
    (["embed", "--data=EMB", "--outdir=OUT"], "embed needs --network"),
    (["atlas", "--embedding=EMB", "--segments=0", "--outdir=OUT"], "--segments=0: must be at least 1"),
    (["progress", "--outdir=OUT"], "progress needs --run"),
]


@pytest.mark.parametrize("args,message", CASES)
def test_flag_mistakes(tmp_path, args, message):
    emb = tmp_path / "emb"
    emb.mkdir()
    out = str(tmp_path / "out")
    args = [a.replace("EMB", str(emb)).replace("OUT", out) for a in args]
    r = run_script("run_latent.py", *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0 and message in r.stderr, r.stderr
    assert not os.path.exists(out)


def test_help_exits_0():
    r = run_script("run_latent.py", "--help")
    assert r.returncode == 0 and "--embedding" in r.stdout + r.stderr
