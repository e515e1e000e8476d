"""nan_policy: EM over the observed entries against a naive row-by-row EM.

The reference below is written from the formulas of Ghahramani & Jordan
(1994) with plain loops over rows and components and the Gaussian density
written out; it shares no code with ``daskgmm``.
"""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from daskgmm import GaussianMixture

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture

N_COMPONENTS = 3
REG_COVAR = 1e-6
EPS10 = 10 * np.finfo(np.float64).eps
ITERATIONS = (1, 5, 30)


def _with_gaps(X, fraction, seed, all_missing_rows=(3, 17)):
    """X with ``fraction`` of its entries NaN at random, and some rows all NaN."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    X[rng.random(X.shape) < fraction] = np.nan
    X[list(all_missing_rows)] = np.nan
    return X


@pytest.fixture(scope="module")
def data():
    X, _ = make_mixture(n_samples=240, n_features=4, n_components=N_COMPONENTS, seed=3)
    return _with_gaps(X, 0.2, seed=4)


def _start(covariance_type, n_features=4):
    """An explicit start: weights, means, and per-type covariances."""
    rng = np.random.default_rng(7)
    weights = np.array([0.2, 0.3, 0.5])
    means = rng.normal(scale=3, size=(N_COMPONENTS, n_features))
    factor = rng.normal(size=(n_features, n_features)) / 2
    full = np.stack([factor @ factor.T + (1 + k) * np.eye(n_features)
                     for k in range(N_COMPONENTS)])
    covariances = {"full": full, "tied": full[0],
                   "diag": np.stack([np.diag(c) for c in full]),
                   "spherical": np.array([np.diag(c).mean() for c in full])}[covariance_type]
    return weights, means, covariances


def _as_full(covariances, covariance_type, n_features):
    """Per-type covariances as (K, D, D) matrices."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.stack([covariances] * N_COMPONENTS)
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in covariances])
    return np.stack([v * np.eye(n_features) for v in covariances])


def _precisions(covariances, covariance_type):
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / covariances


def _log_density(x, mean, covariance):
    """log N(x; mean, covariance) = -(d log 2 pi + log|covariance| + (x - mean)' covariance^-1
    (x - mean)) / 2, written out (scipy's ``multivariate_normal.logpdf`` gives the same and
    validates its arguments and takes an eigendecomposition on every call: half of the
    reference's time)."""
    diff = x - mean
    _, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (len(x) * np.log(2 * np.pi) + log_det + diff @ np.linalg.solve(covariance, diff))


def _naive_e_step(X, weights, means, full):
    """Per row and component: r, x_hat and C (Ghahramani & Jordan eq. 11-12); the
    mean observed log-likelihood of the rows with an observed entry."""
    n_samples, n_features = X.shape
    resp = np.zeros((n_samples, N_COMPONENTS))
    x_hat = np.zeros((n_samples, N_COMPONENTS, n_features))
    cond = np.zeros((n_samples, N_COMPONENTS, n_features, n_features))
    total, rows = 0.0, 0
    for n in range(n_samples):
        o = ~np.isnan(X[n])
        m = ~o
        if not o.any():
            continue
        log_p = np.array([
            np.log(weights[k]) + _log_density(X[n, o], means[k, o], full[k][np.ix_(o, o)])
            for k in range(N_COMPONENTS)])
        norm = np.logaddexp.reduce(log_p)
        total += norm
        rows += 1
        resp[n] = np.exp(log_p - norm)
        for k in range(N_COMPONENTS):
            x_hat[n, k] = X[n]
            if m.any():
                regression = full[k][np.ix_(m, o)] @ np.linalg.inv(full[k][np.ix_(o, o)])
                x_hat[n, k, m] = means[k, m] + regression @ (X[n, o] - means[k, o])
                cond[n, k][np.ix_(m, m)] = (full[k][np.ix_(m, m)]
                                            - regression @ full[k][np.ix_(o, m)])
    return resp, x_hat, cond, total / rows


def _naive_m_step(resp, x_hat, cond, covariance_type):
    """scikit-learn's M-step on the expected statistics: nk + 10 eps, reg_covar."""
    n_features = x_hat.shape[2]
    nk = resp.sum(axis=0) + EPS10
    means = np.einsum("nk,nkd->kd", resp, x_hat) / nk[:, None]
    scatter = np.zeros((N_COMPONENTS, n_features, n_features))
    for k in range(N_COMPONENTS):
        for n in range(len(resp)):
            diff = x_hat[n, k] - means[k]
            scatter[k] += resp[n, k] * (np.outer(diff, diff) + cond[n, k])
    if covariance_type == "full":
        covariances = scatter / nk[:, None, None] + REG_COVAR * np.eye(n_features)
    elif covariance_type == "tied":
        covariances = scatter.sum(axis=0) / nk.sum() + REG_COVAR * np.eye(n_features)
    else:
        variances = np.array([np.diag(s) for s in scatter]) / nk[:, None] + REG_COVAR
        covariances = variances if covariance_type == "diag" else variances.mean(axis=1)
    return nk / nk.sum(), means, covariances


def naive_em(X, covariance_type, n_iter):
    """``{iteration: (weights, means, covariances, lower_bound)}`` at ``ITERATIONS``."""
    weights, means, covariances = _start(covariance_type, X.shape[1])
    snapshots = {}
    for iteration in range(1, n_iter + 1):
        full = _as_full(covariances, covariance_type, X.shape[1])
        resp, x_hat, cond, bound = _naive_e_step(X, weights, means, full)
        weights, means, covariances = _naive_m_step(resp, x_hat, cond, covariance_type)
        if iteration in ITERATIONS:
            snapshots[iteration] = (weights, means, covariances, bound)
    return snapshots


@pytest.fixture(scope="module")
def reference(data):
    cache = {}

    def get(covariance_type):
        if covariance_type not in cache:
            cache[covariance_type] = naive_em(data, covariance_type, max(ITERATIONS))
        return cache[covariance_type]

    return get


def _model(covariance_type, max_iter, **kwargs):
    weights, means, covariances = _start(covariance_type)
    return GaussianMixture(
        N_COMPONENTS, covariance_type=covariance_type, max_iter=max_iter, tol=0,
        reg_covar=REG_COVAR, weights_init=weights, means_init=means,
        precisions_init=_precisions(covariances, covariance_type), **kwargs)


def _fit(model, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **kwargs)


INPUTS = {
    "numpy": lambda X: X,
    "dask-60": lambda X: da.from_array(X, chunks=(60, 4)),
    "dask-uneven": lambda X: da.from_array(X, chunks=((7, 100, 33, len(X) - 140), (2, 2))),
}


@pytest.mark.parametrize("max_iter", ITERATIONS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_equals_naive_em(data, reference, covariance_type, max_iter):
    weights, means, covariances, bound = reference(covariance_type)[max_iter]
    fits = {name: _fit(_model(covariance_type, max_iter, nan_policy="marginalize"), wrap(data))
            for name, wrap in INPUTS.items()}
    for name, fit in fits.items():
        np.testing.assert_allclose(fit.weights_, weights, rtol=1e-8, err_msg=name)
        np.testing.assert_allclose(fit.means_, means, rtol=1e-8, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(fit.covariances_, covariances, rtol=1e-8, atol=1e-10,
                                   err_msg=name)
        np.testing.assert_allclose(fit.lower_bound_, bound, rtol=1e-8, err_msg=name)
        assert fit.n_iter_ == max_iter
    for fit in fits.values():
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            np.testing.assert_allclose(getattr(fit, name), getattr(fits["numpy"], name),
                                       rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fit.lower_bounds_, fits["numpy"].lower_bounds_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_use_the_observed_marginal(data, covariance_type):
    fit = _fit(_model(covariance_type, 5, nan_policy="marginalize"), data)
    full = _as_full(fit.covariances_, covariance_type, data.shape[1])
    resp, _, _, _ = _naive_e_step(data, fit.weights_, fit.means_, full)
    holds_data = ~np.isnan(data).all(axis=1)
    log_lik = np.array([
        logsumexp([np.log(fit.weights_[k]) + multivariate_normal.logpdf(
            row[~np.isnan(row)], fit.means_[k, ~np.isnan(row)],
            full[k][np.ix_(~np.isnan(row), ~np.isnan(row))]) for k in range(N_COMPONENTS)])
        if holds_data[n] else 0.0 for n, row in enumerate(data)])
    proba = np.where(holds_data[:, None], resp, fit.weights_)
    for wrap in INPUTS.values():
        X = wrap(data)
        np.testing.assert_allclose(np.asarray(fit.predict_proba(X)), proba, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(np.asarray(fit.score_samples(X)), log_lik, rtol=1e-10)
        np.testing.assert_array_equal(np.asarray(fit.predict(X)), proba.argmax(axis=1))
        # Rows with nothing observed take no part in score, bic and aic.
        np.testing.assert_allclose(fit.score(X), log_lik[holds_data].mean(), rtol=1e-10)
        np.testing.assert_allclose(
            fit.bic(X), -2 * log_lik.sum() + fit._n_parameters() * np.log(holds_data.sum()),
            rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_complete_data_gives_the_raise_fit_under_every_policy(covariance_type):
    X, _ = make_mixture(n_samples=600, n_features=3, seed=1)
    for wrap in (lambda x: x, lambda x: da.from_array(x, chunks=(150, 3))):
        raised = _fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                      max_iter=20), wrap(X))
        for policy in ("omit", "marginalize"):
            fit = _fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                       max_iter=20, nan_policy=policy), wrap(X))
            for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
                np.testing.assert_array_equal(getattr(fit, name), getattr(raised, name))
            np.testing.assert_array_equal(fit.predict_proba(X), raised.predict_proba(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_omit_equals_a_fit_on_the_complete_rows(data, covariance_type):
    complete = ~np.isnan(data).any(axis=1)
    on_complete = _fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0),
                       data[complete])
    omitted = _fit(GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                   nan_policy="omit"), data)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(omitted, name), getattr(on_complete, name),
                                   rtol=1e-9, atol=1e-12)
    assert omitted.n_iter_ == on_complete.n_iter_
    np.testing.assert_allclose(omitted.lower_bound_, on_complete.lower_bound_, rtol=1e-10)
    # Dask input, from an explicit start: the same fit as on the complete rows.
    explicit = _fit(_model(covariance_type, 10, nan_policy="omit"),
                    da.from_array(data, chunks=(50, 4)))
    reference = _fit(_model(covariance_type, 10), data[complete])
    np.testing.assert_allclose(explicit.means_, reference.means_, rtol=1e-9)
    np.testing.assert_allclose(explicit.lower_bound_, reference.lower_bound_, rtol=1e-10)
    # At prediction, a row with NaN gets -1, NaN probabilities and log-likelihood.
    for X in (data, da.from_array(data, chunks=(50, 4))):
        labels = np.asarray(omitted.predict(X))
        np.testing.assert_array_equal(labels[~complete], -1)
        np.testing.assert_array_equal(labels[complete], on_complete.predict(data[complete]))
        assert np.isnan(np.asarray(omitted.predict_proba(X))[~complete]).all()
        assert np.isnan(np.asarray(omitted.score_samples(X))[~complete]).all()
        # bic and aic count the complete rows only.
        np.testing.assert_allclose(omitted.bic(X), omitted.bic(data[complete]), rtol=1e-12)
        np.testing.assert_allclose(omitted.aic(X), omitted.aic(data[complete]), rtol=1e-12)
        np.testing.assert_allclose(omitted.score(X), omitted.score(data[complete]), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_omit_keeps_a_complete_row_whose_sum_is_nan(covariance_type):
    """A complete row whose pairwise sum overflows to both infinities (its sum is
    NaN) takes part under "omit": the statistics are those of the rows without
    NaN, chosen here entry by entry."""
    from daskgmm._family import MaximumLikelihood
    from daskgmm._missing import CompleteRows
    from daskgmm._mstep import Parameters

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 8))
    X[3] = [1e308, 1e308, -1e308, -1e308, 0, 0, 0, 0]
    X[7, 2] = np.nan
    with np.errstate(over="ignore"):
        assert np.isnan(X[3].sum())
    means = rng.normal(size=(3, 8))
    roots = np.stack([np.eye(8) if covariance_type == "full" else np.ones(8)] * 3)
    parameters = Parameters(covariance_type, np.full(3, 1 / 3), means, roots, roots)
    without_nan = X[~np.isnan(X).any(axis=1)]
    omitted = CompleteRows(MaximumLikelihood()).statistics(X, None, parameters)
    reference = MaximumLikelihood().statistics(without_nan, None, parameters)
    assert omitted.weight == len(without_nan) == 19
    for name in reference._fields:
        np.testing.assert_array_equal(getattr(omitted, name), getattr(reference, name),
                                      err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_rows_with_nothing_observed_change_nothing(data, covariance_type):
    holds_data = ~np.isnan(data).all(axis=1)
    padded = np.insert(data, [0, 100, 100, 240], np.nan, axis=0)
    without = _fit(_model(covariance_type, 5, nan_policy="marginalize"), data[holds_data])
    for wrap in INPUTS.values():
        padded_fit = _fit(_model(covariance_type, 5, nan_policy="marginalize"), wrap(padded))
        for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
            np.testing.assert_allclose(getattr(padded_fit, name), getattr(without, name),
                                       rtol=1e-12, atol=1e-14)
        X = wrap(padded)
        np.testing.assert_allclose(np.asarray(padded_fit.predict_proba(X))[0],
                                   padded_fit.weights_)
        assert np.asarray(padded_fit.score_samples(X))[0] == 0.0
        np.testing.assert_allclose(padded_fit.bic(X), without.bic(data[holds_data]),
                                   rtol=1e-12)


def test_one_pass_per_iteration_on_a_store_with_gaps(tmp_path, data):
    path = str(tmp_path / "gaps.zarr")
    zarr.create_array(path, shape=data.shape, chunks=(40, 4), dtype="f8")[:] = data
    stored, reads = counted_array(path)
    fit = _fit(_model("full", 6, nan_policy="marginalize", cache=False), stored)
    assert fit.n_iter_ == 6
    assert reads["count"] == 6 * 6
    reference = _fit(_model("full", 6, nan_policy="marginalize"), data)
    np.testing.assert_allclose(fit.means_, reference.means_, rtol=1e-9)


@pytest.mark.parametrize("algorithm", ["batch", "incremental"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_observed_likelihood_never_decreases(covariance_type, algorithm):
    X, _ = make_mixture(n_samples=1500, n_features=5, seed=2, separation=2.0)
    X = _with_gaps(X, 0.3, seed=5)
    fit = _fit(GaussianMixture(4, covariance_type=covariance_type, nan_policy="marginalize",
                               random_state=1, max_iter=40, tol=0, algorithm=algorithm,
                               n_blocks=4),
               da.from_array(X, chunks=(150, 5)))
    # Incremental EM's laps never decrease after the first (its first lap is special).
    bounds = np.array(fit.lower_bounds_[1:] if algorithm == "incremental" else fit.lower_bounds_)
    assert (np.diff(bounds) >= -1e-10 * np.abs(bounds[1:])).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_exact_far_from_the_origin(data, covariance_type):
    """Data moved to 1e6 gives the same covariances and shifted means."""
    near = _fit(_model(covariance_type, 5, nan_policy="marginalize"), data)
    weights, means, covariances = _start(covariance_type)
    far = _fit(GaussianMixture(
        N_COMPONENTS, covariance_type=covariance_type, max_iter=5, tol=0, reg_covar=REG_COVAR,
        weights_init=weights, means_init=means + 1e6, nan_policy="marginalize",
        precisions_init=_precisions(covariances, covariance_type)),
        da.from_array(data + 1e6, chunks=(60, 4)))
    np.testing.assert_allclose(far.covariances_, near.covariances_, rtol=1e-7)
    np.testing.assert_allclose(far.means_ - 1e6, near.means_, atol=1e-8)


@pytest.mark.parametrize("policy", ["omit", "marginalize"])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_initialisation_works_on_data_with_gaps(policy, init_params):
    X, _ = make_mixture(n_samples=900, n_features=4, seed=6)
    X = _with_gaps(X, 0.1, seed=8)
    for wrap in (lambda x: x, lambda x: da.from_array(x, chunks=(200, 4))):
        fit = _fit(GaussianMixture(3, nan_policy=policy, init_params=init_params,
                                   random_state=0, max_iter=5), wrap(X))
        assert np.isfinite(fit.means_).all() and np.isfinite(fit.lower_bound_)


def test_fit_with_classes_on_data_with_gaps():
    X, labels = make_mixture(n_samples=900, n_features=4, seed=6)
    X = _with_gaps(X, 0.15, seed=9)
    fit = _fit(GaussianMixture(nan_policy="marginalize", max_iter=10),
               da.from_array(X, chunks=(300, 4)), y=labels)
    assert (np.asarray(fit.predict(X)) == labels).mean() > 0.9


def test_integer_weights_equal_repeated_rows(data):
    weights = np.random.default_rng(0).integers(0, 4, len(data))
    weighted = _fit(_model("full", 5, nan_policy="marginalize"), da.from_array(data, 50),
                    sample_weight=weights)
    repeated = _fit(_model("full", 5, nan_policy="marginalize"),
                    np.repeat(data, weights, axis=0))
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-9)
    np.testing.assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-10)


def test_float32_input_with_gaps(data):
    fit = _fit(_model("full", 5, nan_policy="marginalize"), data.astype(np.float32))
    reference = _fit(_model("full", 5, nan_policy="marginalize"), data)
    assert fit.means_.dtype == np.float32
    np.testing.assert_allclose(fit.means_, reference.means_, rtol=1e-5)


@pytest.mark.slow
def test_fit_on_a_local_cluster(client, data):
    remote = _fit(_model("full", 5, nan_policy="marginalize"), da.from_array(data, (60, 4)))
    with dask.config.set(scheduler="threads"):
        local = _fit(_model("full", 5, nan_policy="marginalize"), da.from_array(data, (60, 4)))
    np.testing.assert_allclose(remote.covariances_, local.covariances_, rtol=1e-12)


def _fitted(data):
    return _fit(_model("full", 3, nan_policy="marginalize"), data)


@pytest.mark.parametrize("wrap", [lambda x: x, lambda x: da.from_array(x, chunks=(60, 4))])
def test_bad_input_is_a_value_error_and_changes_nothing(data, wrap):
    fit = _fitted(data)
    before = {name: np.copy(value) for name, value in vars(fit).items()
              if name.endswith("_") and isinstance(value, np.ndarray)}
    infinite = np.nan_to_num(data)
    infinite[5, 1] = np.inf
    for policy in ("raise", "omit", "marginalize"):
        with pytest.raises(ValueError, match="infinity"):
            fit.set_params(nan_policy=policy).fit(wrap(infinite))
    infinite[7, 0] = np.nan  # still infinity under the policies that accept NaN
    for policy in ("omit", "marginalize"):
        with pytest.raises(ValueError, match="infinity"):
            fit.set_params(nan_policy=policy).fit(wrap(infinite))
    with pytest.raises(ValueError, match="Input X contains NaN.*nan_policy"):
        fit.set_params(nan_policy="raise").fit(wrap(data))
    column = data.copy()
    column[:, 2] = np.nan
    fit.set_params(nan_policy="marginalize", weights_init=None, means_init=None,
                   precisions_init=None)
    with pytest.raises(ValueError, match=r"no observed value in column\(s\) \[2\].*drop"):
        fit.fit(wrap(column))
    with pytest.raises(ValueError, match="sample_weight"):
        fit.fit(wrap(data), sample_weight=np.where(np.arange(len(data)) == 4, np.nan, 1.0))
    with pytest.raises(InvalidParameterError, match="nan_policy"):
        fit.set_params(nan_policy="ignore").fit(wrap(data))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(fit, name), value)


def test_predicting_nan_under_raise_names_nan_policy(data):
    complete = ~np.isnan(data).any(axis=1)
    fit = _fit(GaussianMixture(2, random_state=0), data[complete])
    for X in (data, da.from_array(data, chunks=(60, 4))):
        with pytest.raises(ValueError, match="Input X contains NaN.*nan_policy"):
            np.asarray(fit.predict(X))


def test_search_candidates_equal_standalone_fits(data):
    from daskgmm import GaussianMixtureIC

    for policy in ("omit", "marginalize"):
        search = _fit(GaussianMixtureIC(3, 3, covariance_type="diag", nan_policy=policy,
                                        random_state=0), data)
        alone = _fit(GaussianMixture(3, covariance_type="diag", nan_policy=policy,
                                     random_state=0), data)
        best = search.best_estimator_
        assert best.nan_policy == policy
        np.testing.assert_allclose(best.means_, alone.means_, rtol=1e-9)
        np.testing.assert_allclose(search.criterion_, alone.bic(data), rtol=1e-9)


def test_classifier_marginalizes_each_class():
    from daskgmm import GaussianMixtureClassifier

    X, labels = make_mixture(n_samples=900, n_features=4, seed=6)
    X = _with_gaps(X, 0.15, seed=9, all_missing_rows=(4,))
    classifier = _fit(GaussianMixtureClassifier(nan_policy="marginalize", tol=1e-12,
                                                max_iter=500), da.from_array(X, (300, 4)), y=labels)
    for code in range(3):
        alone = _fit(GaussianMixture(1, nan_policy="marginalize", tol=1e-12, max_iter=500),
                     X[labels == code])
        np.testing.assert_allclose(classifier.means_[code], alone.means_, rtol=1e-6)
        np.testing.assert_allclose(classifier.covariances_[code], alone.covariances_, rtol=1e-5)
    proba = classifier.predict_proba(X)
    np.testing.assert_allclose(proba[4], classifier.class_prior_)
    assert (classifier.predict(X) == labels).mean() > 0.9
    omitting = _fit(GaussianMixtureClassifier(nan_policy="omit"), X, y=labels)
    complete = ~np.isnan(X).any(axis=1)
    np.testing.assert_array_equal(omitting.predict(X)[~complete], -1)


def test_variational_mixture_omits_rows(data):
    from daskgmm import BayesianGaussianMixture

    complete = ~np.isnan(data).any(axis=1)

    def fit(X, **kwargs):
        return _fit(BayesianGaussianMixture(n_components=3, random_state=0, max_iter=20,
                                            **kwargs), X)

    # In memory: the start, priors and fit of the complete rows.
    omitted, alone = fit(data, nan_policy="omit"), fit(data[complete])
    np.testing.assert_allclose(omitted.means_, alone.means_, rtol=1e-9)
    # Dask: the default priors are those of the complete rows.
    omitted = fit(da.from_array(data, chunks=(50, 4)), nan_policy="omit")
    alone = fit(da.from_array(data[complete], chunks=(50, 4)))
    np.testing.assert_allclose(omitted.mean_prior_, alone.mean_prior_, rtol=1e-12)
    np.testing.assert_allclose(omitted.covariance_prior_, alone.covariance_prior_, rtol=1e-12)


def test_marginalize_starts_from_the_complete_rows_when_they_suffice(data):
    complete = ~np.isnan(data).any(axis=1)
    assert complete.mean() > 0.1  # COMPLETE_SHARE: the complete rows suffice
    start = _fit(GaussianMixture(3, nan_policy="marginalize", random_state=0, max_iter=0),
                 data)
    alone = _fit(GaussianMixture(3, random_state=0, max_iter=0), data[complete])
    np.testing.assert_allclose(start.means_, alone.means_, rtol=1e-12)
    # Too few complete rows: every row with data, NaN filled by column means.
    sparse = _with_gaps(np.nan_to_num(data), 0.5, seed=3)
    assert (~np.isnan(sparse).any(axis=1)).mean() < 0.1
    filled = np.where(np.isnan(sparse), np.nanmean(sparse, axis=0), sparse)
    holds_data = ~np.isnan(sparse).all(axis=1)
    start = _fit(GaussianMixture(3, nan_policy="marginalize", random_state=0, max_iter=0),
                 sparse)
    alone = _fit(GaussianMixture(3, random_state=0, max_iter=0), filled[holds_data])
    np.testing.assert_allclose(start.means_, alone.means_, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_of_rows_read_in_place_equal_those_of_the_rows_taken(covariance_type,
                                                                        dtype):
    """`_kernels.em_statistics` of a row index (the complete rows of a block with
    NaN, swept in place) equals that of the rows copied out, blocks of rows and
    sample weights included, far from the origin."""
    from daskgmm import _kernels
    from daskgmm._mstep import Parameters

    rng = np.random.default_rng(3)
    X = (1e5 + rng.normal(size=(2500, 5))).astype(dtype)
    X[rng.random(2500) < 0.3, 2] = np.nan
    rows = np.flatnonzero(~np.isnan(X).any(axis=1))
    sample_weight = rng.uniform(0.5, 2, size=len(rows))
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                            max_iter=2).fit(X[rows].astype(np.float64))
    parameters = Parameters(covariance_type, model.weights_, model.means_, None,
                            model.precisions_cholesky_)
    arguments = (parameters.weights, parameters.means, parameters.prec_chol, covariance_type,
                 None, True)
    in_place = _kernels.em_statistics(X, sample_weight, *arguments, rows=rows)
    taken = _kernels.em_statistics(X[rows], sample_weight, *arguments)
    for name in taken._fields:
        np.testing.assert_allclose(getattr(in_place, name), getattr(taken, name), rtol=1e-13,
                                   atol=0, err_msg=name)
    no_rows = _kernels.em_statistics(X, np.empty(0), *arguments, rows=np.empty(0, dtype=int))
    assert no_rows.weight == 0 and not no_rows.nk.any()
