"""Nearest neighbours of query vectors in a reference set, one block of queries at a time.

Two distances:

* ``correlation`` -- 1 - Pearson r between two vectors (SciPy's 'correlation' distance): each vector is centred
  and scaled to unit norm once (``prepare``), so the distance ignores a global intensity offset and scale and a
  block costs one matrix product. A constant vector has no correlation with anything; it is kept as a zero vector,
  r = 0, distance 1. On prepared vectors the squared Euclidean distance is 2 x the correlation distance, so
  k-means on them makes cells of the same geometry.
* ``euclidean`` -- for feature vectors.

The reference set is held in memory (hundreds of volumes); queries come in blocks, so memory does not grow with
their number. Products in float32 (voxel vectors are long), distances returned in float64.
"""

import numpy as np

DISTANCES = ("correlation", "euclidean")


def prepare(x, distance):
    """Rows of x (any shape [n, ...]) as float32 vectors ready for `distance`."""
    v = np.asarray(x, np.float32).reshape(len(x), -1)
    if distance == "euclidean":
        return v
    if distance != "correlation":
        raise ValueError(f"unknown distance {distance!r}: one of {', '.join(DISTANCES)}")
    v = v - v.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
    norm = np.linalg.norm(v.astype(np.float64), axis=1, keepdims=True)
    return (v / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def distances(a, b, distance):
    """[len(a), len(b)] distances between prepared rows (float64)."""
    g = np.asarray(a @ b.T, np.float64)
    if distance == "correlation":
        return np.clip(1.0 - g, 0.0, 2.0)
    sa = np.sum(np.asarray(a, np.float64) ** 2, axis=1)
    sb = np.sum(np.asarray(b, np.float64) ** 2, axis=1)
    return np.sqrt(np.clip(sa[:, None] + sb[None, :] - 2.0 * g, 0.0, None))


class NearestNeighbours:
    """Nearest reference row of each query row. reference: prepared vectors [n, d] (see `prepare`)."""

    def __init__(self, reference, distance, block=256):
        if len(reference) < 1:
            raise ValueError("no reference vectors")
        self.reference = np.asarray(reference, np.float32)
        self.distance = distance
        self.block = int(block)

    def query(self, queries):
        """(distance [m], index [m]) of the nearest reference row of each prepared query row."""
        q = np.asarray(queries, np.float32)
        dist, idx = np.empty(len(q)), np.empty(len(q), np.int64)
        for i in range(0, len(q), self.block):
            d = distances(q[i : i + self.block], self.reference, self.distance)
            idx[i : i + len(d)] = np.argmin(d, axis=1)
            dist[i : i + len(d)] = d[np.arange(len(d)), idx[i : i + len(d)]]
        return dist, idx

    def within(self):
        """(distance, index) of each reference row's nearest other reference row (itself excluded)."""
        n = len(self.reference)
        if n < 2:
            raise ValueError("the nearest other reference vector needs at least 2 reference vectors")
        dist, idx = np.empty(n), np.empty(n, np.int64)
        for i in range(0, n, self.block):
            d = distances(self.reference[i : i + self.block], self.reference, self.distance)
            d[np.arange(len(d)), np.arange(i, i + len(d))] = np.inf
            idx[i : i + len(d)] = np.argmin(d, axis=1)
            dist[i : i + len(d)] = d[np.arange(len(d)), idx[i : i + len(d)]]
        return dist, idx
