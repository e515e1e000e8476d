"""The model-family seam: a family's E-step of one block against scikit-learn, and a new
family plugged into an estimator.

The statistics of a block are checked against scikit-learn's own E-step
(``_estimate_log_prob_resp`` of its estimator holding the same parameters)
and the sufficient statistics written here from their definitions; the new
family (a Dirichlet prior on the weights, MAP EM) against a naive EM
written here from the formulas.
"""

import dataclasses

import dask.array as da
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from daskgmm import BayesianGaussianMixture, GaussianMixture
from daskgmm._family import MaximumLikelihood, Variational, mean_loglik
from daskgmm._missing import NAN_POLICIES
from daskgmm._mstep import Parameters

from .conftest import COVARIANCE_TYPES, make_mixture

FAMILIES = ["maximum likelihood", "variational"]
# The families with their weight priors (EM has none).
WITH_PRIORS = [("maximum likelihood", None), ("variational", "dirichlet_process"),
               ("variational", "dirichlet_distribution")]


@pytest.fixture(scope="module")
def X():
    """Overlapping components: the rows' ``sum r log r`` is far from 0."""
    return make_mixture(n_samples=600, n_features=3, n_components=3, seed=4, separation=1.0)[0]


def _sklearn_model(family, covariance_type, prior_type, X):
    """A scikit-learn mixture after two iterations (parameters away from any start)."""
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=2, tol=0,
                  random_state=0)
    if family == "variational":
        model = SklearnBayesianGaussianMixture(weight_concentration_prior_type=prior_type,
                                               **kwargs)
    else:
        model = SklearnGaussianMixture(**kwargs)
    with pytest.warns(ConvergenceWarning):  # tol=0: no convergence
        return model.fit(X)


def _family_and_parameters(family, model):
    """Our family and ``Parameters`` of the scikit-learn ``model`` (the variational
    ones through our estimator, which reads its fitted attributes)."""
    if family == "maximum likelihood":
        return MaximumLikelihood(), Parameters(model.covariance_type, model.weights_,
                                               model.means_, model.covariances_,
                                               model.precisions_cholesky_)
    ours = BayesianGaussianMixture(
        n_components=3, covariance_type=model.covariance_type,
        weight_concentration_prior_type=model.weight_concentration_prior_type)
    for name in ("weights_", "weight_concentration_", "mean_precision_", "means_",
                 "degrees_of_freedom_", "covariances_", "precisions_cholesky_"):
        setattr(ours, name, getattr(model, name))
    return Variational(), ours._parameters()


def _reference_statistics(model, X, sample_weight, covariance_type, with_entropy):
    """nk, block means, moments about them (the type's layout), log-likelihood, weight
    and sum r log r, from scikit-learn's E-step and the definitions."""
    log_norm, log_resp = model._estimate_log_prob_resp(X)
    resp = np.exp(log_resp)
    weighted = resp * sample_weight[:, None]
    nk = weighted.sum(axis=0)
    means = weighted.T @ X / nk[:, None]
    full = np.stack([(weighted[:, k, None] * (X - means[k])).T @ (X - means[k])
                     for k in range(len(nk))])
    m2 = {"full": full, "tied": full.sum(axis=0),
          "diag": np.diagonal(full, axis1=1, axis2=2),
          "spherical": np.trace(full, axis1=1, axis2=2)}[covariance_type]
    entropy = np.sum(weighted * log_resp) if with_entropy else 0.0
    return nk, means, m2, log_norm @ sample_weight, sample_weight.sum(), entropy


def _assert_statistics(stats, parameters, reference, rtol=1e-9):
    nk, means, m2, loglik, weight, entropy = reference
    np.testing.assert_allclose(stats.nk, nk, rtol=rtol)
    # The statistics' means are relative to the model's (`_kernels.reference_means`).
    np.testing.assert_allclose(parameters.means + stats.mean, means, rtol=rtol,
                               atol=rtol * np.abs(means).max())
    np.testing.assert_allclose(stats.m2, m2, rtol=rtol, atol=rtol * np.abs(m2).max())
    assert stats.loglik == pytest.approx(loglik, rel=rtol)
    assert stats.weight == pytest.approx(weight, rel=1e-13)
    assert stats.entropy == pytest.approx(entropy, rel=rtol, abs=rtol * nk.sum())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(("family", "prior_type"), WITH_PRIORS)
def test_block_statistics_equal_sklearns_e_step(X, family, covariance_type, prior_type):
    """Every family, bare and under every nan_policy, on complete rows: the statistics
    of scikit-learn's E-step with the same parameters (the variational one with its
    posterior's constants and sum r log r, EM's with log pi_k and none)."""
    model = _sklearn_model(family, covariance_type, prior_type, X)
    base, parameters = _family_and_parameters(family, model)
    sample_weight = np.random.default_rng(0).uniform(0, 2, len(X))
    reference = _reference_statistics(model, X, sample_weight, covariance_type,
                                      with_entropy=family == "variational")
    if family == "variational":
        assert -reference[5] > 1e-3 * reference[4]  # an entropy far above the tolerance
    for wrapped in [base, *(policy(base) for policy in NAN_POLICIES.values())]:
        _assert_statistics(wrapped.statistics(X, sample_weight, parameters), parameters,
                           reference)
    weighted = model._estimate_weighted_log_prob(X)
    for wrapped in NAN_POLICIES.values():
        np.testing.assert_allclose(wrapped(base).weighted_log_prob(X, parameters), weighted,
                                   rtol=1e-10)
        np.testing.assert_allclose(wrapped(base).score_samples(X, parameters),
                                   logsumexp(weighted, axis=1), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_omitted_rows_take_no_part(X, family, covariance_type):
    """nan_policy='omit' on rows some of which hold NaN: the complete rows' statistics
    of scikit-learn's E-step; the rows with NaN get NaN as log-densities."""
    model = _sklearn_model(family, covariance_type, "dirichlet_process", X)
    base, parameters = _family_and_parameters(family, model)
    holes = X.copy()
    incomplete = np.random.default_rng(1).random(len(X)) < 0.3
    holes[incomplete, 1] = np.nan
    sample_weight = np.ones(len(X))
    reference = _reference_statistics(model, X[~incomplete], sample_weight[~incomplete],
                                      covariance_type, with_entropy=family == "variational")
    omit = NAN_POLICIES["omit"](base)
    _assert_statistics(omit.statistics(holes, sample_weight, parameters), parameters, reference)
    weighted = omit.weighted_log_prob(holes, parameters)
    assert np.isnan(weighted[incomplete]).all()
    np.testing.assert_allclose(weighted[~incomplete],
                               model._estimate_weighted_log_prob(X[~incomplete]), rtol=1e-10)
    with pytest.raises(ValueError, match="nan_policy='marginalize'"):
        NAN_POLICIES["raise"](base).statistics(holes, None, parameters)


# --------------------------------------------------------- a new family plugs in


@dataclasses.dataclass(frozen=True)
class DirichletWeights(MaximumLikelihood):
    """MAP EM with a symmetric Dirichlet(alpha) prior on the weights (alpha >= 1):
    pi_k = (N_k + alpha - 1) / (N + K (alpha - 1)); means and covariances as EM's.
    The bound of a pass is its mean log posterior (log-likelihood plus the log prior
    of the weights its E-step had, up to a constant) per unit of row weight."""

    alpha: float = 1.0

    def update(self, stats, previous, reg_covar, params, iteration):
        parameters, _ = super().update(stats, previous, reg_covar, params, iteration)
        pseudo = self.alpha - 1
        weights = (stats.nk + pseudo) / (stats.nk.sum() + len(stats.nk) * pseudo)
        log_prior = pseudo * np.sum(np.log(previous.weights))
        return (parameters._replace(weights=weights),
                mean_loglik(stats) + log_prior / float(stats.weight))


class DirichletWeightsMixture(GaussianMixture):
    """A GaussianMixture fitted by MAP EM on its weights: the estimator's only change."""

    _model_family = DirichletWeights(alpha=30.0)


def _naive_map_em(X, weights, means, covariances, alpha, n_iter):
    """MAP EM for a full-covariance mixture, row by row from the formulas."""
    n_components = len(weights)
    for _ in range(n_iter):
        log_prob = np.stack([np.log(weights[k])
                             + multivariate_normal(means[k], covariances[k]).logpdf(X)
                             for k in range(n_components)], axis=1)
        resp = np.exp(log_prob - logsumexp(log_prob, axis=1, keepdims=True))
        nk = resp.sum(axis=0)
        weights = (nk + alpha - 1) / (len(X) + n_components * (alpha - 1))
        means = resp.T @ X / nk[:, None]
        covariances = np.stack([(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k]
                                + 1e-6 * np.eye(X.shape[1]) for k in range(n_components)])
    return weights, means, covariances


@pytest.mark.parametrize("chunks", [-1, 70])
def test_a_new_family_plugs_into_the_estimator(X, chunks):
    """A family subclassing EM's with its own M-step, set as an estimator's
    ``_model_family``, fits by MAP EM on NumPy and Dask input (the engine, the
    passes and nan_policy unchanged), as the naive MAP EM from the same start; its
    weights differ from EM's."""
    with pytest.warns(ConvergenceWarning):
        start = SklearnGaussianMixture(3, max_iter=1, tol=0, random_state=0).fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)
    expected = _naive_map_em(X, start.weights_, start.means_, start.covariances_, 30.0, 4)
    fit = DirichletWeightsMixture(3, max_iter=4, tol=0, **init)
    with pytest.warns(ConvergenceWarning):  # tol=0: no convergence
        fit.fit(X if chunks == -1 else da.from_array(X, chunks=(chunks, 3)))
    for name, value in zip(("weights_", "means_", "covariances_"), expected):
        np.testing.assert_allclose(getattr(fit, name), value, rtol=1e-8, err_msg=name)
    with pytest.warns(ConvergenceWarning):
        em = GaussianMixture(3, max_iter=4, tol=0, **init).fit(X)
    assert np.abs(em.weights_ - fit.weights_).max() > 1e-3
