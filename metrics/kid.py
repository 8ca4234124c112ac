"""Kernel Inception Distance as in StyleGAN2-ADA (Binkowski et al.), in any feature space.

Unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over `num_subsets` random subsets
of m = min(max_subset_size, N_real, N_fake) features from each side. Unbiased means the diagonal k(x_i, x_i) is
left out of the within-set sums, so with no difference between the distributions the expectation is 0 and small
samples can give slightly negative values: better suited than FID to the small datasets of medical imaging.
"""

import numpy as np


def polynomial_kernel(x, y):
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased_poly(x, y):
    """Unbiased MMD^2 between two equal-size sets with the KID kernel."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return within - 2.0 * kxy.sum() / (m * m)


def kernel_inception_distance(real_features, fake_features, num_subsets=100, max_subset_size=1000, seed=0):
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need features [N, d] with equal d, got {real.shape} and {fake.shape}")
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 real and 2 fake samples")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        total += mmd2_unbiased_poly(x, y)
    return float(total / num_subsets)


# ----------------------------------------------------------------------------------------------------------------
# Metrics (registered in metric_main).


def kid(opts):
    """KID on the InceptionV3 slice features of fid_slices, per axis and averaged."""
    from metrics import fid_slices

    return fid_slices.per_axis(opts, lambda r, f: {"kid": kernel_inception_distance(r, f, seed=opts.seed)})


def kid_3d(opts):
    """KID on the features of the user's 3D network."""
    from metrics import fid_3d

    return fid_3d.on_features_3d(opts, lambda r, f: {"kid_3d": kernel_inception_distance(r, f, seed=opts.seed)})
