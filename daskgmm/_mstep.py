"""The M-step: mixture parameters from reduced sufficient statistics.

Pure NumPy on arrays of size K x D x D at most; nothing here sees the data.
Follows ``sklearn.mixture.GaussianMixture`` (including its ``10 * eps`` added
to every responsibility sum) so that fits agree to rounding.
"""

import numpy as np
from scipy import linalg

from ._stats import weighted_outer

EPS10 = 10 * np.finfo(np.float64).eps

_ILL_DEFINED = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


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


def _covariances(nk, scatter, reg_covar, covariance_type, means):
    """Covariances from the weighted scatter about the means (sklearn's estimators).

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


def estimate_parameters(stats, reg_covar, covariance_type):
    """Responsibility sums, means and covariances of one set of statistics.

    As scikit-learn's ``_estimate_gaussian_parameters``: ``nk`` includes
    ``10 * eps`` so that empty components stay defined.
    """
    nk = stats.nk + EPS10
    means = stats.mean * (stats.nk / nk)[:, None]
    return nk, means, _covariances(nk, stats.m2, reg_covar, covariance_type, means)


def m_step(stats, reg_covar, covariance_type, params, previous, iteration):
    """One M-step.

    Parameters
    ----------
    stats : Stats
        Reduced statistics of all rows for one set of parameters.
    reg_covar : float
    covariance_type : str
    params : str
        Which parameters to update: any of ``"w"`` (weights), ``"m"``
        (means), ``"c"`` (covariances); the others keep their values.
    previous : tuple
        ``(weights, means, covariances, prec_chol)`` before this step.
    iteration : int
        Named in the error raised for an ill-defined covariance.

    Returns
    -------
    (weights, means, covariances, prec_chol)
    """
    old_weights, old_means, old_covariances, old_prec_chol = previous
    nk, means, covariances = estimate_parameters(stats, reg_covar, covariance_type)
    weights = nk / nk.sum() if "w" in params else old_weights
    if "m" not in params:
        means = old_means
        # Scatter about the fixed means: M + nk (m - mu)(m - mu)^T.
        scatter = stats.m2 + weighted_outer(stats.nk, stats.mean - old_means, covariance_type)
        covariances = _covariances(nk, scatter, reg_covar, covariance_type, means)
    if "c" not in params:
        return weights, means, old_covariances, old_prec_chol
    return weights, means, covariances, precision_cholesky(covariances, covariance_type, iteration)
