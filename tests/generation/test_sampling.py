"""generation/sampling.py: seeds -> volumes, style mixing, interpolation, average, and the files they write."""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.errors import UserError
from generation import sampling as generation
from training import configs


@pytest.fixture(scope="module")
def G():
    tf.random.set_seed(0)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    # A fresh network has zero noise strengths and w_avg = 0; give it what a trained one has, so noise
    # modes and truncation make a difference.
    for layer in [lyr for b in G.synthesis.blocks for lyr in b.noise_layers()]:
        layer.noise_strength.assign(0.5)
    z = np.random.RandomState(1).randn(64, G.z_dim).astype(np.float32)
    G.mapping.w_avg.assign(tf.reduce_mean(G.mapping(z)[:, 0], axis=0))
    return G


@pytest.fixture(scope="module")
def runner(G):
    return generation.Runner(G, batch_size=3)


def test_seed_latent_is_numpy_randomstate():
    want = np.random.RandomState(7).randn(16).astype(np.float32)
    np.testing.assert_array_equal(generation.seed_to_z(7, 16), want)
    with pytest.raises(UserError, match="out of range"):
        generation.seed_to_z(-1, 16)


def test_same_seed_same_volume_across_calls_and_batches(runner):
    a = generation.generate(runner, [3, 4, 5, 6], psi=0.7, noise_mode="random")
    b = generation.generate(runner, [6, 3], psi=0.7, noise_mode="random")
    assert a.shape == (4, 20, 24, 28, 1)
    np.testing.assert_allclose(b[0], a[3], atol=1e-5)
    np.testing.assert_allclose(b[1], a[0], atol=1e-5)
    assert np.abs(a[0] - a[1]).max() > 1e-2  # different seeds differ


def test_noise_modes(runner):
    rnd = generation.generate(runner, [2], noise_mode="random")
    const = generation.generate(runner, [2], noise_mode="const")
    none = generation.generate(runner, [2], noise_mode="none")
    np.testing.assert_allclose(const, generation.generate(runner, [2], noise_mode="const"), atol=1e-6)
    assert np.abs(rnd - const).max() > 1e-3 and np.abs(const - none).max() > 1e-3
    with pytest.raises(UserError, match="noise_mode"):
        generation.generate(runner, [2], noise_mode="loud")


def test_psi_zero_collapses_every_seed_to_the_average_w(runner, G):
    vols = generation.generate(runner, [0, 1, 2], psi=0.0, noise_mode="const")
    ws = np.tile(G.mapping.w_avg.numpy()[None, None], [1, G.num_ws, 1])
    want = G.synthesis(tf.constant(ws), noise_mode="const").numpy()[0]
    for v in vols:
        np.testing.assert_allclose(v, want, atol=1e-5)


def test_labels():
    assert generation.make_label(0) is None
    np.testing.assert_array_equal(generation.make_label(3, class_idx=1), [0, 1, 0])
    np.testing.assert_array_equal(generation.make_label(2, label=[0.5, 2]), [0.5, 2])
    with pytest.raises(UserError, match="unconditional"):
        generation.make_label(0, class_idx=0)
    with pytest.raises(UserError, match="exactly one"):
        generation.make_label(2)
    with pytest.raises(UserError, match="out of range"):
        generation.make_label(2, class_idx=2)
    with pytest.raises(UserError, match="c_dim = 3"):
        generation.make_label(3, label=[1.0])


def test_presets_split_resolutions_low_to_high(G):
    res = generation.ws_resolutions(G)
    # demo-tiny: 5x6x7 -> 10x12x14 -> 20x24x28, num_ws = 6; index 0 base conv, 1-2 stage 1, 3-5 stage 2.
    assert res == [(5, 6, 7), (10, 12, 14), (10, 12, 14), (20, 24, 28), (20, 24, 28), (20, 24, 28)]
    presets = generation.style_presets(G)
    assert presets["coarse"][0] == [0] and presets["middle"][0] == [1, 2] and presets["fine"][0] == [3, 4, 5]
    assert generation.parse_styles("coarse", G) == [0]
    assert generation.parse_styles("0-1,5", G) == [0, 1, 5]
    assert generation.parse_styles("all", G) == list(range(6))
    assert generation.parse_styles("none", G) == []
    assert generation.parse_styles("10x12x14", G) == [1, 2]
    assert generation.parse_styles("5x6x7-10x12x14", G) == [0, 1, 2]
    assert generation.parse_styles("coarse,5", G) == [0, 5]
    with pytest.raises(UserError, match="not a resolution"):
        generation.parse_styles("40x48x56", G)
    with pytest.raises(UserError, match="out of range"):
        generation.parse_styles("4-9", G)


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_style_mix_identities(runner, G, noise_mode):
    rows, cols = [1, 2], [3, 4, 5]
    none = generation.style_mix(runner, rows, cols, [], psi=0.8, noise_mode=noise_mode)
    full = generation.style_mix(runner, rows, cols, list(range(G.num_ws)), psi=0.8, noise_mode=noise_mode)
    assert none.mix.shape == (2, 3, 20, 24, 28, 1)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(none.mix[i, j], none.rows[i], atol=1e-5)  # empty range == row seed
            np.testing.assert_allclose(full.mix[i, j], full.cols[j], atol=1e-5)  # all layers == column seed
    # The row volumes are the seeds' own volumes (const noise: same as generate with const noise).
    if noise_mode == "const":
        np.testing.assert_allclose(none.rows, generation.generate(runner, rows, 0.8, "const"), atol=1e-5)
    coarse = generation.style_mix(runner, rows, cols, [0], psi=0.8, noise_mode=noise_mode)
    assert np.abs(coarse.mix[0, 0] - coarse.rows[0]).max() > 1e-3
    assert np.abs(coarse.mix[0, 0] - coarse.cols[0]).max() > 1e-3


def test_slerp_closed_form_and_interpolation_endpoints(runner):
    a, b = np.array([1.0, 0, 0]), np.array([0, 2.0, 0])
    # Orthogonal: direction (a^ + b^)/sqrt(2) at t = 0.5; length lerped: 1.5.
    np.testing.assert_allclose(generation.slerp(a, b, 0.5), 1.5 * np.array([1, 1, 0]) / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(generation.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(generation.slerp(a, 2 * a, 0.25), 1.25 * a, atol=1e-12)  # parallel -> lerp
    ts = generation.interpolation_ts(3, 4)
    assert len(ts) == 7 and ts[0] == (0, 0.0) and ts[3] == (1, 0.0) and ts[-1] == (1, 1.0)
    seeds = [8, 9]
    ends = generation.generate(runner, seeds, psi=1.0, noise_mode="const")
    for space in ("z", "w"):
        for kind in ("linear", "slerp"):
            vols, _ = generation.interpolate(runner, seeds, frames=4, space=space, kind=kind, noise_mode="const")
            assert vols.shape[0] == 4
            np.testing.assert_allclose(vols[0], ends[0], atol=1e-4)
            np.testing.assert_allclose(vols[-1], ends[1], atol=1e-4)
    with pytest.raises(UserError, match="two seeds"):
        generation.interpolate(runner, [1], frames=4)


def test_average_volume_is_voxelwise_mean(runner):
    seeds = list(range(7))  # not a multiple of the batch size
    vols = generation.generate(runner, seeds, psi=0.9, noise_mode="random")
    mean = generation.average_volume(runner, seeds, psi=0.9, noise_mode="random")
    np.testing.assert_allclose(mean, vols.astype(np.float64).mean(axis=0), atol=1e-5)


def test_write_volume_affine_and_values(tmp_path, runner):
    import nibabel as nib

    vol = generation.generate(runner, [0])[0]
    affine = np.array([[-8.0, 0, 0, 80], [0, 8, 0, -100], [0, 0, 8, -60], [0, 0, 0, 1]])
    path = str(tmp_path / "v.nii.gz")
    generation.write_volume(path, vol, affine, uint8=True)
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_allclose(img.header.get_zooms(), (8, 8, 8))
    np.testing.assert_allclose(img.get_fdata(), np.clip((vol[..., 0] + 1) / 2, 0, 1), atol=1e-6)
    u8 = nib.load(str(tmp_path / "v_uint8.nii.gz"))
    assert u8.get_data_dtype() == np.uint8
    np.testing.assert_allclose(u8.get_fdata(), np.clip((vol[..., 0] + 1) / 2, 0, 1), atol=0.5 / 255 + 1e-6)


def test_output_affine_identity_warns_without_geometry():
    with pytest.warns(UserWarning, match="identity affine"):
        np.testing.assert_array_equal(generation.output_affine({}, (2, 2, 2)), np.eye(4))
    aff = np.diag([2.0, 2, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(generation.output_affine({"affine": aff.tolist(), "shape": [2, 2, 2]},
                                                               (2, 2, 2)), aff)


def test_strip_and_gif(tmp_path, runner):
    from PIL import Image

    vols, _ = generation.interpolate(runner, [1, 2], frames=3, noise_mode="none")
    png, gif = str(tmp_path / "s.png"), str(tmp_path / "s.gif")
    generation.write_strip_and_gif(png, gif, vols, axis=2)
    scale = generation.png_scale((20, 24, 28))
    strip = np.asarray(Image.open(png))
    # Axial slices of 20x24 (i, j) are drawn 24 rows by 20 columns; three frames with 2-pixel gaps.
    assert strip.shape == (24 * scale, 3 * 20 * scale + 4)
    with Image.open(gif) as im:
        assert im.n_frames == 4  # forth and back: 0 1 2 1
    assert os.path.getsize(gif) > 0
