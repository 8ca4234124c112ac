"""generation/style_mixing.py: ws resolutions and presets, style text -> ws indices, the row x column mix."""

import numpy as np
import pytest

from generation import sampling, style_mixing
from generation.runner import Runner
from tests.utils import tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator(seed=0, noise_strength=0.5)


def test_presets_split_resolutions_low_to_high(G):
    res = style_mixing.ws_resolutions(G)
    # demo-tiny: 5x6x7 -> 10x12x14 -> 20x24x28, num_ws = 6; index 0 base conv, 1-2 stage 1, 3-5 stage 2.
    assert res == [(5, 6, 7), (10, 12, 14), (10, 12, 14), (20, 24, 28), (20, 24, 28), (20, 24, 28)]
    presets = style_mixing.style_presets(G)
    assert presets["coarse"][0] == [0] and presets["middle"][0] == [1, 2] and presets["fine"][0] == [3, 4, 5]


@pytest.mark.parametrize("text, want", [
    ("coarse", [0]),
    ("0-1,5", [0, 1, 5]),
    ("all", list(range(6))),
    ("none", []),
    ("10x12x14", [1, 2]),
    ("5x6x7-10x12x14", [0, 1, 2]),
    ("coarse,5", [0, 5]),
])
def test_parse_styles(G, text, want):
    assert style_mixing.parse_styles(text, G) == want


@pytest.mark.parametrize("text, match", [
    ("40x48x56", "not a resolution"),
    ("4-9", "out of range"),
    ("loud", "not a preset"),
])
def test_bad_styles_list_the_presets_and_name_no_flag(G, text, match):
    with pytest.raises(ValueError, match=match) as e:
        style_mixing.parse_styles(text, G)
    assert "coarse: ws 0" in str(e.value) and "--" not in str(e.value)


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_style_mix_identities(G, noise_mode):
    runner = Runner(G, batch_size=3)
    rows, cols = [1, 2], [3, 4, 5]
    none = style_mixing.style_mix(runner, rows, cols, [], psi=0.8, noise_mode=noise_mode)
    full = style_mixing.style_mix(runner, rows, cols, list(range(G.num_ws)), psi=0.8, noise_mode=noise_mode)
    assert none.mix.shape == (2, 3, 20, 24, 28, 1)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(none.mix[i, j], none.rows[i], atol=1e-5)  # empty range == row seed
            np.testing.assert_allclose(full.mix[i, j], full.cols[j], atol=1e-5)  # all layers == column seed
    # The row volumes are the seeds' own volumes (const noise: same as generate with const noise).
    if noise_mode == "const":
        np.testing.assert_allclose(none.rows, sampling.generate(runner, rows, 0.8, "const"), atol=1e-5)
    coarse = style_mixing.style_mix(runner, rows, cols, [0], psi=0.8, noise_mode=noise_mode)
    assert np.abs(coarse.mix[0, 0] - coarse.rows[0]).max() > 1e-3
    assert np.abs(coarse.mix[0, 0] - coarse.cols[0]).max() > 1e-3


@pytest.mark.parametrize("config, want", [
    ("Gorig-Dres-3d-1mm-base567", list(range(7))),  # the original's default col_styles 0-6
    ("Gorig-Dres-3d-2mm-base567", list(range(5))),  # 5x6x7-20x24x28 (the original's 0-6 reaches 40x48x56)
    ("demo", list(range(5))),  # of 0-7: the rows keep the 40x48x56 layers
])
def test_default_styles(config, want):
    from training import configs

    G, _ = configs.build_networks(config)
    assert style_mixing.parse_styles(style_mixing.DEFAULT_STYLES, G) == want
