"""The M-step: mixture parameters from reduced sufficient statistics.

Pure NumPy on arrays of size K x D x D at most; nothing here sees the data.
Follows ``sklearn.mixture.GaussianMixture`` (including its ``10 * eps`` added
to every responsibility sum) so that fits agree to rounding, and, for the
variational mixture, ``sklearn.mixture.BayesianGaussianMixture``: its
M-step (`variational_step`), its E-step's per-component constants and its
lower bound, from the same statistics plus their ``sum r log r``.
"""

from typing import NamedTuple, Optional

import numpy as np
from scipy.special import betaln, digamma

from ._covariance import REGISTRY, model_scatter, precision_cholesky, weighted_outer, wishart
from ._covariance import covariances as estimate_covariances
from ._sklearn import log_dirichlet_norm, log_wishart_norm
from ._stats import Stats

EPS10 = 10 * np.finfo(np.float64).eps


class Posterior(NamedTuple):
    """What a variational mixture has beyond its Gaussian parameters.

    scikit-learn's ``weight_concentration_`` ((2, K) for a Dirichlet
    process: its tuple stacked), ``mean_precision_`` and
    ``degrees_of_freedom_``, and ``log_weights``, the E-step's per-component
    log constants (see `e_step_constants`).
    """

    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    degrees_of_freedom: np.ndarray
    log_weights: np.ndarray


class Parameters(NamedTuple):
    """The parameters of one Gaussian mixture (shapes as scikit-learn's attributes).

    A variational mixture has a ``posterior``; its ``weights`` then only
    centre the E-step's rows (see ``_kernels``).
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    prec_chol: np.ndarray
    posterior: Optional[Posterior] = None

    @property
    def n_components(self):
        return self.means.shape[0]


class Prior(NamedTuple):
    """The priors of a variational mixture (scikit-learn's checked ``*_prior_`` attributes)."""

    weight_concentration_type: str
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: object


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
    nk = weight * parameters.weights
    m2 = model_scatter(parameters.covariances, reg_covar, nk, weight,
                       parameters.means.shape[1], parameters.covariance_type)
    return Stats(nk, parameters.means, m2, 0.0, float(weight))


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


def variational_step(stats, reg_covar, prior, covariance_type, iteration=None):
    """One variational M-step (scikit-learn's ``BayesianGaussianMixture._m_step``).

    Returns ``Parameters`` with their ``Posterior``; ``iteration`` as for `m_step`.
    """
    nk, xk, sk = estimate_parameters(stats, reg_covar, covariance_type)
    if prior.weight_concentration_type == "dirichlet_process":
        concentration = np.stack(
            (1.0 + nk, prior.weight_concentration + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0)))
        )
    else:
        concentration = prior.weight_concentration + nk
    mean_precision = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / mean_precision[:, None]
    degrees_of_freedom, covariances = wishart(nk, xk, sk, prior, mean_precision, covariance_type)
    posterior = Posterior(concentration, mean_precision, degrees_of_freedom, e_step_constants(
        concentration, mean_precision, degrees_of_freedom, prior.weight_concentration_type,
        means.shape[1]))
    return Parameters(covariance_type, nk / nk.sum(), means, covariances,
                      precision_cholesky(covariances, covariance_type, iteration), posterior)


def e_step_constants(concentration, mean_precision, degrees_of_freedom, prior_type, n_features):
    """Per-component log constants of the variational E-step, (K,).

    scikit-learn's ``_estimate_log_weights`` plus what its
    ``_estimate_log_prob`` adds to the Gaussian log-density of the
    normalised precisions: ``-D/2 log(dof) + (log_lambda - D / mean_precision) / 2``.
    """
    if prior_type == "dirichlet_process":
        digamma_sum = digamma(concentration[0] + concentration[1])
        log_weights = (digamma(concentration[0]) - digamma_sum + np.hstack(
            (0, np.cumsum(digamma(concentration[1]) - digamma_sum)[:-1])))
    else:
        log_weights = digamma(concentration) - digamma(np.sum(concentration))
    log_lambda = n_features * np.log(2.0) + np.sum(
        digamma(0.5 * (degrees_of_freedom - np.arange(n_features)[:, None])), 0)
    return (log_weights - 0.5 * n_features * np.log(degrees_of_freedom)
            + 0.5 * (log_lambda - n_features / mean_precision))


def variational_lower_bound(parameters, entropy, prior_type):
    """scikit-learn's ``BayesianGaussianMixture._compute_lower_bound``.

    ``parameters`` are those after the M-step, ``entropy`` the pass's
    (weighted) ``sum r log r`` of the E-step before it.
    """
    posterior, kind = parameters.posterior, REGISTRY[parameters.covariance_type]
    n_components, n_features = parameters.means.shape
    log_det = (kind.log_det(parameters.prec_chol, n_features)
               - 0.5 * n_features * np.log(posterior.degrees_of_freedom))
    log_wishart = kind.wishart_copies(n_components) * np.sum(
        log_wishart_norm(posterior.degrees_of_freedom, log_det, n_features))
    concentration = posterior.weight_concentration
    if prior_type == "dirichlet_process":
        log_norm_weight = -np.sum(betaln(concentration[0], concentration[1]))
    else:
        log_norm_weight = log_dirichlet_norm(concentration)
    return float(-entropy - log_wishart - log_norm_weight
                 - 0.5 * n_features * np.sum(np.log(posterior.mean_precision)))
