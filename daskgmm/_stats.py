"""Partial sufficient statistics of a Gaussian mixture and their merge.

A ``Stats`` holds, per component, what one block of rows contributes to the
M-step of one model: the sum of responsibilities ``nk``, the
responsibility-weighted mean ``mean`` *of the block*, and the weighted second
moment ``m2`` centred on that block mean (shaped by the covariance type, see
``_covariance``), plus the block's log-likelihood sum, its total row weight
and, for variational models only (else 0), the weighted sum of
``r log r`` over its responsibilities, which their lower bound needs.

Centred moments are merged with the pairwise update of Chan, Golub & LeVeque
(1979), which stays exact on data far from the origin, unlike raw moments
``sum(r x x^T) - N mu mu^T``.

A pass serves several models at once, each with its own number of
components and covariance type: ``Layout`` packs one model's statistics into
a flat vector, ``Layouts`` concatenates the vectors of all the models of a
pass, and merges them model by model.
"""

from typing import NamedTuple, Optional

import numpy as np

from ._covariance import m2_shape, statistics_size, weighted_outer


class Stats(NamedTuple):
    """Partial sufficient statistics of a block for one model (see module docstring)."""

    nk: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    loglik: np.ndarray
    weight: np.ndarray
    entropy: np.ndarray = 0.0


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
    return Stats(nk, mean, m2, a.loglik + b.loglik, a.weight + b.weight,
                 a.entropy + b.entropy)


def merge_all(stats_list, covariance_type):
    """Statistics of the union of several disjoint sets of rows, merged in list order."""
    total = stats_list[0]
    for stats in stats_list[1:]:
        total = merge(total, stats, covariance_type)
    return total


def scaled(stats, factor):
    """Statistics of the same rows with every row weight multiplied by ``factor``.

    Means are unchanged; sums (``nk``, ``m2``, ``loglik``, ``weight``) scale.
    """
    return Stats(stats.nk * factor, stats.mean, stats.m2 * factor, stats.loglik * factor,
                 stats.weight * factor)


class Layout(NamedTuple):
    """How one model's ``Stats`` lie in a flat float64 vector."""

    n_components: int
    n_features: int
    covariance_type: str
    # (K, D) points the packed means are relative to, or None: absolute means.
    reference: Optional[np.ndarray] = None

    def shapes(self):
        """Shapes of the six fields."""
        k, d = self.n_components, self.n_features
        return [(k,), (k, d), m2_shape(k, d, self.covariance_type), (), (), ()]

    @property
    def size(self):
        """Length of the flat vector."""
        return statistics_size(self.n_components, self.n_features, self.covariance_type)

    def pack(self, stats):
        """Flatten statistics into one vector."""
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


class Layouts(NamedTuple):
    """The statistics of every model of a pass, concatenated in one flat vector.

    Dask moves the statistics between tasks as flat vectors, so that the
    per-block results form an ordinary (n_blocks, size) array.
    """

    layouts: tuple

    @property
    def size(self):
        """Length of the flat vector."""
        return sum(layout.size for layout in self.layouts)

    def pack(self, stats_list):
        """One vector from the statistics of every model, in order."""
        return np.concatenate(
            [layout.pack(stats) for layout, stats in zip(self.layouts, stats_list)]
        )

    def unpack(self, vector):
        """The ``Stats`` of every model from one vector."""
        stats_list, start = [], 0
        for layout in self.layouts:
            stats_list.append(layout.unpack(vector[start : start + layout.size]))
            start += layout.size
        return stats_list

    def absolute(self, stats_list):
        """Every model's ``stats`` with their means made absolute (see ``Layout.reference``)."""
        return [layout.absolute(stats) for layout, stats in zip(self.layouts, stats_list)]

    def merge_rows(self, rows):
        """Merge the packed statistics in the rows of a 2-D array, in order."""
        totals = self.unpack(rows[0])
        for row in rows[1:]:
            totals = [merge(total, stats, layout.covariance_type)
                      for total, stats, layout in zip(totals, self.unpack(row), self.layouts)]
        return self.pack(totals)
