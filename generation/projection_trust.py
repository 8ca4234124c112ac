"""Whether a projection can be trusted: its final data term against what the network reaches on its own volumes.

The rule: a target is flagged out of distribution when the data term the projector minimised (`mse`, at its last
step; through the degradation and mask when there is one) is more than OOD_FACTOR times the largest final data
term of the reference projections: REFERENCE volumes the network generates itself (psi 1, random noise),
projected with the same options, the same W statistics and through the same degradation (without a mask). The
network reaches its own volumes by construction; a scan like its training data lands a few times above them, a
scan it cannot represent far above (the shipped demo network at 100 steps: held-out volumes about 4x the largest
of two generated ones; the same volumes upside down, inverted or shifted by 10 voxels 7-12x). The projection of a
flagged scan is the nearest volume the network can make, not a reconstruction of the scan. Intensity scale is
part of the term: a much dimmer scan (max 0.54) fits with a smaller error and is not flagged by this rule.
"""

import numpy as np

OOD_FACTOR = 6.0
REFERENCE_SEED0 = 1_000_000  # reference volumes' seeds: far from the small seeds users pick as targets


def reference_data_terms(G, num, c, popts, w_stats, degradation=None):
    """Final data terms [num] of projecting `num` of G's own volumes (seeds REFERENCE_SEED0...) with the options
    `popts` and W statistics `w_stats`, through `degradation` (a Degradation; its mask dropped) when given."""
    from generation.projection_targets import seed_targets
    from generation.projector import Projector

    seeds = list(range(REFERENCE_SEED0, REFERENCE_SEED0 + int(num)))
    vols = np.stack([t.volume for t in seed_targets(G, seeds, 1.0, "random", c)])
    if degradation is None:
        projector = Projector(G, vols, c, popts, w_stats)
    else:
        deg = degradation.with_mask(None)
        projector = Projector(G, deg(vols).numpy(), c, popts, w_stats, degradation=deg)
    return np.asarray(projector.run().curve[-1]["mse"], np.float64)


def out_of_distribution(term, reference, factor=OOD_FACTOR):
    """None when `term` is within factor x max(reference), else the warning's text (without the target name)."""
    top = float(np.max(reference))
    if not float(term) > factor * top:
        return None
    return (f"its final data term {float(term):.4g} is {float(term) / top:.1f}x the largest the network reaches on "
            f"{len(reference)} of its own volumes projected the same way ({top:.4g}; flagged above {factor:g}x): "
            "the network cannot represent this scan, and the projection is not a reconstruction of it")
