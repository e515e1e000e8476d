"""Per-block NumPy kernels: E-step and partial sufficient statistics.

Everything here works on one in-memory block of rows and knows nothing of
Dask. A block is processed in sub-blocks of rows small enough for the
(K, rows, D) temporaries to stay in cache. Rows are centred on each
component's current mean before anything is multiplied, so data far from the
origin loses no digits; the statistics a block returns are centred on the
block's own weighted means (see ``_stats``).

Responsibilities are held component-major, shape (K, rows).
"""

import numpy as np
from sklearn.metrics import pairwise_distances_argmin

from ._stats import Stats, weighted_outer

LOG_2PI = np.log(2 * np.pi)

# Rows of a sub-block times K * D: about 1 MiB of float64 per (K, rows, D) temporary.
_SUB_BLOCK_ELEMENTS = 2**17

# Rows per block of the random generator in ``random_resp``: the random
# responsibilities of a row depend on its index only, not on the chunking.
_RANDOM_ROWS = 4096


class _Full:
    """One precision Cholesky factor (D, D) per component."""

    @staticmethod
    def whiten(xd, prec_chol, out):
        return np.matmul(xd, prec_chol, out=out)

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(-1)

    @staticmethod
    def second_moment(rxd, xd):
        return np.matmul(rxd.transpose(0, 2, 1), xd)


class _Tied:
    """One precision Cholesky factor (D, D) shared by all components."""

    @staticmethod
    def whiten(xd, prec_chol, out):
        n_features = xd.shape[-1]
        np.matmul(xd.reshape(-1, n_features), prec_chol, out=out.reshape(-1, n_features))
        return out

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(np.diagonal(prec_chol)).sum()

    @staticmethod
    def second_moment(rxd, xd):
        n_features = xd.shape[-1]
        return rxd.reshape(-1, n_features).T @ xd.reshape(-1, n_features)


class _Diag:
    """A vector of precision square roots (D,) per component."""

    @staticmethod
    def whiten(xd, prec_chol, out):
        return np.multiply(xd, prec_chol[:, None, :], out=out)

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(prec_chol).sum(-1)

    @staticmethod
    def second_moment(rxd, xd):
        return np.einsum("kni,kni->ki", rxd, xd)


class _Spherical(_Diag):
    """One precision square root per component; moments kept per feature."""

    @staticmethod
    def whiten(xd, prec_chol, out):
        return np.multiply(xd, prec_chol[:, None, None], out=out)

    @staticmethod
    def log_det(prec_chol, n_features):
        return n_features * np.log(prec_chol)


COVARIANCE_KINDS = {"full": _Full, "tied": _Tied, "diag": _Diag, "spherical": _Spherical}


def _sub_block_rows(n_components, n_features):
    return max(16, _SUB_BLOCK_ELEMENTS // (n_components * n_features))


def _sub_blocks(n_samples, n_components, n_features):
    step = _sub_block_rows(n_components, n_features)
    for start in range(0, n_samples, step):
        yield slice(start, min(start + step, n_samples))


class _Workspace:
    """Two (K, rows, D) buffers reused by every sub-block of a block.

    Workers started by ``distributed`` set ``MALLOC_TRIM_THRESHOLD_``, under
    which every large temporary is a fresh ``mmap`` whose pages fault in
    again (see FIELD-NOTES); reusing the buffers avoids that cost.
    """

    def __init__(self, n_components, n_features):
        size = n_components * _sub_block_rows(n_components, n_features) * n_features
        self.buffers = (np.empty(size), np.empty(size))

    def deviations(self, x, centres):
        """``x - centres[k]`` for every component, shape (K, rows, D), in a buffer."""
        n_components, n_features = centres.shape
        size = n_components * x.shape[0] * n_features
        shape = (n_components, x.shape[0], n_features)
        return np.subtract(x[None, :, :], centres[:, None, :],
                           out=self.buffers[0][:size].reshape(shape))

    def scratch(self, like):
        """The second buffer, shaped like ``like``."""
        return self.buffers[1][: like.size].reshape(like.shape)


def check_finite(X):
    """Raise scikit-learn's ValueError if X holds NaN or infinity."""
    if np.isnan(X).any():
        raise ValueError("Input X contains NaN.")
    if not np.isfinite(X).all():
        raise ValueError(
            f"Input X contains infinity or a value too large for {X.dtype!r}."
        )


def check_sample_weight(sample_weight):
    """Raise ValueError if weights are not finite and non-negative."""
    if not np.isfinite(sample_weight).all():
        raise ValueError("sample_weight contains NaN or infinity.")
    if (sample_weight < 0).any():
        raise ValueError("sample_weight contains negative values.")


def _log_const(kind, weights, prec_chol, n_features):
    """log(pi_k) + log|det prec_chol_k| - D/2 log(2 pi): the row-independent part."""
    return np.log(weights) + kind.log_det(prec_chol, n_features) - 0.5 * n_features * LOG_2PI


def _weighted_log_prob(kind, xd, prec_chol, const, scratch):
    """(K, rows) log(pi_k) + log N(x | mu_k, Sigma_k) from deviations ``xd``."""
    y = kind.whiten(xd, prec_chol, out=scratch)
    return const[:, None] - 0.5 * np.einsum("kni,kni->kn", y, y)


class _Moments:
    """Running responsibility sums and moments about fixed centres (K, D)."""

    def __init__(self, kind, centres, n_features):
        n_components = centres.shape[0]
        self.kind = kind
        self.centres = centres
        self.nk = np.zeros(n_components)
        self.sums = np.zeros((n_components, n_features))
        self.m2 = 0.0
        self.loglik = 0.0
        self.weight = 0.0

    def add(self, xd, resp, scratch):
        """Add rows given as deviations ``xd`` (K, rows, D) and ``resp`` (K, rows)."""
        rxd = np.multiply(xd, resp[:, :, None], out=scratch)
        self.nk += resp.sum(axis=1)
        self.sums += rxd.sum(axis=1)
        self.m2 = self.m2 + self.kind.second_moment(rxd, xd)

    def stats(self, covariance_type):
        """The block's statistics, re-centred on its weighted means."""
        has_weight = self.nk > 0
        offset = np.where(
            has_weight[:, None], self.sums / np.where(has_weight, self.nk, 1)[:, None], 0
        )
        m2 = self.m2 - weighted_outer(self.nk, offset, covariance_type)
        return Stats(
            self.nk,
            self.centres + offset,
            np.asarray(m2, dtype=np.float64),
            np.float64(self.loglik),
            np.float64(self.weight),
        )


def _rows(X, sample_weight, rows):
    x = np.asarray(X[rows], dtype=np.float64)
    if sample_weight is None:
        return x, None
    sw = np.asarray(sample_weight[rows], dtype=np.float64)
    check_sample_weight(sw)
    return x, sw


def em_statistics(X, sample_weight, weights, means, prec_chol, covariance_type):
    """E-step and partial statistics of a block of rows, in one go.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    sample_weight : ndarray of shape (n_rows,) or None
    weights, means, prec_chol : current mixture parameters
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    Stats
        Responsibility sums, block-centred moments, and the block's sum of
        ``log p(x)`` (weighted by ``sample_weight``).
    """
    kind = COVARIANCE_KINDS[covariance_type]
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    moments = _Moments(kind, means, n_features)
    const = _log_const(kind, weights, prec_chol, n_features)
    workspace = _Workspace(n_components, n_features)
    for rows in _sub_blocks(n_samples, n_components, n_features):
        x, sw = _rows(X, sample_weight, rows)
        xd = workspace.deviations(x, means)
        weighted_log_prob = _weighted_log_prob(kind, xd, prec_chol, const, workspace.scratch(xd))
        top = weighted_log_prob.max(axis=0)
        resp = np.exp(weighted_log_prob - top)
        total = resp.sum(axis=0)
        resp /= total
        log_prob_norm = top + np.log(total)
        if sw is None:
            moments.loglik += log_prob_norm.sum()
            moments.weight += x.shape[0]
        else:
            resp *= sw
            moments.loglik += log_prob_norm @ sw
            moments.weight += sw.sum()
        moments.add(xd, resp, workspace.scratch(xd))
    if not np.isfinite(moments.loglik):
        check_finite(X)
    return moments.stats(covariance_type)


def resp_statistics(X, sample_weight, resp, centres, covariance_type):
    """Partial statistics of a block of rows for given responsibilities.

    ``resp`` has shape (n_rows, K); ``centres`` (K, D) are any points near
    the components (they only serve to keep the arithmetic exact).
    """
    kind = COVARIANCE_KINDS[covariance_type]
    n_samples, n_features = X.shape
    moments = _Moments(kind, centres, n_features)
    workspace = _Workspace(*centres.shape)
    for rows in _sub_blocks(n_samples, *centres.shape):
        x, sw = _rows(X, sample_weight, rows)
        r = resp[rows].T
        if sw is not None:
            r = r * sw
        moments.weight += x.shape[0] if sw is None else sw.sum()
        xd = workspace.deviations(x, centres)
        moments.add(xd, r, workspace.scratch(xd))
    stats = moments.stats(covariance_type)
    if not np.isfinite(stats.m2).all():
        check_finite(X)
    return stats


def one_hot(labels, n_components):
    """Responsibilities (n_rows, K) that put each row in its labelled component."""
    resp = np.zeros((labels.shape[0], n_components))
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def nearest_resp(X, centres):
    """Hard responsibilities of the nearest centre (Euclidean), as k-means."""
    check_finite(X)
    return one_hot(pairwise_distances_argmin(X, centres), centres.shape[0])


def random_resp(start, stop, n_components, seed):
    """Uniform random responsibilities, rows normalised, for rows start:stop.

    Each row's values depend only on ``seed`` and its global index.
    """
    first = start // _RANDOM_ROWS
    last = (stop - 1) // _RANDOM_ROWS
    parts = [
        np.random.default_rng([seed, block]).random((_RANDOM_ROWS, n_components))
        for block in range(first, last + 1)
    ]
    resp = np.concatenate(parts)[start - first * _RANDOM_ROWS : stop - first * _RANDOM_ROWS]
    return resp / resp.sum(axis=1, keepdims=True)


def estimate_weighted_log_prob(X, weights, means, prec_chol, covariance_type):
    """log(pi_k) + log N(x | mu_k, Sigma_k) for every row and component, (n, K)."""
    kind = COVARIANCE_KINDS[covariance_type]
    n_samples, n_features = X.shape
    const = _log_const(kind, weights, prec_chol, n_features)
    out = np.empty((n_samples, means.shape[0]))
    workspace = _Workspace(*means.shape)
    for rows in _sub_blocks(n_samples, *means.shape):
        xd = workspace.deviations(np.asarray(X[rows], dtype=np.float64), means)
        out[rows] = _weighted_log_prob(kind, xd, prec_chol, const, workspace.scratch(xd)).T
    return out
