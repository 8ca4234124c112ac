"""bench/flops.py: analytic FLOP counts checked against a hand count and against the real networks' weights."""

import numpy as np
import pytest

from bench import flops

# A tiny config counted by hand below: base 2x2x2, one 2x upsampling stage -> 4x4x4,
# features nf0 = 8, nf1 = 4, w_dim = z_dim = 4, two mapping layers.
TINY = {
    "G_kwargs": {
        "z_dim": 4, "w_dim": 4,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {"base_shape": [2, 2, 2], "up_factors": [[2, 2, 2]], "architecture": "orig",
                             "fmap_base": 8, "fmap_min": 4, "fmap_max": 8},
    },
    "D_kwargs": {"img_shape": [4, 4, 4], "base_shape": [2, 2, 2], "up_factors": [[2, 2, 2]], "architecture": "resnet",
                 "mbstd_num_features": 1, "fmap_base": 8, "fmap_min": 4, "fmap_max": 8},
    "loss_kwargs": {"r1_gamma": 1.0, "r2_gamma": 0.0, "pl_weight": 2.0, "pl_batch_shrink": 2,
                    "G_reg_interval": 4, "D_reg_interval": 16},
    "batch_size": 2,
}

# Hand count, FLOPs per sample (2 per multiply-add).
G_MAPPING = 2 * (4 * 4 + 4 * 4)                 # fc0 4->4, fc1 4->4
G_SYNTH = (2 * 4 * 8 + 2 * 8 * 27 * 8 * 8       # base: affine 4->8, 3x3x3 conv at 8 voxels, 8->8
           + 2 * 4 * 8 + 2 * 8 * 27 * 8 * 4     # conv0: affine 4->8, transposed conv at the 8 low-res voxels 8->4
           + 2 * 4 * 4 + 2 * 64 * 27 * 4 * 4    # conv1: affine 4->4, 3x3x3 at 64 voxels 4->4
           + 2 * 4 * 4 + 2 * 64 * 4 * 1)        # torgb: affine 4->4, 1x1x1 4->1
D_TOTAL = (2 * 64 * 1 * 4                       # fromrgb 1->4 at 64 voxels
           + 2 * 8 * 4 * 8                      # resnet skip 1x1x1 4->8 at the 8 low-res voxels
           + 2 * 64 * 27 * 4 * 4                # conv0 4->4
           + 2 * 8 * 27 * 4 * 8                 # conv1_down 4->8 at the low-res output
           + 2 * 8 * 27 * 9 * 8                 # epilogue conv (8 + 1 mbstd)->8
           + 2 * 64 * 8 + 2 * 8 * 1)            # fc 64->8, out 8->1


def test_forward_counts_match_hand_count():
    assert G_MAPPING + G_SYNTH == 97536 and D_TOTAL == 102288  # the hand arithmetic itself
    g = flops.generator_layers(TINY["G_kwargs"])
    d = flops.discriminator_layers(TINY["D_kwargs"])
    assert flops.forward_flops(g) == G_MAPPING + G_SYNTH
    assert flops.forward_flops(d) == D_TOTAL
    assert flops.forward_flops(d, convs_only=True) == D_TOTAL - (2 * 64 * 8 + 2 * 8 * 1)
    assert [la.kind for la in d] == ["conv1", "conv1", "conv3", "down3", "conv3", "dense", "dense"]


def test_phase_and_step_counts_match_hand_count():
    B = 2
    g_syn, g_map = G_SYNTH, G_MAPPING
    want = {
        "Gmain": 3 * (g_syn * B + g_map * 2 * B) + 2 * D_TOTAL * B,
        "Dmain": (g_syn * B + g_map * 2 * B) + 3 * D_TOTAL * 2 * B,
        "Greg": 6 * (g_syn * (B // 2) + g_map * 2 * (B // 2)),
        "Dreg": 6 * D_TOTAL * B,
    }
    got = flops.phase_flops(TINY)
    assert got == want
    step = want["Gmain"] + want["Dmain"] + want["Greg"] / 4 + want["Dreg"] / 16
    assert flops.step_flops(TINY) == pytest.approx(step, rel=1e-12)


def test_phases_follow_loss_options():
    cfg = {**TINY, "loss_kwargs": {**TINY["loss_kwargs"], "r1_gamma": 0.0, "pl_weight": 0.0}}
    assert set(flops.phase_flops(cfg)) == {"Gmain", "Dmain"}
    cfg = {**TINY, "loss_kwargs": {**TINY["loss_kwargs"], "r1_gamma": 0.0, "r2_gamma": 5.0}}
    # R2: G forward on the fakes plus the double-backward R1-like cost of D.
    assert flops.phase_flops(cfg)["Dreg"] == (G_SYNTH * 2 + G_MAPPING * 4) + 6 * D_TOTAL * 2


def test_conv_work_sums_to_conv_step_flops():
    work = flops.conv_work(TINY)
    assert sum(work.values()) == pytest.approx(flops.step_flops(TINY, convs_only=True), rel=1e-12)
    # The 3x3x3 conv of G's top stage: 3 (Gmain) + 1 (Dmain) passes at B=2, 6 passes of Greg at 1 sample / 4.
    key = ("conv3", (4, 4, 4), 4, 4, 3)
    per = 2 * 64 * 27 * 4 * 4
    d_conv0 = (3 * 4 + 6 * 2 / 16 + 2 * 2) * per  # D's conv0 has the same shape: Dmain 2B, Dreg, Gmain dx pass
    assert work[key] == pytest.approx((3 * 2 + 1 * 2 + 6 * 1 / 4) * per + d_conv0, rel=1e-12)


@pytest.mark.parametrize("g_arch,d_arch", [("orig", "resnet"), ("skip", "skip"), ("resnet", "orig")])
def test_layers_mirror_the_real_networks(g_arch, d_arch):
    """Every weight tensor of the built networks appears as one counted layer of the same size."""
    tf = pytest.importorskip("tensorflow")
    from training import configs

    cfg = configs.get_config("demo-tiny")
    cfg.G_kwargs.synthesis_kwargs.architecture = g_arch
    cfg.D_kwargs.architecture = d_arch
    tf.random.set_seed(0)
    G, D = configs.build_networks(cfg)
    for module, layers in ((G, flops.generator_layers(cfg.G_kwargs)), (D, flops.discriminator_layers(cfg.D_kwargs))):
        real = sorted(int(np.prod(v.shape)) for v in module.trainable_variables
                      if v.name.split("/")[-1].startswith("weight") and v.shape.rank >= 2)
        counted = sorted(la.cin * la.cout * la.k**3 for la in layers)
        assert real == counted
