"""generate and average stream batch by batch: flat memory, a progress line, a capped grid, nothing left behind
when interrupted. The network is a demo-tiny generator handed to generation.commands in memory (no export)."""

import json
import os
import signal
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dnnlib.cli import SigtermInterrupt, sigterm_as_keyboard_interrupt
from generation import commands, outputs, sampling
from generation.runner import Runner
from tests.utils import tiny_generator
from training import network_io as network_loader
from volumes import visualize

SHAPE = (20, 24, 28)
VOLUME_BYTES = int(np.prod(SHAPE)) * 4  # one float32 volume of demo-tiny


@pytest.fixture(scope="module")
def G():
    return tiny_generator(seed=5, noise_strength=0.3)


@pytest.fixture
def in_memory_network(G, monkeypatch):
    net = network_loader.LoadedNetwork(G, {"affine": np.eye(4).tolist(), "shape": list(SHAPE)}, {}, "in-memory")
    monkeypatch.setattr(network_loader, "load_generator", lambda path: net)
    return net


def _opts(outdir, command="generate", seeds=range(8), **kw):
    base = dict(command=command, network="in-memory", outdir=str(outdir), seeds=list(seeds), noise_mode="random",
                psi=1.0, batch=4, grid_max=4, progress=False)
    base.update(kw)
    return base


def _peak_traced_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_generate_keeps_peak_memory_flat_over_ten_times_the_seeds(in_memory_network, tmp_path):
    # tracemalloc counts NumPy's allocations (every volume the command holds is a NumPy array) and not TensorFlow's
    # or the allocator's caches, so unlike RSS it is deterministic: holding the volumes would add one VOLUME_BYTES
    # each. The check below that it sees an all-in-memory run shows the measure is not blind.
    commands.run(_opts(tmp_path / "warm", seeds=range(4)))  # traces the tf.functions outside the measurement
    small = _peak_traced_bytes(lambda: commands.run(_opts(tmp_path / "n8", seeds=range(8))))
    large = _peak_traced_bytes(lambda: commands.run(_opts(tmp_path / "n80", seeds=range(80))))
    assert len([f for f in os.listdir(tmp_path / "n80") if f.endswith(".nii.gz")]) == 80
    assert large - small < 72 * VOLUME_BYTES / 4, (small, large)
    runner = Runner(in_memory_network.G, 4)
    all_at_once = _peak_traced_bytes(lambda: sampling.generate(runner, list(range(80))))
    assert all_at_once >= 80 * VOLUME_BYTES


def test_generate_grid_is_capped_to_the_first_seeds_and_says_so(in_memory_network, tmp_path):
    seeds = [7, 3, 11, 5, 2, 9, 1]
    summary = commands.run(_opts(tmp_path / "gen", seeds=seeds, grid_max=5, grid_cols=3))
    assert summary.files == 7 and summary.grid_seeds == [7, 3, 11, 5, 2]
    record = json.load(open(tmp_path / "gen" / "generation.json"))["summary"]
    assert record["grid_note"] == "grid_*.png show the first 5 of 7 seeds"
    # The same picture as a grid drawn from the first five seeds' volumes, made independently of the stream.
    first = sampling.generate(Runner(in_memory_network.G, 2), seeds[:5], noise_mode="random")
    visualize.write_grids(str(tmp_path / "want"), first, 2, 3)
    for name in visualize.PLANE_NAMES:
        got = np.asarray(Image.open(tmp_path / "gen" / f"grid_{name}.png"))
        np.testing.assert_array_equal(got, np.asarray(Image.open(tmp_path / f"want_{name}.png")))


@pytest.mark.parametrize("command, label", [("generate", "generate ["), ("average", "average [")])
def test_progress_line_counts_volumes(in_memory_network, tmp_path, capsys, command, label):
    commands.run(_opts(tmp_path / "out", command=command, seeds=range(10), batch=3, progress=True))
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(label) and " 10/10 " in last and "vol/s" in last and "ETA" in last


INTERRUPTS = ["keyboard", "sigterm"]


@pytest.mark.parametrize("how", INTERRUPTS)
def test_interrupt_mid_stream_leaves_no_output_and_no_temporary(in_memory_network, tmp_path, monkeypatch, how):
    written = []
    real_write = outputs.write_volume

    def write_then_stop(path, *args, **kw):
        real_write(path, *args, **kw)
        written.append(path)
        if len(written) == 5:  # in the second batch, after files were written
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "write_volume", write_then_stop)
    expected = SigtermInterrupt if how == "sigterm" else KeyboardInterrupt
    with pytest.raises(expected), sigterm_as_keyboard_interrupt():
        commands.run(_opts(tmp_path / "out", seeds=range(12)))
    assert len(written) == 5
    assert os.listdir(tmp_path) == []  # neither the output folder nor a .tmp-out-* folder


def test_average_streams_ws_and_volumes(in_memory_network, tmp_path):
    G = in_memory_network.G
    seeds = list(range(7))  # not a multiple of the batch
    runner = Runner(G, 3)
    z = np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds]).astype(np.float32)
    want = G.mapping(tf.constant(z)).numpy().astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(sampling.mean_w(runner, seeds), want, atol=1e-5)
    with pytest.raises(ValueError, match="no seeds"):
        sampling.average_volume(runner, [])
