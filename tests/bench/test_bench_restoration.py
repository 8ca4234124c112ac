"""bench/bench_restoration.py: the baselines against closed forms, and both studies end to end on one held-out
volume of the shipped demo network with a few projector steps."""

import glob
import json
import math
import os

import numpy as np
import pytest

from bench import bench_restoration as B
from dnnlib import EasyDict
from tests.utils import REPO, run_script

# (volume shape, hole as index slices, gradient of the linear truth along i, j, k). Where the hole meets a face of
# the grid the missing neighbour is left out (no flux across the face): the truth is constant across such faces.
HOLES = [((8, 9, 10), (slice(2, 6), slice(3, 7), slice(2, 8)), (-0.02, 0.05, 0.04)),
         ((6, 6, 6), (slice(0, 3), slice(1, 4), slice(3, 6)), (0.0, 0.05, 0.0))]


@pytest.mark.parametrize("shape, hole, gradient", HOLES, ids=["inside", "at the edge"])
def test_harmonic_fill_restores_a_linear_volume(shape, hole, gradient):
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    truth = 0.3 + sum(g * x for g, x in zip(gradient, grid, strict=True))
    mask = np.zeros(shape, bool)
    mask[hole] = True
    filled = B.harmonic_fill(np.where(mask, 0.0, truth), mask)
    np.testing.assert_allclose(filled, truth, atol=1e-9)


def test_harmonic_fill_solves_the_discrete_laplace_equation():
    rng = np.random.RandomState(0)
    v = rng.uniform(0, 1, (7, 7, 7))
    mask = np.zeros(v.shape, bool)
    mask[2:5, 2:5, 1:6] = True
    got = B.harmonic_fill(v, mask)
    np.testing.assert_array_equal(got[~mask], v[~mask])
    # Every hole voxel is the mean of its six face neighbours (all inside the grid here).
    neighbours = sum(np.roll(got, s, axis=a) for a in range(3) for s in (-1, 1)) / 6
    np.testing.assert_allclose(got[mask], neighbours[mask], atol=1e-10)


@pytest.mark.parametrize("hole, match", [(np.ones((3, 3, 3), bool), "touches no known voxel"),
                                         (np.zeros((3, 3, 4), bool), "hole has shape")])
def test_harmonic_fill_errors(hole, match):
    with pytest.raises(ValueError, match=match):
        B.harmonic_fill(np.zeros((3, 3, 3)), hole)


# (centre, edge, grid shape, the cube's starts)
BLOCKS = [((10, 12, 14), 8, (20, 24, 28), (6, 8, 10)), ((1, 22.6, 14), 8, (20, 24, 28), (0, 16, 10))]


@pytest.mark.parametrize("centre, edge, shape, starts", BLOCKS, ids=["centred", "moved inside"])
def test_block_slices(centre, edge, shape, starts):
    got = B.block_slices(centre, edge, shape)
    assert [(s.start, s.stop) for s in got] == [(a, a + edge) for a in starts]
    with pytest.raises(ValueError, match="does not fit"):
        B.block_slices(centre, 25, shape)


def test_inside_metrics_against_numpy():
    rng = np.random.RandomState(1)
    a, b = rng.uniform(0, 1, (2, 12, 12, 12))
    region = np.zeros(a.shape, bool)
    region[2:10, 3:11, 1:9] = True
    got = B.inside_metrics(a, b, region)
    assert got["psnr"] == pytest.approx(10 * math.log10(1 / np.mean((a[region] - b[region]) ** 2)))
    assert B.inside_metrics(a, a, region)["ssim"] == pytest.approx(1.0)


def test_both_studies_on_one_volume(tmp_path, capsys):
    cfg = EasyDict(network=os.path.join(REPO, "pretrained", "demo"), data=os.path.join(REPO, "pretrained", "demo",
                   "heldout"), indices=[0], num_steps=2, w_plus=True, w_prior_weight=0.01, w_avg_samples=50,
                   factors=[2], axis=2, blocks=[8], out=str(tmp_path / "out"), overwrite=False,
                   figure=str(tmp_path / "case.png"), figure_factor=2)
    tables = B.run(cfg)
    printed = capsys.readouterr().out
    assert [(r["factor"], r["index"]) for r in tables["thick"]] == [(2, 0)]
    assert [(r["block"], r["index"]) for r in tables["block"]] == [(8, 0)]
    assert {"psnr_unhidden", "ssim_unhidden"} <= set(tables["thick"][0]) & set(tables["block"][0])
    for row in tables["thick"] + tables["block"]:
        assert all(math.isfinite(v) for k, v in row.items() if k not in ("factor", "block", "index")), row
    assert printed.count("median") == 2
    # Every projection (the control, each degradation) used the prior's weight given.
    records = glob.glob(os.path.join(cfg.out, "**", "projection.json"), recursive=True)
    assert records and all(json.load(open(r))["options"]["w_prior_weight"] == 0.01 for r in records)
    # The background fill is the input as it is: the block hidden (0), never the truth.
    volumes, _ = B.dataset_volumes(cfg.data)
    block = np.zeros(volumes[0].shape, bool)
    block[B.block_slices(B.block_centre(volumes), 8, volumes[0].shape)] = True
    want = 10 * math.log10(1 / np.mean(volumes[0][block].astype(np.float64) ** 2))
    assert tables["block"][0]["psnr_background"] == pytest.approx(want, abs=1e-3)
    with open(cfg.figure, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(cfg.figure) < 200_000


def test_cli_refuses_a_figure_without_its_study():
    r = run_script(os.path.join("bench", "bench_restoration.py"), "--factors=2", "--figure=/tmp/x.png")
    assert r.returncode != 0 and "--figure needs --figure_factor among --factors" in r.stderr + r.stdout
