"""Networks shipped with the repository, by short name (`--network=demo`), as StyleGAN2's pretrained_networks.

Each lives in pretrained/<name>/: the EMA generator as a SavedModel (generator/), the training data's
dataset.json (geometry for every output, the preprocessing for projected scans), the run's training_options.json
and log, and README.md with the commands that made it.
"""

import os

from dnnlib.errors import InputError

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained")


def names():
    """The shipped networks' names."""
    if not os.path.isdir(ROOT):
        return []
    return sorted(n for n in os.listdir(ROOT) if os.path.isdir(os.path.join(ROOT, n, "generator")))


def resolve(network):
    """A path for `network`: the shipped network of that name, else the path as given. A name that is also a path
    where the user is (a folder ./demo) is refused rather than one of the two silently chosen."""
    network = os.fspath(network)
    if network not in names():
        return network
    shipped = os.path.join(ROOT, network)
    if os.path.exists(network) or os.path.exists(network + ".index"):
        raise InputError(f"{network!r} is both a shipped network ({shipped}) and a path here "
                         f"({os.path.abspath(network)}); write ./{network} for the path or {shipped} for the "
                         "shipped network")
    return shipped
