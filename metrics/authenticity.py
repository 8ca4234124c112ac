"""Authenticity (Alaa et al., "How faithful is your synthetic data?", ICML 2022) and the copy fraction.

Authenticity: a generated point g is unauthentic when its nearest training point x* lies closer to g than to any
other training point, d(g, x*) < min_{x != x*} d(x*, x): g sits inside x*'s own neighbourhood, where no second
draw from the population came. The authentic fraction is the share of generated points that are not.

Copy fraction: the share of generated points closer to the training set than the q-th percentile (5th by default)
of the held-out points' nearest-training distances, i.e. closer than all but q % of new subjects come.
"""

import numpy as np


def authentic_fraction(sample_d, sample_idx, train_within_d):
    """Share of samples with d(g, x*) >= the distance from x* to its nearest other training point."""
    sample_d = np.asarray(sample_d, np.float64)
    if len(sample_d) == 0:
        raise ValueError("authenticity needs at least one generated volume")
    radius = np.asarray(train_within_d, np.float64)[np.asarray(sample_idx)]
    return float(np.mean(sample_d >= radius))


def copy_threshold(heldout_d, percentile=5.0):
    """The percentile of the held-out nearest-training distances (linear interpolation, NumPy's default)."""
    heldout_d = np.asarray(heldout_d, np.float64)
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    # Below 100 / q values the q-th percentile is an interpolation towards the minimum, not a quantile seen.
    need = int(np.ceil(100.0 / percentile))
    if len(heldout_d) < need:
        raise ValueError(f"the {percentile:g}th percentile of held-out distances needs at least {need} held-out "
                         f"volumes, got {len(heldout_d)}")
    return float(np.percentile(heldout_d, percentile))


def copy_fraction(sample_d, heldout_d, percentile=5.0):
    """(share of samples closer than the threshold, threshold)."""
    t = copy_threshold(heldout_d, percentile)
    return float(np.mean(np.asarray(sample_d, np.float64) < t)), t
