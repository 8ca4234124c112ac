"""bench/bench_kid_floor.py: a set scored against itself has FID 0; against other volumes it does not."""

import numpy as np

from bench import bench_kid_floor
from metrics import feature_networks
from tests.utils import make_tiny_dataset, run_script


def test_a_set_against_itself_scores_zero_and_another_set_does_not(tmp_path):
    net = feature_networks.slice_network(feature_networks.RANDOM, image_size=75)  # plumbing: any features do
    a = make_tiny_dataset(str(tmp_path / "a"), num=4, seed=0)
    b = make_tiny_dataset(str(tmp_path / "b"), num=4, seed=7)
    (same,) = bench_kid_floor.floor_rows(net, a, a, num=4, seeds=[1], step=0)  # all of a, shuffled
    (other,) = bench_kid_floor.floor_rows(net, b, a, num=4, seeds=[1], step=0)
    fid = bench_kid_floor.HEADERS.index("fid")
    assert abs(same[fid]) < 1e-3 * other[fid], (same, other)
    assert np.isfinite(other).all() and len(other) == len(bench_kid_floor.HEADERS)


def test_weights_that_are_not_the_standard_network_are_refused(tmp_path):
    p = run_script("bench/bench_kid_floor.py", f"--data={tmp_path}", f"--heldout={tmp_path}",
                   "--feature_weights=random", timeout=300)
    assert p.returncode != 0 and "not the standard FID Inception" in p.stderr, p.stderr
