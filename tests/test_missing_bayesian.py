"""BayesianGaussianMixture with nan_policy='marginalize' against a naive row-by-row reference.

The reference is the structured mean field q(Z, X_mis) q(theta), written
here from its formulas with plain loops over rows and components and
scipy's densities. With Lambda_k = nu_k W_k (covariance Sigma_k =
scikit-learn's ``covariances_``) and m_k the posterior means:

- E-step: log rho_nk = log N(x_o; m_ko, Sigma_k,oo) + c_k, with c_k =
  E[log pi_k] + (E[log |Lambda_k|] - log |nu_k W_k|) / 2 - D / (2 beta_k);
- q(x_m | x_o, k) = N(m_km + Sigma_mo Sigma_oo^-1 (x_o - m_ko), Sigma_mm -
  Sigma_mo Sigma_oo^-1 Sigma_om): the expected statistics add its mean and
  covariance, and scikit-learn's own variational M-step helpers
  (``_estimate_weights``, ``_estimate_means``, ``_estimate_precisions``)
  run on them;
- the bound: scikit-learn's ``_compute_lower_bound`` plus sum r_nk H_nk, H
  the entropy of q(x_m | x_o, k).

The fits start from one explicit posterior (a warm start), with every prior
given, so that no initialisation is involved.
"""

import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.special import digamma, logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from daskgmm import BayesianGaussianMixture

from .conftest import COVARIANCE_TYPES, make_mixture

K = 3
D = 4
REG_COVAR = 1e-6
EPS10 = 10 * np.finfo(np.float64).eps
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
SNAPSHOTS = (1, 6)
POSTERIOR = ["weights_", "mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
             "precisions_cholesky_"]


@pytest.fixture(scope="module")
def data():
    X, _ = make_mixture(n_samples=120, n_features=D, n_components=K, seed=11)
    rng = np.random.default_rng(12)
    X[rng.random(X.shape) < 0.25] = np.nan
    X[[5, 77]] = np.nan  # rows with nothing observed take no part
    return X


def _priors(covariance_type):
    scale = {"full": 1.5 * np.eye(D), "tied": 1.5 * np.eye(D), "diag": np.full(D, 1.5),
             "spherical": 1.5}[covariance_type]
    return dict(weight_concentration_prior=0.5, mean_precision_prior=0.8,
                mean_prior=np.full(D, 0.3), degrees_of_freedom_prior=D + 0.5,
                covariance_prior=scale)


def _start(covariance_type, prior_type):
    """An explicit posterior, as scikit-learn's fitted attributes."""
    rng = np.random.default_rng(13)
    factor = rng.normal(size=(D, D)) / 2
    full = np.stack([factor @ factor.T + (1 + k) * np.eye(D) for k in range(K)])
    covariances = {"full": full, "tied": full[0],
                   "diag": np.stack([np.diag(c) for c in full]),
                   "spherical": np.array([np.diag(c).mean() for c in full])}[covariance_type]
    if prior_type == "dirichlet_process":
        concentration = (np.array([4.0, 3.0, 2.0]), np.array([6.0, 3.0, 1.0]))
        weights = concentration[0] / (concentration[0] + concentration[1])
        weights = weights * np.concatenate([[1], np.cumprod(1 - weights)[:-1]])
    else:
        concentration = np.array([3.0, 5.0, 8.0])
        weights = concentration / concentration.sum()
    return dict(
        weight_concentration_=concentration, weights_=weights / weights.sum(),
        mean_precision_=np.array([2.0, 5.0, 9.0]), means_=rng.normal(scale=3, size=(K, D)),
        degrees_of_freedom_=D + 3.0 if covariance_type == "tied" else D + np.array([2.0, 3, 6]),
        covariances_=covariances,
        precisions_cholesky_=_compute_precision_cholesky(covariances, covariance_type))


def _as_full(covariances, covariance_type):
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.stack([covariances] * K)
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in covariances])
    return np.stack([v * np.eye(D) for v in covariances])


def _log_constants(posterior, prior_type):
    """c_k: E[log pi_k] + (E[log |Lambda_k|] - log |nu_k W_k|) / 2 - D / (2 beta_k)."""
    if prior_type == "dirichlet_process":
        a, b = posterior.weight_concentration_
        stick = digamma(a) - digamma(a + b)
        rest = digamma(b) - digamma(a + b)
        e_log_pi = np.array([stick[k] + rest[:k].sum() for k in range(K)])
    else:
        alpha = posterior.weight_concentration_
        e_log_pi = digamma(alpha) - digamma(alpha.sum())
    nu = np.broadcast_to(posterior.degrees_of_freedom_, (K,))
    # E[log |Lambda|] = sum_i digamma((nu - i) / 2) + D log 2 + log |W|, |nu W| = nu^D |W|.
    log_det_ratio = np.array([sum(digamma((nu[k] - i) / 2) for i in range(D)) + D * np.log(2)
                              - D * np.log(nu[k]) for k in range(K)])
    return e_log_pi + 0.5 * log_det_ratio - D / (2 * posterior.mean_precision_)


def _log_normal(x, mean, covariance):
    """log N(x; mean, covariance), from its textbook formula."""
    deviation = x - mean
    return -0.5 * (len(x) * np.log(2 * np.pi) + np.linalg.slogdet(covariance)[1]
                   + deviation @ np.linalg.solve(covariance, deviation))


def _naive_e_step(X, posterior, covariance_type, prior_type):
    """Per row with an observed entry: log rho (n, K), x_hat (n, K, D), C (n, K, D, D)
    and sum_k r_k H_k (n,)."""
    full = _as_full(posterior.covariances_, covariance_type)
    constants = _log_constants(posterior, prior_type)
    rows = [row for row in X if not np.isnan(row).all()]
    log_rho = np.zeros((len(rows), K))
    x_hat = np.zeros((len(rows), K, D))
    cond = np.zeros((len(rows), K, D, D))
    entropies = np.zeros((len(rows), K))
    for n, row in enumerate(rows):
        o, m = ~np.isnan(row), np.isnan(row)
        for k in range(K):
            sigma = full[k]
            log_rho[n, k] = constants[k] + _log_normal(row[o], posterior.means_[k, o],
                                                       sigma[np.ix_(o, o)])
            x_hat[n, k] = row
            if m.any():
                regression = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
                x_hat[n, k, m] = posterior.means_[k, m] + regression @ (
                    row[o] - posterior.means_[k, o])
                schur = sigma[np.ix_(m, m)] - regression @ sigma[np.ix_(o, m)]
                cond[n, k][np.ix_(m, m)] = schur
                entropies[n, k] = 0.5 * (m.sum() * np.log(2 * np.pi * np.e)
                                         + np.linalg.slogdet(schur)[1])
    resp = np.exp(log_rho - logsumexp(log_rho, axis=1)[:, None])
    return log_rho, resp, x_hat, cond, (resp * entropies).sum(axis=1)


def _naive_statistics(resp, x_hat, cond, covariance_type):
    """nk, xk, sk of scikit-learn's ``_estimate_gaussian_parameters`` on the expected rows."""
    nk = resp.sum(axis=0) + EPS10
    xk = np.einsum("nk,nkd->kd", resp, x_hat) / nk[:, None]
    scatter = np.zeros((K, D, D))
    for n in range(len(resp)):
        for k in range(K):
            diff = x_hat[n, k] - xk[k]
            scatter[k] += resp[n, k] * (np.outer(diff, diff) + cond[n, k])
    if covariance_type == "full":
        sk = scatter / nk[:, None, None] + REG_COVAR * np.eye(D)
    elif covariance_type == "tied":
        sk = scatter.sum(axis=0) / nk.sum() + REG_COVAR * np.eye(D)
    else:
        sk = np.array([np.diag(s) for s in scatter]) / nk[:, None] + REG_COVAR
        sk = sk if covariance_type == "diag" else sk.mean(axis=1)
    return nk, xk, sk


def naive_fit(X, covariance_type, prior_type, n_iter):
    """``{iteration: (scikit-learn's attributes, bounds so far)}`` at `SNAPSHOTS`."""
    model = SklearnBayesianGaussianMixture(
        n_components=K, covariance_type=covariance_type, reg_covar=REG_COVAR,
        weight_concentration_prior_type=prior_type, **_priors(covariance_type))
    model._check_parameters(X)
    for name, value in _start(covariance_type, prior_type).items():
        setattr(model, name, value)
    snapshots, bounds = {}, []
    for iteration in range(1, n_iter + 1):
        log_rho, resp, x_hat, cond, entropy = _naive_e_step(X, model, covariance_type,
                                                            prior_type)
        nk, xk, sk = _naive_statistics(resp, x_hat, cond, covariance_type)
        model._estimate_weights(nk)
        model._estimate_means(nk, xk)
        model._estimate_precisions(nk, xk, sk)
        log_resp = log_rho - logsumexp(log_rho, axis=1)[:, None]
        bounds.append(float(np.ravel(model._compute_lower_bound(log_resp, None))[0])
                      + entropy.sum())
        if iteration in SNAPSHOTS:
            model._set_parameters(model._get_parameters())
            snapshots[iteration] = ({name: np.copy(getattr(model, name)) for name in POSTERIOR}
                                    | {"weight_concentration_": np.array(
                                        model.weight_concentration_)}, list(bounds))
    return snapshots


@pytest.fixture(scope="module")
def reference(data):
    cache = {}

    def get(covariance_type, prior_type):
        if (covariance_type, prior_type) not in cache:
            cache[covariance_type, prior_type] = naive_fit(data, covariance_type, prior_type,
                                                           max(SNAPSHOTS))
        return cache[covariance_type, prior_type]

    return get


def _fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def _from_start(covariance_type, prior_type, max_iter, nan_policy="marginalize"):
    """Our estimator at the explicit start, to continue with ``warm_start``."""
    model = BayesianGaussianMixture(
        n_components=K, covariance_type=covariance_type, reg_covar=REG_COVAR, tol=0,
        weight_concentration_prior_type=prior_type, max_iter=0, random_state=0,
        init_params="random", nan_policy=nan_policy, **_priors(covariance_type))
    X, _ = make_mixture(n_samples=20, n_features=D, n_components=K, seed=14)
    _fit(model, X)  # any complete data: only the fitted state's form is kept
    for name, value in _start(covariance_type, prior_type).items():
        setattr(model, name, value)
    return model.set_params(warm_start=True, max_iter=max_iter)


INPUTS = {
    "numpy": lambda X: X,
    "dask-40": lambda X: da.from_array(X, chunks=(40, D)),
    "dask-uneven": lambda X: da.from_array(X, chunks=((9, 80, 31), (1, 3))),
}


def _attributes(fit):
    return {name: np.asarray(getattr(fit, name)) for name in POSTERIOR} | {
        "weight_concentration_": np.array(fit.weight_concentration_)}


@pytest.mark.parametrize("max_iter", SNAPSHOTS)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_equals_naive_mean_field(data, reference, covariance_type, prior_type, max_iter):
    expected, bounds = reference(covariance_type, prior_type)[max_iter]
    fits = {name: _fit(_from_start(covariance_type, prior_type, max_iter), wrap(data))
            for name, wrap in INPUTS.items()}
    for name, fit in fits.items():
        assert fit.n_iter_ == max_iter
        for attribute, value in _attributes(fit).items():
            np.testing.assert_allclose(value, expected[attribute], rtol=1e-8, atol=1e-10,
                                       err_msg=f"{name} {attribute}")
        np.testing.assert_allclose(fit.lower_bounds_, bounds, rtol=1e-8, err_msg=name)
        np.testing.assert_allclose(fit.lower_bound_, bounds[-1], rtol=1e-8, err_msg=name)
    for name, fit in fits.items():  # the chunkings agree more closely with each other
        for attribute, value in _attributes(fit).items():
            np.testing.assert_allclose(value, _attributes(fits["numpy"])[attribute], rtol=1e-9,
                                       atol=1e-12, err_msg=f"{name} {attribute}")
        np.testing.assert_allclose(fit.lower_bounds_, fits["numpy"].lower_bounds_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_on_rows_with_nan(data, covariance_type):
    prior_type = "dirichlet_process"
    fit = _fit(_from_start(covariance_type, prior_type, 3), data)
    holds_data = ~np.isnan(data).all(axis=1)
    log_rho, resp, _, _, _ = _naive_e_step(data, fit, covariance_type, prior_type)
    proba = np.tile(fit.weights_, (len(data), 1))  # nothing observed: the weights
    proba[holds_data] = resp
    scores = np.zeros(len(data))
    scores[holds_data] = logsumexp(log_rho, axis=1)
    for name, wrap in INPUTS.items():
        X = wrap(data)
        np.testing.assert_allclose(np.asarray(fit.predict_proba(X)), proba, rtol=1e-9,
                                   atol=1e-12, err_msg=name)
        np.testing.assert_allclose(np.asarray(fit.score_samples(X)), scores, rtol=1e-10,
                                   err_msg=name)
        np.testing.assert_array_equal(np.asarray(fit.predict(X)), proba.argmax(axis=1))
        np.testing.assert_allclose(fit.score(X), scores[holds_data].mean(), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_complete_data_gives_the_raise_fit(covariance_type):
    X, _ = make_mixture(n_samples=200, n_features=3, n_components=K, seed=15)
    for wrap in (lambda x: x, lambda x: da.from_array(x, chunks=(70, 3))):
        fits = {policy: _fit(BayesianGaussianMixture(
            n_components=K, covariance_type=covariance_type, random_state=0, max_iter=8,
            nan_policy=policy), wrap(X)) for policy in ("raise", "omit", "marginalize")}
        for policy, fit in fits.items():
            for name, value in _attributes(fit).items():
                np.testing.assert_allclose(value, _attributes(fits["raise"])[name], rtol=1e-12,
                                           atol=1e-14, err_msg=f"{policy} {name}")
            np.testing.assert_allclose(fit.lower_bounds_, fits["raise"].lower_bounds_,
                                       rtol=1e-12)
            np.testing.assert_allclose(fit.predict_proba(X), fits["raise"].predict_proba(X),
                                       rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bound_never_decreases(covariance_type, prior_type):
    X, _ = make_mixture(n_samples=300, n_features=5, n_components=4, seed=16)
    X[np.random.default_rng(17).random(X.shape) < 0.3] = np.nan
    fit = _fit(BayesianGaussianMixture(
        n_components=4, covariance_type=covariance_type, weight_concentration_prior_type=prior_type,
        nan_policy="marginalize", random_state=1, max_iter=25, tol=0), X)
    bounds = np.array(fit.lower_bounds_)
    assert (np.diff(bounds) >= -1e-10 * np.abs(bounds[1:])).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariance_record_fields_that_missing_values_read(covariance_type):
    """``separable``, ``precision_roots`` and ``pooled_m2`` against the covariances
    (the fields `daskgmm._missing` dispatches on instead of type names)."""
    from daskgmm._covariance import REGISTRY, weighted_outer

    kind = REGISTRY[covariance_type]
    covariances = _start(covariance_type, "dirichlet_distribution")["covariances_"]
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    roots = kind.precision_roots(prec_chol, D)
    full = _as_full(covariances, covariance_type)
    if kind.separable:
        np.testing.assert_allclose(1 / np.square(roots), np.diagonal(full, axis1=1, axis2=2))
        assert all(np.count_nonzero(c - np.diag(np.diag(c))) == 0 for c in full)
    else:
        precisions = roots @ np.swapaxes(roots, 1, 2)
        expected = np.linalg.inv(full[:len(roots)])
        np.testing.assert_allclose(precisions, expected, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(18)
    coef, delta = rng.random(K), rng.normal(size=(K, D))
    per_component = (coef[:, None] * np.square(delta) if kind.separable
                     else coef[:, None, None] * delta[:, :, None] * delta[:, None, :])
    np.testing.assert_allclose(kind.pooled_m2(per_component),
                               weighted_outer(coef, delta, covariance_type), rtol=1e-12)
