"""The M-step: mixture parameters from reduced sufficient statistics.

Pure NumPy on arrays of size K x D x D at most; nothing here sees the data.
Follows ``sklearn.mixture.GaussianMixture`` (including its ``10 * eps`` added
to every responsibility sum) so that fits agree to rounding.
"""

from typing import NamedTuple

import numpy as np

from ._covariance import covariances as estimate_covariances
from ._covariance import precision_cholesky, weighted_outer
from ._stats import Stats

EPS10 = 10 * np.finfo(np.float64).eps


class Parameters(NamedTuple):
    """The parameters of one Gaussian mixture (shapes as scikit-learn's attributes)."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    prec_chol: np.ndarray

    @property
    def n_components(self):
        return self.means.shape[0]


def estimate_parameters(stats, reg_covar, covariance_type):
    """Responsibility sums, means and covariances of one set of statistics.

    As scikit-learn's ``_estimate_gaussian_parameters``: ``nk`` includes
    ``10 * eps`` so that empty components stay defined.
    """
    nk = stats.nk + EPS10
    means = stats.mean * (stats.nk / nk)[:, None]
    return nk, means, estimate_covariances(nk, stats.m2, reg_covar, covariance_type, means)


def start_from_stats(stats, reg_covar, covariance_type):
    """Initial parameters from the statistics of initial responsibilities.

    As scikit-learn's ``_initialize``: weights are ``nk / n_samples``.
    """
    nk, means, covariances = estimate_parameters(stats, reg_covar, covariance_type)
    return Parameters(covariance_type, nk / stats.weight, means, covariances,
                      precision_cholesky(covariances, covariance_type))


def model_statistics(parameters, weight, reg_covar):
    """Statistics of rows of total ``weight`` distributed exactly as the model says.

    Per component: responsibility sum ``weight * weights``, the model's mean,
    and the scatter of its covariance less ``reg_covar``; no log-likelihood.
    """
    covariance_type = parameters.covariance_type
    nk = weight * parameters.weights
    n_features = parameters.means.shape[1]
    cov = np.array(parameters.covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        cov[..., np.arange(n_features), np.arange(n_features)] -= reg_covar
        scale = nk[:, None, None] if covariance_type == "full" else weight
    else:
        cov = np.maximum(cov - reg_covar, 0)
        scale = nk[:, None] if covariance_type == "diag" else nk * n_features
    return Stats(nk, parameters.means, cov * scale, 0.0, float(weight))


def m_step(stats, reg_covar, params, previous, iteration):
    """One M-step.

    Parameters
    ----------
    stats : Stats
        Reduced statistics of all rows for one model.
    reg_covar : float
    params : str
        Which parameters to update: any of ``"w"`` (weights), ``"m"``
        (means), ``"c"`` (covariances); the others keep their values.
    previous : Parameters
        The parameters before this step.
    iteration : int
        Named in the error raised for an ill-defined covariance.

    Returns
    -------
    Parameters
    """
    covariance_type = previous.covariance_type
    nk, means, covariances = estimate_parameters(stats, reg_covar, covariance_type)
    weights = nk / nk.sum() if "w" in params else previous.weights
    if "m" not in params:
        means = previous.means
        # Scatter about the fixed means: M + nk (m - mu)(m - mu)^T.
        scatter = stats.m2 + weighted_outer(stats.nk, stats.mean - means, covariance_type)
        covariances = estimate_covariances(nk, scatter, reg_covar, covariance_type, means)
    if "c" not in params:
        return previous._replace(weights=weights, means=means)
    return Parameters(covariance_type, weights, means, covariances,
                      precision_cholesky(covariances, covariance_type, iteration))
