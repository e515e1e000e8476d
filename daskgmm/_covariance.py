"""Everything that depends on the covariance type, in one place: ``REGISTRY``.

Shapes (K components, D features): ``full`` (K, D, D), ``tied`` (D, D)
pooled over components, ``diag`` (K, D), ``spherical`` (K,). The second
moments of the statistics (``Stats.m2``), the covariances, the precisions
and their Cholesky factors all have that shape.

Each type is one `CovarianceType` record of small per-type functions,
``REGISTRY[name]``, as scikit-learn's mixture module chooses its
``_estimate_gaussian_covariances_*`` by name; the module functions below
look the type up and call them. A new type is one record here, its name in
`_covariance_types` and its kernel class in ``_kernels``.
"""

from typing import Callable, NamedTuple

import numpy as np
from scipy import linalg

from ._covariance_types import COVARIANCE_TYPES

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


class CovarianceType(NamedTuple):
    """What one covariance type is: its shapes and its per-type formulas.

    Arguments: ``nk`` (K,) responsibility sums, ``delta`` (..., K, D)
    deviations, ``prec_chol`` the precision Cholesky factors, ``m2`` and
    ``scatter`` second moments in the type's layout.
    """

    name: str
    # (K, D) -> the shape of m2, the covariances, the precisions and their Cholesky factors.
    m2_shape: Callable
    # (K, D) -> the number of free parameters of the covariances.
    n_parameters: Callable
    # (coef (..., K), delta) -> sum of coef_k delta_k delta_k^T in the layout of m2.
    weighted_outer: Callable
    # (nk, scatter about the means, reg_covar, means (K, D)) -> covariances.
    covariances: Callable
    # (covariances, iteration) -> precision Cholesky factors, or the ill-defined ValueError.
    precision_cholesky: Callable
    # (prec_chol) -> the covariances they are the precision Cholesky factors of.
    covariances_from_precision_cholesky: Callable
    # (prec_chol, D) -> log det of each component's precision Cholesky factor (tied: one).
    log_det: Callable
    # (covariances, reg_covar, nk, total weight, D) -> the m2 of rows distributed as the
    # covariances less reg_covar say.
    model_scatter: Callable
    # (m2, delta (K, D) of the means from the model's, prec_chol) -> EM's Q pieces:
    # sum_k tr(P_k m2_k), and (K,) of d_k^T P_k d_k.
    trace_and_quadratic: Callable
    # Index that broadcasts (K,) values (a scalar for tied) against the covariances.
    per_component: object
    # (nk) -> the responsibility sum of each covariance (tied: their mean, shared).
    covariance_counts: Callable
    # (K, D) -> the count the variational shrinkage of a covariance is shared by.
    shrinkage_share: Callable
    # (K) -> how many times the one Wishart normaliser counts in the bound (tied: K).
    wishart_copies: Callable
    # Layout ("full" or "diag") of the data's second moments the default prior needs.
    prior_moments: str
    # (the data's unbiased covariance in that layout) -> scikit-learn's covariance_prior_.
    covariance_prior: Callable
    # (covariances, K, D) -> mean variance and log-determinant of each component (K,) each.
    summary: Callable
    # Whether the features are independent given the component (a diagonal precision):
    # the density of a row's observed entries then drops its missing ones (``_missing``).
    separable: bool
    # (prec_chol, D) -> the precisions' square roots: (K, D) per feature when separable,
    # else (F, D, D) upper Cholesky factors U with precision U U^T (F = K; tied: 1).
    precision_roots: Callable
    # (m2 per component about its own mean, (K, D) when separable, else (K, D, D))
    # -> m2 in the type's layout.
    pooled_m2: Callable


# ----------------------------------------------------------------- shared pieces


def _symmetric_covariances(scatter, count, reg_covar):
    """``scatter / count``, exactly symmetric, plus ``reg_covar`` on the diagonal."""
    # Exactly symmetric: (A + A^T) / 2 rounds the same at [i, j] and [j, i].
    scatter = 0.5 * (scatter + np.swapaxes(scatter, -1, -2))
    cov = scatter / count
    diagonal = np.arange(cov.shape[-1])
    cov[..., diagonal, diagonal] += reg_covar
    return cov


def _resolution(means):
    """The square of the floating-point spacing at the means, (eps |mu|)^2 (see `covariances`)."""
    return np.square(np.finfo(np.float64).eps * means)


def _where(component, iteration):
    at = f" (component {component}"
    return at + (f", iteration {iteration})" if iteration is not None else ", initialisation)")


def _cholesky_inverse(covariance, component, iteration):
    try:
        cov_chol = linalg.cholesky(covariance, lower=True)
    except linalg.LinAlgError:
        raise ValueError(_ILL_DEFINED + _where(component, iteration)) from None
    # The inverse of the triangular factor by LAPACK's trtri, not solve_triangular
    # against the identity: OpenBLAS runs that small solve on all its threads, and
    # took 1-20 ms per component at D 16-64 on a busy 2-core machine (trtri 2-120 us).
    inverse, _ = linalg.get_lapack_funcs("trtri", (cov_chol,))(cov_chol, lower=1)
    return inverse.T


def _checked_square_roots(variances, iteration):
    """``1 / sqrt(variances)``; a variance that is not positive is the ill-defined error."""
    bad = np.flatnonzero(np.reshape(variances <= 0, (variances.shape[0], -1)).any(1))
    if bad.size:
        raise ValueError(_ILL_DEFINED + _where(int(bad[0]), iteration))
    return 1.0 / np.sqrt(variances)


def _matrix_inverse_of_gram(prec_chol):
    return np.linalg.inv(prec_chol @ np.swapaxes(prec_chol, -1, -2))


def _inverse_square(prec_chol):
    return 1.0 / np.square(prec_chol)


def _diagonal_log_det(prec_chol, n_features):
    return np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(-1)


def _without_reg_diagonal(covariances, reg_covar):
    cov = np.array(covariances, dtype=np.float64)
    diagonal = np.arange(cov.shape[-1])
    cov[..., diagonal, diagonal] -= reg_covar
    return cov


def _without_reg(covariances, reg_covar):
    return np.maximum(np.array(covariances, dtype=np.float64) - reg_covar, 0)


def _as_is(covariance):
    return covariance


def _square_factors(prec_chol, n_features):
    return np.reshape(prec_chol, (-1, n_features, n_features))


def _one(*sizes):
    return 1


# ------------------------------------------------------------------------ full


def _full_trace_and_quadratic(m2, delta, prec_chol):
    spread = np.einsum("kia,kij,kja->", prec_chol, m2, prec_chol)
    quad = np.square(np.einsum("ki,kia->ka", delta, prec_chol)).sum(-1)
    return spread, quad


def _full_summary(covariances, n_components, n_features):
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    return variances.mean(axis=1), np.linalg.slogdet(covariances)[1]


FULL = CovarianceType(
    name="full",
    m2_shape=lambda k, d: (k, d, d),
    n_parameters=lambda k, d: k * d * (d + 1) / 2.0,
    weighted_outer=lambda coef, delta: (
        coef[..., None, None] * (delta[..., :, None] * delta[..., None, :])),
    covariances=lambda nk, scatter, reg_covar, means: _symmetric_covariances(
        scatter, nk[:, None, None], reg_covar),
    precision_cholesky=lambda covariances, iteration: np.stack(
        [_cholesky_inverse(cov, k, iteration) for k, cov in enumerate(covariances)]),
    covariances_from_precision_cholesky=_matrix_inverse_of_gram,
    log_det=_diagonal_log_det,
    model_scatter=lambda cov, reg_covar, nk, weight, n_features: (
        _without_reg_diagonal(cov, reg_covar) * nk[:, None, None]),
    trace_and_quadratic=_full_trace_and_quadratic,
    per_component=(..., None, None),
    covariance_counts=_as_is,
    shrinkage_share=_one,
    wishart_copies=_one,
    prior_moments="full",
    covariance_prior=_as_is,
    summary=_full_summary,
    separable=False,
    precision_roots=_square_factors,
    pooled_m2=_as_is,
)


# ------------------------------------------------------------------------ tied


def _tied_trace_and_quadratic(m2, delta, prec_chol):
    spread = np.einsum("ia,ij,ja->", prec_chol, m2, prec_chol)
    quad = np.square(delta @ prec_chol).sum(-1)
    return spread, quad


def _tied_summary(covariances, n_components, n_features):
    variances = np.tile(np.diag(covariances), (n_components, 1))
    return variances.mean(axis=1), np.full(n_components, np.linalg.slogdet(covariances)[1])


TIED = CovarianceType(
    name="tied",
    m2_shape=lambda k, d: (d, d),
    n_parameters=lambda k, d: d * (d + 1) / 2.0,
    weighted_outer=lambda coef, delta: np.einsum("...k,...ki,...kj->...ij", coef, delta, delta),
    covariances=lambda nk, scatter, reg_covar, means: _symmetric_covariances(
        scatter, nk.sum(), reg_covar),
    precision_cholesky=lambda covariances, iteration: _cholesky_inverse(
        covariances, "shared", iteration),
    covariances_from_precision_cholesky=_matrix_inverse_of_gram,
    log_det=_diagonal_log_det,
    model_scatter=lambda cov, reg_covar, nk, weight, n_features: (
        _without_reg_diagonal(cov, reg_covar) * weight),
    trace_and_quadratic=_tied_trace_and_quadratic,
    per_component=...,
    covariance_counts=lambda nk: nk.sum() / len(nk),
    shrinkage_share=lambda k, d: k,
    wishart_copies=lambda k: k,
    prior_moments="full",
    covariance_prior=_as_is,
    summary=_tied_summary,
    separable=False,
    precision_roots=_square_factors,
    pooled_m2=lambda m2: m2.sum(axis=0),
)


# ------------------------------------------------------------------------ diag


def _diag_trace_and_quadratic(m2, delta, prec_chol):
    precision = np.square(prec_chol)
    return np.sum(precision * m2), (precision * np.square(delta)).sum(-1)


DIAG = CovarianceType(
    name="diag",
    m2_shape=lambda k, d: (k, d),
    n_parameters=lambda k, d: k * d,
    weighted_outer=lambda coef, delta: coef[..., None] * np.square(delta),
    covariances=lambda nk, scatter, reg_covar, means: (
        np.maximum(scatter / nk[:, None], _resolution(means)) + reg_covar),
    precision_cholesky=_checked_square_roots,
    covariances_from_precision_cholesky=_inverse_square,
    log_det=lambda prec_chol, n_features: np.log(prec_chol).sum(-1),
    model_scatter=lambda cov, reg_covar, nk, weight, n_features: (
        _without_reg(cov, reg_covar) * nk[:, None]),
    trace_and_quadratic=_diag_trace_and_quadratic,
    per_component=(..., None),
    covariance_counts=_as_is,
    shrinkage_share=_one,
    wishart_copies=_one,
    prior_moments="diag",
    covariance_prior=_as_is,
    summary=lambda covariances, k, d: (covariances.mean(axis=1),
                                       np.log(covariances).sum(axis=1)),
    separable=True,
    precision_roots=lambda prec_chol, n_features: prec_chol,
    pooled_m2=_as_is,
)


# ------------------------------------------------------------------- spherical


def _spherical_trace_and_quadratic(m2, delta, prec_chol):
    precision = np.square(prec_chol)
    return np.sum(precision * m2), precision * np.square(delta).sum(-1)


SPHERICAL = CovarianceType(
    name="spherical",
    m2_shape=lambda k, d: (k,),
    n_parameters=lambda k, d: k,
    weighted_outer=lambda coef, delta: coef * np.einsum("...ki,...ki->...k", delta, delta),
    covariances=lambda nk, scatter, reg_covar, means: (
        np.maximum(scatter / (nk * means.shape[1]), _resolution(means).mean(axis=1))
        + reg_covar),
    precision_cholesky=_checked_square_roots,
    covariances_from_precision_cholesky=_inverse_square,
    log_det=lambda prec_chol, n_features: n_features * np.log(prec_chol),
    model_scatter=lambda cov, reg_covar, nk, weight, n_features: (
        _without_reg(cov, reg_covar) * (nk * n_features)),
    trace_and_quadratic=_spherical_trace_and_quadratic,
    per_component=...,
    covariance_counts=_as_is,
    shrinkage_share=lambda k, d: d,
    wishart_copies=_one,
    prior_moments="diag",
    covariance_prior=lambda covariance: covariance.mean(),
    summary=lambda covariances, k, d: (covariances, d * np.log(covariances)),
    separable=True,
    precision_roots=lambda prec_chol, n_features: np.repeat(prec_chol[:, None], n_features,
                                                            axis=1),
    pooled_m2=lambda m2: m2.sum(axis=1),
)


REGISTRY = {kind.name: kind for kind in (FULL, TIED, DIAG, SPHERICAL)}
assert tuple(REGISTRY) == COVARIANCE_TYPES, "one registry entry per name of _covariance_types"


# ---------------------------------------------------------- by covariance type


def m2_shape(n_components, n_features, covariance_type):
    """Shape of the second moments (and of the covariances) of one model."""
    return REGISTRY[covariance_type].m2_shape(n_components, n_features)


def statistics_size(n_components, n_features, covariance_type):
    """Floats in one model's packed statistics: nk, means, m2, log-likelihood, weight, entropy."""
    m2_size = int(np.prod(m2_shape(n_components, n_features, covariance_type)))
    return n_components * (1 + n_features) + m2_size + 3


def n_parameters(n_components, n_features, covariance_type):
    """Number of free parameters of a mixture (for BIC and AIC)."""
    covariance_parameters = REGISTRY[covariance_type].n_parameters(n_components, n_features)
    return int(covariance_parameters + n_features * n_components + n_components - 1)


def weighted_outer(coef, delta, covariance_type):
    """Sum of ``coef_k * delta_k delta_k^T`` in the layout of ``m2``.

    ``coef`` has shape (..., K) and ``delta`` (..., K, D).
    """
    return REGISTRY[covariance_type].weighted_outer(coef, delta)


def covariances(nk, scatter, reg_covar, covariance_type, means):
    """Covariances from the weighted scatter about the means (scikit-learn's estimators).

    ``diag`` and ``spherical`` variances are at least the square of the
    floating-point spacing at the means (eps |mu|)^2: finer spreads cannot be
    told from rounding. scikit-learn's raw formula E[x^2] - mu^2 leaves about
    eps mu^2 of rounding there, so that a component collapsed on one row still
    has a variance (its issue #18216); the exact scatter is then 0.
    """
    return REGISTRY[covariance_type].covariances(nk, scatter, reg_covar, means)


def precision_cholesky(covariances, covariance_type, iteration=None):
    """Cholesky factors of the precisions, as scikit-learn stores them.

    Raises scikit-learn's "ill-defined empirical covariance" ValueError,
    naming the component and the iteration, when a covariance is not
    positive definite.
    """
    return REGISTRY[covariance_type].precision_cholesky(covariances, iteration)


def covariances_from_precision_cholesky(prec_chol, covariance_type):
    """Covariances implied by precision Cholesky factors."""
    return REGISTRY[covariance_type].covariances_from_precision_cholesky(prec_chol)


def log_det(prec_chol, n_features, covariance_type):
    """log det of each component's precision Cholesky factor (one value for ``tied``)."""
    return REGISTRY[covariance_type].log_det(prec_chol, n_features)


def model_scatter(covariances, reg_covar, nk, weight, n_features, covariance_type):
    """The second moments of rows of total ``weight`` (``nk`` per component) whose
    covariances, ``reg_covar`` aside, are ``covariances``."""
    return REGISTRY[covariance_type].model_scatter(covariances, reg_covar, nk, weight,
                                                   n_features)


def wishart(nk, means, covariances, prior, mean_precision, covariance_type):
    """Degrees of freedom and normalised covariances of the variational Wishart posterior.

    scikit-learn's ``BayesianGaussianMixture._estimate_wishart_*``: ``nk``,
    ``means`` and ``covariances`` as `_mstep.estimate_parameters` gives them,
    ``prior`` a `_mstep.Prior`, ``mean_precision`` the posterior's (K,).
    ``tied`` pools ``nk`` as ``nk.sum() / K`` per component.
    """
    kind = REGISTRY[covariance_type]
    n_components, n_features = means.shape
    counts = kind.covariance_counts(nk)
    degrees_of_freedom = prior.degrees_of_freedom + counts
    shrink = nk * prior.mean_precision / mean_precision
    shrink = shrink / kind.shrinkage_share(n_components, n_features)
    at = kind.per_component
    scatter = (prior.covariance + np.asarray(counts)[at] * covariances
               + kind.weighted_outer(shrink, means - prior.mean))
    return degrees_of_freedom, scatter / np.asarray(degrees_of_freedom)[at]


def covariance_prior(moments, covariance_type):
    """scikit-learn's default ``covariance_prior_`` from the statistics of all rows.

    ``moments`` are the statistics of one all-ones component, in the layout
    ``REGISTRY[covariance_type].prior_moments`` (``full`` second moments for
    ``full`` and ``tied``, ``diag`` ones otherwise): the unbiased covariance
    (or variances, or their mean for ``spherical``) of the data, as
    ``np.cov`` and ``np.var(ddof=1)`` give them.
    """
    return REGISTRY[covariance_type].covariance_prior(moments.m2[0] / (moments.weight - 1))


def expected_log_likelihood(stats, weights, means, prec_chol, covariance_type):
    """EM's Q: the sum over rows and components of ``r log(pi_k N(x | mu_k, Sigma_k))``.

    Evaluated exactly from the centred statistics of the rows (``Stats``:
    responsibility sums, their means and second moments about them) for any
    parameters: with the scatter about mu_k, ``S_k = m2_k + nk_k d_k d_k^T``,
    ``d_k = mean_k - mu_k``, and ``P_k = L_k L_k^T`` (``prec_chol``),
    Q = sum_k nk_k (log pi_k + log|L_k| - D log(2 pi) / 2) - tr(P_k S_k) / 2
    (Dempster, Laird & Rubin 1977, eq. 2.2 for a mixture).
    """
    kind = REGISTRY[covariance_type]
    nk, delta = stats.nk, stats.mean - means
    n_features = means.shape[1]
    log_det_ = kind.log_det(prec_chol, n_features)
    spread, quad = kind.trace_and_quadratic(stats.m2, delta, prec_chol)
    with np.errstate(divide="ignore", invalid="ignore"):  # components without weight add 0
        per_component = nk * (np.log(weights) + log_det_ - 0.5 * n_features * np.log(2 * np.pi)
                              - 0.5 * quad)
    return float(np.sum(np.where(nk > 0, per_component, 0.0)) - 0.5 * spread)


def covariance_summary(covariances, covariance_type, n_components, n_features):
    """Mean variance and log-determinant of each component's covariance (``daskgmm info``).

    Parameters
    ----------
    covariances : ndarray
        ``covariances_`` of a fitted model, shaped as for ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    mean_variance, log_det : ndarray of shape (n_components,)
    """
    return REGISTRY[covariance_type].summary(covariances, n_components, n_features)
