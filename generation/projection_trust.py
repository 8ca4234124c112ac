"""Whether a projection can be trusted: its final data term against what the network reaches on reference volumes.

The rule: a target is flagged out of distribution when the data term the projector minimised (`mse`, at its last
step; through the degradation and mask when there is one) is more than FACTORS[kind] times the largest final data
term of the reference projections, made with the same options, the same W statistics and through the same
degradation (without a mask). The references are volumes of the dataset in use (`--data`, kind "dataset": volumes
like the network's training data, not among the targets) when there is one, else volumes the network generates
itself (kind "generated": psi 1, random noise).

Measured on the shipped demo network at 100 steps: held-out volumes land at 0.8-1.2x
other held-out volumes and about 4x the largest of two generated ones on the network grid, but 8.6x generated ones
with 16 mm slices (degraded generated volumes are smooth and easy to fit: prefer dataset references there); the
same held-out volumes upside down, inverted or shifted by 10 voxels land at 1.9-3.0x held-out and 7-12x generated
ones. The projection of a flagged scan is the nearest volume the network can make, not a reconstruction. Intensity
scale is part of the term: a much dimmer scan (max 0.54) fits with a smaller error and is not flagged by this rule.
"""

import numpy as np

FACTORS = {"dataset": 1.75, "generated": 6.0}
REFERENCE_SEED0 = 1_000_000  # generated references' seeds: far from the small seeds users pick as targets


def reference_volumes(G, num, c, data=None, exclude=()):
    """(kind, volumes [num,D,H,W,C] in [-1,1]): the first `num` volumes of dataset `data` whose indices are not in
    `exclude` when it holds that many, else `num` volumes G generates (seeds REFERENCE_SEED0...)."""
    from generation.projection_targets import dataset_targets, seed_targets

    if data:
        from volumes.manifest import load_manifest

        free = [i for i in range(int(load_manifest(data).num_volumes)) if i not in set(exclude)][: int(num)]
        if len(free) == int(num):
            return "dataset", np.stack([t.volume for t in dataset_targets(data, free)])
    seeds = list(range(REFERENCE_SEED0, REFERENCE_SEED0 + int(num)))
    return "generated", np.stack([t.volume for t in seed_targets(G, seeds, 1.0, "random", c)])


def reference_data_terms(G, vols, c, popts, w_stats, degradation=None):
    """Final data terms [len(vols)] of projecting reference volumes `vols` with the options `popts` and W
    statistics `w_stats`, through `degradation` (a Degradation; its mask dropped) when given."""
    from generation.projector import Projector

    if degradation is None:
        projector = Projector(G, vols, c, popts, w_stats)
    else:
        deg = degradation.with_mask(None)
        projector = Projector(G, deg(vols).numpy(), c, popts, w_stats, degradation=deg)
    return np.asarray(projector.run().curve[-1]["mse"], np.float64)


def out_of_distribution(term, reference, kind="generated"):
    """None when `term` is within FACTORS[kind] x max(reference), else the warning's text (without the target)."""
    factor = FACTORS[kind]
    top = float(np.max(reference))
    if not float(term) > factor * top:
        return None
    what = "of the dataset's volumes" if kind == "dataset" else "of its own volumes"
    return (f"its final data term {float(term):.4g} is {float(term) / top:.1f}x the largest the network reaches on "
            f"{len(reference)} {what} projected the same way ({top:.4g}; flagged above {factor:g}x): the network "
            "cannot represent this scan, and the projection is not a reconstruction of it")
