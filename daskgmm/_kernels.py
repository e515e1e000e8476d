"""Per-block kernels: E-step and partial sufficient statistics.

Everything here works on one in-memory block of rows and knows nothing of
Dask. The sweeps over the rows are the compiled kernels of `_fused`
(imported on first use: numba's import would slow ``daskgmm --help``); this
module gives them the parameters (each type's ``Kernel.parameters`` prepares
what its sweeps need) and turns what they sum into ``Stats``.

Rows are centred on one point ``c`` near the data (the weighted mean of the
component means), so that data far from the origin loses no digits; the
kernels then sum the moments of each component about its own mean
(``tied``: in local coordinates, see `_fused`), and `_sums_to_stats`
re-centres them on the block's weighted means (see ``_stats``).
"""

import numpy as np
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import assert_all_finite

from ._covariance import REGISTRY, log_det, m2_shape, weighted_outer
from ._stats import Stats

LOG_2PI = np.log(2 * np.pi)

# Rows per block of the random generator in ``random_resp``: the random
# responsibilities of a row depend on its index only, not on the chunking.
_RANDOM_ROWS = 4096


def _compiled(covariance_type):
    """The compiled kernels of ``covariance_type`` (`_fused.KERNELS`)."""
    from . import _fused

    return _fused.KERNELS[covariance_type]


def check_finite(X):
    """Raise scikit-learn's ValueError if X holds NaN or infinity."""
    assert_all_finite(X, input_name="X")


def kernel_rows(X):
    """X as the kernels take it: C-contiguous float32 or float64 (anything else: float64)."""
    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(X, dtype=dtype)


def _row_weights(sample_weight):
    """sample_weight as float64, or an empty array for none."""
    if sample_weight is None:
        return np.empty(0)
    return np.ascontiguousarray(sample_weight, dtype=np.float64)


def _centre(weights, means):
    """A point near the data: the weighted mean of the component means."""
    return weights @ means / weights.sum()


def reference_means(weights, means):
    """The points that `em_statistics`' means are relative to: ``means`` as
    the kernels round them, ``c + (means - c)`` for the centre c."""
    centre = _centre(weights, means)
    return centre + (means - centre)


def _log_weights(weights, log_weights):
    """The E-step's log constants: ``log_weights``, or log(pi_k) when None."""
    return np.log(weights) if log_weights is None else log_weights


def _constants(log_weights, prec_chol, covariance_type, n_features):
    """c_k = ``log_weights`` (log(pi_k) for EM) + log|L_k| - D log(2 pi) / 2."""
    return np.ascontiguousarray(
        log_weights + log_det(prec_chol, n_features, covariance_type)
        - 0.5 * n_features * LOG_2PI, dtype=np.float64)


def _sweep(X, sample_weight, resp, centre, means, covariance_type, parameters, constants,
           with_entropy=False, rows=None):
    """Run the type's compiled ``statistics`` over the rows: the sums about each mean.

    Returns the responsibility sums nk, sum_n r_nk (x_n - mu_k), the second
    moments about the means (``m2_shape``) and the totals (log-likelihood,
    weight, ``sum r log r``). ``rows``: the rows of X swept (default all), read
    in place; ``sample_weight`` and ``resp`` are theirs.
    """
    n_components, n_features = means.shape
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros(m2_shape(n_components, n_features, covariance_type))
    between = np.zeros((n_components, n_components))
    totals = np.zeros(3)
    if resp is None:
        resp = np.empty((0, n_components))
    _compiled(covariance_type).statistics(
        X, np.empty(0, dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp),
        _row_weights(sample_weight), np.ascontiguousarray(resp, dtype=np.float64),
        np.ascontiguousarray(centre, dtype=np.float64), np.ascontiguousarray(means),
        parameters, constants, with_entropy, nk, first, m2, between, totals)
    first, m2 = _compiled(covariance_type).finish(first, m2, between, means)
    return nk, first, m2, totals


def _sums_to_stats(nk, first, m2, totals, covariance_type, means):
    """``Stats`` centred on the block's weighted means, given relative to ``means``.

    The block mean of component k is mu_k + o_k with o_k = first_k / nk_k,
    and its moments about it m2_k - nk_k o_k o_k^T (o_k is small: no digits lost).
    """
    has_weight = nk > 0
    safe_nk = np.where(has_weight, nk, 1)[:, None]
    offset = np.where(has_weight[:, None], first / safe_nk, 0)
    return Stats(nk, means + offset, m2 - weighted_outer(nk, offset, covariance_type),
                 np.float64(totals[0]), np.float64(totals[1]), np.float64(totals[2]))


def sums_about_means(X, sample_weight, centre, means, prec_chol, covariance_type,
                     log_weights, with_entropy=False, rows=None):
    """The E-step and `_sweep`'s sums about each mean of the rows of ``X`` (its rows
    ``rows``, read in place, if given), ``means`` relative to ``centre``, with the
    log constants ``log_weights``: ``(nk, first, m2, totals)``."""
    parameters = _compiled(covariance_type).parameters(means, prec_chol, X.dtype)
    constants = _constants(log_weights, prec_chol, covariance_type, means.shape[1])
    return _sweep(X, sample_weight, None, centre, means, covariance_type, parameters,
                  constants, with_entropy, rows)


def em_statistics(X, sample_weight, weights, means, prec_chol, covariance_type,
                  log_weights=None, with_entropy=False, rows=None):
    """E-step and partial statistics of a block of rows, in one go.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        float32 rows get a float32 E-step (whitening, log-densities,
        responsibilities) from rows centred in float64, and float64
        moments (see `_fused`); where that leaves a component without
        weight, the float64 E-step (whose exp floor is lower).
    sample_weight : ndarray of shape (n_rows,) or None
        Finite and non-negative (checked by the caller).
    weights, means, prec_chol : current mixture parameters
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    log_weights : ndarray of shape (n_components,), default=None
        The E-step's per-component log constants: ``log(weights)`` (EM's)
        when None, a variational mixture's in its family (``_family``).
        ``weights`` then only centre the rows.
    with_entropy : bool, default=False
        Whether to sum the block's ``sum r log r`` too (else it is 0).
    rows : ndarray of shape (n_swept,), default=None
        The rows of ``X`` to take (read in place, not copied; ``sample_weight``
        is then theirs); all when None.

    Returns
    -------
    Stats
        Responsibility sums, weighted means relative to
        ``reference_means(weights, means)``, block-centred moments, the
        block's sum of ``log p(x)`` and, ``with_entropy``, of
        ``sum_k r log r`` (both weighted by ``sample_weight``).
    """
    X = kernel_rows(X)
    if rows is not None and not len(rows):  # none (the kernels' empty index means all)
        X, rows = X[:0], None
    centre = _centre(weights, means)
    means_c = means - centre
    nk, first, m2, totals = sums_about_means(X, sample_weight, centre, means_c, prec_chol,
                                             covariance_type, _log_weights(weights, log_weights),
                                             with_entropy, rows)
    if not np.isfinite(totals[0]):
        check_finite(X if rows is None else X[rows])
    if X.dtype == np.float32 and (X.shape[0] if rows is None else len(rows)) and not nk.all():
        # float32's exp floor (exp(-87) of a row's weight, float64's exp(-500)) may have
        # emptied a component that float64 keeps: the rows again, in float64.
        return em_statistics((X if rows is None else X[rows]).astype(np.float64),
                             sample_weight, weights, means, prec_chol, covariance_type,
                             log_weights, with_entropy)
    # Relative to centre + means_c: the means are their offsets.
    return _sums_to_stats(nk, first, m2, totals, covariance_type, np.zeros_like(means_c))


def resp_statistics(X, sample_weight, resp, covariance_type):
    """Partial statistics of a block of rows for given responsibilities ``resp`` (n_rows, K).

    The moments are taken about the components' weighted means in the
    block, found first by a sweep about its first row, so that they are
    exact wherever the components lie.
    """
    X = kernel_rows(X)
    n_components, n_features = resp.shape[1], X.shape[1]
    centre = np.asarray(X[0] if X.shape[0] else np.zeros(n_features), dtype=np.float64)
    parameters = _compiled(covariance_type).parameters(
        np.zeros((n_components, n_features)), _unit_prec_chol(
            n_components, n_features, covariance_type), X.dtype)
    constants = np.zeros(n_components)
    sweep = (X, sample_weight, resp, centre)
    nk, first, _, _ = _sweep(*sweep, np.zeros((n_components, n_features)), covariance_type,
                             parameters, constants)
    means = np.where(nk[:, None] > 0, first / np.where(nk > 0, nk, 1)[:, None], 0)
    nk, first, m2, totals = _sweep(*sweep, means, covariance_type, parameters, constants)
    stats = _sums_to_stats(nk, first, m2, totals, covariance_type, centre + means)
    if not np.isfinite(stats.m2).all():
        check_finite(X)
    return stats


def _unit_prec_chol(n_components, n_features, covariance_type):
    """Identity precision factors: placeholders where the responsibilities are given."""
    shape = m2_shape(n_components, n_features, covariance_type)
    if REGISTRY[covariance_type].separable:
        return np.ones(shape)
    return np.broadcast_to(np.eye(n_features), shape)


def one_hot(labels, n_components):
    """Responsibilities (n_rows, K) that put each row in its labelled component."""
    return np.eye(n_components)[labels]


def nearest_resp(X, centres):
    """Hard responsibilities of the nearest centre (Euclidean), as k-means."""
    check_finite(X)
    if X.shape[0] == 0:
        return np.zeros((0, centres.shape[0]))
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


def estimate_weighted_log_prob(X, weights, means, prec_chol, covariance_type, log_weights=None):
    """log(pi_k) + log N(x | mu_k, Sigma_k) for every row and component, (n, K).

    ``log_weights``, when given, replaces log(pi_k) (see `em_statistics`).
    """
    X = kernel_rows(X)
    centre = _centre(weights, means)
    means_c = means - centre
    parameters = _compiled(covariance_type).parameters(means_c, prec_chol, X.dtype)
    constants = _constants(_log_weights(weights, log_weights), prec_chol, covariance_type,
                           means.shape[1])
    out = np.empty((X.shape[0], means.shape[0]))
    _compiled(covariance_type).log_prob(X, np.ascontiguousarray(centre),
                                        np.ascontiguousarray(means_c), parameters, constants,
                                        out)
    return out
