"""Partial sufficient statistics of a Gaussian mixture and their merge.

A ``Stats`` holds, per component, what one block of rows contributes to the
M-step: the sum of responsibilities ``nk``, the responsibility-weighted mean
``mean`` *of the block*, and the weighted second moment ``m2`` centred on that
block mean, plus the block's log-likelihood sum and its total row weight.
Every field may carry leading batch dimensions (one per initialisation).

Shapes of ``m2`` per covariance type (K components, D features):
``full`` (K, D, D), ``tied`` (D, D) pooled over components,
``diag`` (K, D), ``spherical`` (K,) summed over features.

Centred moments are merged with the pairwise update of Chan, Golub & LeVeque
(1979), which stays exact on data far from the origin, unlike raw moments
``sum(r x x^T) - N mu mu^T``.
"""

from typing import NamedTuple, Optional

import numpy as np


class Stats(NamedTuple):
    """Partial sufficient statistics of a block (see module docstring)."""

    nk: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    loglik: np.ndarray
    weight: np.ndarray


def m2_shape(n_components, n_features, covariance_type):
    """Shape of the second-moment field for one set of parameters."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def weighted_outer(coef, delta, covariance_type):
    """Sum of ``coef_k * delta_k delta_k^T`` in the layout of ``m2``.

    ``coef`` has shape (..., K) and ``delta`` (..., K, D).
    """
    if covariance_type == "full":
        return coef[..., None, None] * (delta[..., :, None] * delta[..., None, :])
    if covariance_type == "tied":
        return np.einsum("...k,...ki,...kj->...ij", coef, delta, delta)
    if covariance_type == "spherical":
        return coef * np.einsum("...ki,...ki->...k", delta, delta)
    return coef[..., None] * np.square(delta)


def merge(a, b, covariance_type):
    """Statistics of the union of two disjoint sets of rows.

    Chan, Golub & LeVeque: n = na + nb, delta = mb - ma,
    m = ma + delta * nb / n, M = Ma + Mb + (na * nb / n) * delta delta^T.
    Components with no weight on either side merge to the other side.
    """
    nk = a.nk + b.nk
    safe_nk = np.where(nk > 0, nk, 1.0)
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.nk / safe_nk)[..., None]
    coef = a.nk * b.nk / safe_nk
    m2 = a.m2 + b.m2 + weighted_outer(coef, delta, covariance_type)
    return Stats(nk, mean, m2, a.loglik + b.loglik, a.weight + b.weight)


def stack(stats_list):
    """Stack statistics of several parameter sets along a new leading axis."""
    return Stats(*(np.stack(field) for field in zip(*stats_list)))


class Layout(NamedTuple):
    """How a batch of ``Stats`` is laid out in one flat float64 vector.

    Dask moves the statistics between tasks as flat vectors, so that the
    per-block results form an ordinary (n_blocks, size) array.
    """

    n_batch: int
    n_components: int
    n_features: int
    covariance_type: str
    # (n_batch, K, D) points the packed means are relative to, or None.
    reference: Optional[np.ndarray] = None

    def shapes(self):
        """Shapes of the five fields, leading batch axis included."""
        i, k, d = self.n_batch, self.n_components, self.n_features
        return [(i, k), (i, k, d), (i, *m2_shape(k, d, self.covariance_type)), (i,), (i,)]

    @property
    def size(self):
        """Length of the flat vector."""
        return sum(int(np.prod(shape)) for shape in self.shapes())

    def pack(self, stats):
        """Flatten batched statistics into one vector."""
        return np.concatenate([np.ravel(field) for field in stats])

    def absolute(self, stats):
        """``stats`` with their means made absolute (see ``reference``)."""
        if self.reference is None:
            return stats
        return stats._replace(mean=stats.mean + self.reference)

    def unpack(self, vector):
        """Inverse of ``pack``."""
        fields, start = [], 0
        for shape in self.shapes():
            size = int(np.prod(shape))
            fields.append(vector[start : start + size].reshape(shape))
            start += size
        return Stats(*fields)

    def merge_rows(self, rows):
        """Merge the packed statistics in the rows of a 2-D array, in order."""
        total = self.unpack(rows[0])
        for row in rows[1:]:
            total = merge(total, self.unpack(row), self.covariance_type)
        return self.pack(total)
