"""Everything that depends on the covariance type, in one place.

Shapes (K components, D features): ``full`` (K, D, D), ``tied`` (D, D)
pooled over components, ``diag`` (K, D), ``spherical`` (K,). The second
moments of the statistics (``Stats.m2``), the covariances, the precisions
and their Cholesky factors all have that shape.
"""

import numpy as np
from scipy import linalg

from ._covariance_types import COVARIANCE_TYPES

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


def m2_shape(n_components, n_features, covariance_type):
    """Shape of the second moments (and of the covariances) of one model."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def statistics_size(n_components, n_features, covariance_type):
    """Floats in one model's packed statistics: nk, means, m2, log-likelihood, weight, entropy."""
    m2_size = int(np.prod(m2_shape(n_components, n_features, covariance_type)))
    return n_components * (1 + n_features) + m2_size + 3


def n_parameters(n_components, n_features, covariance_type):
    """Number of free parameters of a mixture (for BIC and AIC)."""
    covariance_parameters = {
        "full": n_components * n_features * (n_features + 1) / 2.0,
        "diag": n_components * n_features,
        "tied": n_features * (n_features + 1) / 2.0,
        "spherical": n_components,
    }[covariance_type]
    return int(covariance_parameters + n_features * n_components + n_components - 1)


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


def covariances(nk, scatter, reg_covar, covariance_type, means):
    """Covariances from the weighted scatter about the means (scikit-learn's estimators).

    ``diag`` and ``spherical`` variances are at least the square of the
    floating-point spacing at the means (eps |mu|)^2: finer spreads cannot be
    told from rounding. scikit-learn's raw formula E[x^2] - mu^2 leaves about
    eps mu^2 of rounding there, so that a component collapsed on one row still
    has a variance (its issue #18216); the exact scatter is then 0.
    """
    n_features = means.shape[1]
    if covariance_type in ("full", "tied"):
        # Exactly symmetric: (A + A^T) / 2 rounds the same at [i, j] and [j, i].
        scatter = 0.5 * (scatter + np.swapaxes(scatter, -1, -2))
        cov = scatter / (nk[:, None, None] if covariance_type == "full" else nk.sum())
        diagonal = np.arange(n_features)
        cov[..., diagonal, diagonal] += reg_covar
        return cov
    resolution = np.square(np.finfo(np.float64).eps * means)
    if covariance_type == "spherical":
        return np.maximum(scatter / (nk * n_features), resolution.mean(axis=1)) + reg_covar
    return np.maximum(scatter / nk[:, None], resolution) + reg_covar


def _where(component, iteration):
    at = f" (component {component}"
    return at + (f", iteration {iteration})" if iteration is not None else ", initialisation)")


def _cholesky_inverse(covariance, component, iteration):
    try:
        cov_chol = linalg.cholesky(covariance, lower=True)
    except linalg.LinAlgError:
        raise ValueError(_ILL_DEFINED + _where(component, iteration)) from None
    return linalg.solve_triangular(cov_chol, np.eye(covariance.shape[0]), lower=True).T


def precision_cholesky(covariances, covariance_type, iteration=None):
    """Cholesky factors of the precisions, as scikit-learn stores them.

    Raises scikit-learn's "ill-defined empirical covariance" ValueError,
    naming the component and the iteration, when a covariance is not
    positive definite.
    """
    if covariance_type == "full":
        return np.stack(
            [_cholesky_inverse(cov, k, iteration) for k, cov in enumerate(covariances)]
        )
    if covariance_type == "tied":
        return _cholesky_inverse(covariances, "shared", iteration)
    bad = np.flatnonzero(np.reshape(covariances <= 0, (covariances.shape[0], -1)).any(1))
    if bad.size:
        raise ValueError(_ILL_DEFINED + _where(int(bad[0]), iteration))
    return 1.0 / np.sqrt(covariances)


def covariances_from_precision_cholesky(prec_chol, covariance_type):
    """Covariances implied by precision Cholesky factors."""
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(prec_chol @ np.swapaxes(prec_chol, -1, -2))
    return 1.0 / np.square(prec_chol)


def _per_component(covariance_type):
    """Index that broadcasts (K,) values (a scalar for ``tied``) against the covariances."""
    return {"full": (..., None, None), "diag": (..., None)}.get(covariance_type, ...)


def wishart(nk, means, covariances, prior, mean_precision, covariance_type):
    """Degrees of freedom and normalised covariances of the variational Wishart posterior.

    scikit-learn's ``BayesianGaussianMixture._estimate_wishart_*``: ``nk``,
    ``means`` and ``covariances`` as `_mstep.estimate_parameters` gives them,
    ``prior`` a `_mstep.Prior`, ``mean_precision`` the posterior's (K,).
    ``tied`` pools ``nk`` as ``nk.sum() / K`` per component.
    """
    n_components, n_features = means.shape
    counts = nk.sum() / n_components if covariance_type == "tied" else nk
    degrees_of_freedom = prior.degrees_of_freedom + counts
    shrink = nk * prior.mean_precision / mean_precision
    shrink = shrink / {"tied": n_components, "spherical": n_features}.get(covariance_type, 1)
    at = _per_component(covariance_type)
    scatter = (prior.covariance + np.asarray(counts)[at] * covariances
               + weighted_outer(shrink, means - prior.mean, covariance_type))
    return degrees_of_freedom, scatter / np.asarray(degrees_of_freedom)[at]

def covariance_prior(moments, covariance_type):
    """scikit-learn's default ``covariance_prior_`` from the statistics of all rows.

    ``moments`` are the statistics of one all-ones component, with ``full``
    second moments for ``full`` and ``tied``, ``diag`` ones otherwise: the
    unbiased covariance (or variances, or their mean for ``spherical``) of
    the data, as ``np.cov`` and ``np.var(ddof=1)`` give them.
    """
    covariance = moments.m2[0] / (moments.weight - 1)
    if covariance_type == "spherical":
        return covariance.mean()
    return covariance


def expected_log_likelihood(stats, weights, means, prec_chol, covariance_type):
    """EM's Q: the sum over rows and components of ``r log(pi_k N(x | mu_k, Sigma_k))``.

    Evaluated exactly from the centred statistics of the rows (``Stats``:
    responsibility sums, their means and second moments about them) for any
    parameters: with the scatter about mu_k, ``S_k = m2_k + nk_k d_k d_k^T``,
    ``d_k = mean_k - mu_k``, and ``P_k = L_k L_k^T`` (``prec_chol``),
    Q = sum_k nk_k (log pi_k + log|L_k| - D log(2 pi) / 2) - tr(P_k S_k) / 2
    (Dempster, Laird & Rubin 1977, eq. 2.2 for a mixture).
    """
    nk, delta = stats.nk, stats.mean - means
    n_features = means.shape[1]
    if covariance_type == "full":
        log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(-1)
        spread = np.einsum("kia,kij,kja->", prec_chol, stats.m2, prec_chol)
        quad = np.square(np.einsum("ki,kia->ka", delta, prec_chol)).sum(-1)
    elif covariance_type == "tied":
        log_det = np.log(np.diagonal(prec_chol)).sum()
        spread = np.einsum("ia,ij,ja->", prec_chol, stats.m2, prec_chol)
        quad = np.square(delta @ prec_chol).sum(-1)
    else:
        precision = np.square(prec_chol)
        if covariance_type == "diag":
            log_det = np.log(prec_chol).sum(-1)
            quad = (precision * np.square(delta)).sum(-1)
        else:
            log_det = n_features * np.log(prec_chol)
            quad = precision * np.square(delta).sum(-1)
        spread = np.sum(precision * stats.m2)
    with np.errstate(divide="ignore", invalid="ignore"):  # components without weight add 0
        per_component = nk * (np.log(weights) + log_det - 0.5 * n_features * np.log(2 * np.pi)
                              - 0.5 * quad)
    return float(np.sum(np.where(nk > 0, per_component, 0.0)) - 0.5 * spread)
