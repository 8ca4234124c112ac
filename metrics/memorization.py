"""Memorisation audit: is a generated volume a copy of a training volume?

Compares N generated volumes with the whole training set (opts.reals: every volume, not only opts.num) and with a
held-out split of the same population (opts.heldout). For each generated and each held-out volume: its nearest
training volume and the distance, in one space per metric:

* ``memorization`` -- voxels as the reals come (the dataset's normalisation, [-1, 1]), correlation distance
  1 - r (ignores a global intensity offset and scale; metrics/nearest_neighbours.py);
* ``memorization_slices`` -- the slice FID features (standard FID Inception, middle slice along each axis,
  concatenated: 3 x 2048), Euclidean;
* ``memorization_3d`` -- a user's 3D feature network, Euclidean.

How close a new subject comes to the training set (held-out -> training) is the reference a sample is judged
against. Statistics: C_T of Meehan et al. 2020 (metrics/data_copying.py; cells by k-means on the training
vectors), the authentic fraction of Alaa et al. 2022 for the samples and, as a reference, for the held-out volumes,
and the fraction of samples closer than the 5th percentile of held-out distances (metrics/authenticity.py). A
control: the distance from the average training volume to its nearest training volume (`_nn_training_mean`), which
a blurred, mean-like sample approaches without copying anyone.

Generated volumes stream in batches: per sample only its distance, nearest index and cell are kept (and the k
closest pairs' mid-slices), so memory is the training and held-out vectors plus one batch, whatever N.
With opts.report_dir, a report folder <report_dir>/<metric>/ gets the table, the two distance distributions and
pictures of the closest pairs (metrics/memorization_report.py).
"""

import itertools
import os

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError
from metrics import authenticity, data_copying, metric_utils
from metrics.nearest_neighbours import NearestNeighbours, prepare

MIN_CELL_SAMPLES = 20  # generated volumes a cell needs for its Mann-Whitney z (Meehan et al.'s threshold tau)
COPY_PERCENTILE = 5.0
CLOSEST_PAIRS = 8
ALL = 1 << 62  # read every volume of a split


def default_cells(num_train, num_heldout):
    """k-means cells: about 10 held-out volumes per cell (each cell's z needs held-out volumes), at most 10."""
    return int(max(1, min(10, num_heldout // 10, num_train // 2)))


def _is_dir(src):
    return isinstance(src, str | os.PathLike)


def _label(src, what):
    return os.fspath(src) if _is_dir(src) else f"the {what} dataset"


def check_split_grids(train, heldout):
    """ValueError naming the held-out dataset when its manifest's shape or spacing differs from the training one."""
    if not (_is_dir(train) and _is_dir(heldout)):
        return
    from volumes.manifest import load_manifest

    a, b = load_manifest(os.fspath(train)), load_manifest(os.fspath(heldout))
    if list(a.shape) != list(b.shape) or not np.allclose(a.spacing, b.spacing, rtol=1e-4):
        raise InputError(f"{os.fspath(heldout)}: held-out volumes are {'x'.join(map(str, b.shape))} at "
                         f"{b.spacing} mm but the training data {os.fspath(train)} are "
                         f"{'x'.join(map(str, a.shape))} at {a.spacing} mm; the audit needs a held-out split on "
                         "the same grid")


def _embedder(opts, space):
    """(distance, batch -> vectors, feature network or None) of a space."""
    if space == "voxels":
        return "correlation", lambda b: np.asarray(b).reshape(len(b), -1), None
    if space == "slices":
        from metrics import fid_slices

        net = metric_utils.feature_network(opts, "inception")
        extract = fid_slices.slice_extractor(net)
        return "euclidean", lambda b: np.concatenate([extract(b)[f"axis{a}"] for a in fid_slices.AXES], 1), net
    if space == "3d":
        net = metric_utils.feature_network(opts, "3d")
        return "euclidean", lambda b: np.asarray(net(b)), net
    raise ValueError(f"unknown space {space!r}: voxels, slices or 3d")


def mid_slices(batch):
    """[b, D, H, W, C] -> list of b triples of display slices (sagittal, coronal, axial) of the first channel."""
    from volumes.visualize import slice_2d

    return [tuple(slice_2d(v[..., 0], a) for a in range(3)) for v in np.asarray(batch)]


def read_split(opts, src, what, grid, distance, embed):
    """(prepared vectors [n, d], mid-slices per volume, mean volume [1, D, H, W, C]) of every volume of a split;
    ValueError naming the split when it is empty or its volumes are not on `grid` (the generated volumes')."""
    vectors, slices, total = [], [], np.zeros(grid, np.float64)
    for batch in metric_utils.iterate_reals(EasyDict(opts, reals=src), num=ALL):
        if tuple(batch.shape[1:]) != tuple(grid):
            raise InputError(f"{_label(src, what)}: {what} volumes are {list(batch.shape[1:])} (D, H, W, C) but the "
                             f"network makes {list(grid)}; the audit needs {what} data on the network's grid")
        vectors.append(prepare(embed(batch), distance))
        slices += mid_slices(batch)
        total += batch.sum(axis=0)
    if not vectors:
        raise InputError(f"{_label(src, what)}: the {what} split holds no volumes")
    return np.concatenate(vectors), slices, (total / len(slices))[None].astype(np.float32)


class ClosestPairs:
    """The k generated volumes nearest to a training volume so far, with their mid-slices."""

    def __init__(self, k):
        self.k, self.items = k, []

    def add(self, first_index, d, idx, slices):
        for j in np.argsort(d)[: self.k]:
            self.items.append((float(d[j]), first_index + int(j), int(idx[j]), slices[j]))
        self.items = sorted(self.items, key=lambda t: t[0])[: self.k]


def audit(opts, space, name):
    """The audit in one space: results {name}_<statistic>; details in opts.info; the report when asked."""
    from volumes.work_pool import Progress

    heldout = opts.get("heldout")
    if heldout is None:
        raise InputError(f"{name} needs a held-out split of the same population as the training data")
    if opts.num < MIN_CELL_SAMPLES:
        raise InputError(f"{name} needs at least {MIN_CELL_SAMPLES} generated volumes (a cell's Mann-Whitney test), "
                         f"got num={opts.num}")
    check_split_grids(opts.reals, heldout)
    distance, embed, net = _embedder(opts, space)
    fakes = metric_utils.iterate_fakes(opts)
    first = next(fakes)  # the network's grid, before reading any split
    grid = first.shape[1:]
    train, train_slices, train_mean = read_split(opts, opts.reals, "training", grid, distance, embed)
    held, _, _ = read_split(opts, heldout, "held-out", grid, distance, embed)
    if len(train) < 2:
        raise InputError(f"{_label(opts.reals, 'training')}: authenticity needs at least 2 training volumes, got "
                         f"{len(train)}")
    authenticity.copy_threshold(np.zeros(len(held)), COPY_PERCENTILE)  # enough held-out volumes, before sampling
    cells = int(opts.get("cells") or default_cells(len(train), len(held)))
    if cells > len(train):
        raise InputError(f"{cells} cells need at least {cells} training volumes, got {len(train)}")

    nn = NearestNeighbours(train, distance)
    held_d, held_idx = nn.query(held)
    # The average training volume copies no one, yet lies close to many: the distance a sample reaches by
    # averaging alone, beside which a small sample distance is read.
    mean_d = float(nn.query(prepare(embed(train_mean), distance))[0][0])
    within_d, _ = nn.within()
    centroids = data_copying.kmeans(train, cells, seed=opts.seed)
    held_cells = data_copying.assign_cells(held, centroids)

    sample_d, sample_idx, sample_cells = [], [], []
    closest = ClosestPairs(CLOSEST_PAIRS)
    progress = Progress(opts.num, label=f"{name} ")
    done = 0
    for batch in itertools.chain([first], fakes):
        v = prepare(embed(batch), distance)
        d, idx = nn.query(v)
        sample_d.append(d)
        sample_idx.append(idx)
        sample_cells.append(data_copying.assign_cells(v, centroids))
        closest.add(done, d, idx, mid_slices(batch))
        done += len(batch)
        progress.update(len(batch))
    sample_d, sample_idx = np.concatenate(sample_d), np.concatenate(sample_idx)
    sample_cells = np.concatenate(sample_cells)

    ct, table = data_copying.ct_statistic(held_d, held_cells, sample_d, sample_cells, cells, MIN_CELL_SAMPLES)
    copy, threshold = authenticity.copy_fraction(sample_d, held_d, COPY_PERCENTILE)
    results = {
        f"{name}_ct": ct,
        f"{name}_copy_fraction": copy,
        f"{name}_authenticity": authenticity.authentic_fraction(sample_d, sample_idx, within_d),
        f"{name}_authenticity_heldout": authenticity.authentic_fraction(held_d, held_idx, within_d),
        f"{name}_nn_median_samples": float(np.median(sample_d)),
        f"{name}_nn_median_heldout": float(np.median(held_d)),
        f"{name}_nn_min_samples": float(np.min(sample_d)),
        f"{name}_nn_min_heldout": float(np.min(held_d)),
        f"{name}_nn_training_mean": mean_d,
    }
    opts.info.update({
        "space": {"voxels": "voxels ([-1, 1], the dataset's normalisation)", "slices": "slice FID features (middle "
                  "slice per axis, concatenated)", "3d": "3D feature network"}[space],
        "distance": "1 - Pearson r" if distance == "correlation" else "Euclidean",
        "num_train": len(train), "num_heldout": len(held), "num_samples": int(len(sample_d)), "cells": cells,
        "min_cell_samples": MIN_CELL_SAMPLES, "cell_table": table, "copy_percentile": COPY_PERCENTILE,
        "copy_threshold": threshold})
    if net is not None:
        opts.info.update({"features": net.description, "comparable": net.comparable,
                          "feature_network": net.network_id})
    if opts.get("report_dir"):
        from metrics import memorization_report

        folder = os.path.join(os.fspath(opts.report_dir), name)
        memorization_report.write_report(folder, name, results, opts.info, sample_d, sample_idx, held_d, held_idx,
                                         closest.items, train_slices)
        opts.info["report"] = folder
    return results


def memorization(opts):
    return audit(opts, "voxels", "memorization")


def memorization_slices(opts):
    return audit(opts, "slices", "memorization_slices")


def memorization_3d(opts):
    return audit(opts, "3d", "memorization_3d")


METRIC_NAMES = ("memorization", "memorization_slices", "memorization_3d")
