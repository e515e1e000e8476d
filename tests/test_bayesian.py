"""BayesianGaussianMixture: scikit-learn's variational mixture, fitted on Dask."""

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.utils.estimator_checks import check_estimator

import daskgmm
from daskgmm import BayesianGaussianMixture, cli

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture
from .test_parity import _fit

PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
FITTED = ["weights_", "mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
          "precisions_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def X():
    return make_mixture(n_samples=2500, n_features=3, n_components=3, seed=1)[0]


def assert_same_fit(ours, theirs, rtol):
    for name in FITTED:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol, atol=0,
                                   err_msg=name)
    np.testing.assert_allclose(np.asarray(ours.weight_concentration_),
                               np.asarray(theirs.weight_concentration_), rtol=rtol)
    # scikit-learn's tied bound is a (1,) array.
    np.testing.assert_allclose(ours.lower_bound_, np.ravel(theirs.lower_bound_), rtol=rtol)
    np.testing.assert_allclose(np.ravel(ours.lower_bounds_), np.ravel(theirs.lower_bounds_),
                               rtol=rtol)
    assert (ours.n_iter_, ours.converged_) == (theirs.n_iter_, theirs.converged_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("max_iter", [1, 5, pytest.param(30, marks=pytest.mark.slow)])
def test_matches_sklearn_for_every_chunking(X, covariance_type, prior_type, max_iter):
    """From scikit-learn's own k-means start (same random_state), on NumPy and Dask input."""
    kwargs = dict(n_components=4, covariance_type=covariance_type, tol=0, random_state=0,
                  weight_concentration_prior_type=prior_type, max_iter=max_iter)
    expected = _fit(SklearnBayesianGaussianMixture(**kwargs), X)
    numpy_fit = _fit(BayesianGaussianMixture(**kwargs), X)
    assert_same_fit(numpy_fit, expected, rtol=1e-6)
    # Dask input starts from k-means on a sample: give it the NumPy fit's start.
    start = _fit(BayesianGaussianMixture(**{**kwargs, "max_iter": 0}), X)
    chunkings = {"one chunk": -1, "97 rows": 97, "40 rows, merged by a tree": 40}
    fits = {}
    for name, rows in chunkings.items():
        fit = BayesianGaussianMixture(**{**kwargs, "max_iter": 0}).fit(X)
        fit.set_params(warm_start=True, max_iter=max_iter)
        fits[name] = _fit(fit, da.from_array(X, chunks=(rows, 3)))
    numpy_warm = _fit(start.set_params(warm_start=True, max_iter=max_iter), X)
    np.testing.assert_allclose(numpy_warm.means_, expected.means_, rtol=1e-6)
    for name, fit in fits.items():
        assert_same_fit(fit, fits["one chunk"], rtol=1e-9)
        assert_same_fit(fit, numpy_warm, rtol=1e-9)
        assert type(fit.means_) is np.ndarray, name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_continues_as_sklearn(X, covariance_type):
    kwargs = dict(n_components=4, covariance_type=covariance_type, tol=0, random_state=0,
                  max_iter=3, warm_start=True)
    ours, theirs = BayesianGaussianMixture(**kwargs), SklearnBayesianGaussianMixture(**kwargs)
    for _ in range(2):
        _fit(ours, X)
        _fit(theirs, X)
    assert_same_fit(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_params_and_n_init_as_sklearn(X, init_params):
    kwargs = dict(n_components=3, covariance_type="diag", tol=1e-8, random_state=3,
                  max_iter=20, n_init=3, init_params=init_params,
                  weight_concentration_prior=0.1, mean_precision_prior=0.5,
                  mean_prior=np.ones(3), degrees_of_freedom_prior=4.0,
                  covariance_prior=np.full(3, 2.0))
    ours = _fit(BayesianGaussianMixture(**kwargs), X)
    theirs = _fit(SklearnBayesianGaussianMixture(**kwargs), X)
    assert_same_fit(ours, theirs, rtol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-9)
    # Dask input runs the same initialisations at scale.
    dask_fit = _fit(BayesianGaussianMixture(**kwargs), da.from_array(X, chunks=(500, 3)))
    assert dask_fit.n_iter_ > 0 and np.isfinite(dask_fit.lower_bound_)


@pytest.mark.parametrize("given_priors", [False, True])
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_tied_point_starts_start_where_sklearn_starts(X, init_params, prior_type, given_priors):
    """scikit-learn's tied scatter from a start of one row per component takes
    X.T @ X over every row; NumPy input starts there, and Dask input as NumPy."""
    kwargs = dict(n_components=4, covariance_type="tied", init_params=init_params, tol=0,
                  random_state=0, max_iter=1, weight_concentration_prior_type=prior_type)
    if given_priors:
        kwargs.update(mean_prior=np.ones(3), covariance_prior=np.diag([2.0, 3.0, 4.0]))
    theirs = _fit(SklearnBayesianGaussianMixture(**kwargs), X)
    ours = _fit(BayesianGaussianMixture(**kwargs), X)
    assert_same_fit(ours, theirs, rtol=1e-6)
    for rows in (-1, 300):
        on_dask = _fit(BayesianGaussianMixture(**kwargs), da.from_array(X, chunks=(rows, 3)))
        assert_same_fit(on_dask, ours, rtol=1e-9)


def test_default_priors_come_from_one_exact_pass(X):
    shift = 1e6
    for covariance_type in COVARIANCE_TYPES:
        fit = _fit(BayesianGaussianMixture(n_components=2, covariance_type=covariance_type,
                                           max_iter=1), da.from_array(X + shift, chunks=(300, 3)))
        np.testing.assert_allclose(fit.mean_prior_ - shift, X.mean(axis=0), rtol=1e-9)
        expected = {"full": np.cov(X.T), "tied": np.cov(X.T),
                    "diag": np.var(X, axis=0, ddof=1),
                    "spherical": np.var(X, axis=0, ddof=1).mean()}[covariance_type]
        np.testing.assert_allclose(fit.covariance_prior_, expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_from_the_origin_fits_as_centred(X, covariance_type):
    """Random starts do not depend on the data: the same fit, shifted by 1e6."""
    shift = 1e6
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=10, tol=0,
                  init_params="random", random_state=0)
    centred = _fit(BayesianGaussianMixture(**kwargs), X)
    far = _fit(BayesianGaussianMixture(**kwargs), X + shift)
    np.testing.assert_allclose(far.means_ - shift, centred.means_, atol=1e-8)
    for name in ("covariances_", "degrees_of_freedom_", "weights_"):
        np.testing.assert_allclose(getattr(far, name), getattr(centred, name), rtol=1e-7,
                                   err_msg=name)
    theirs = _fit(SklearnBayesianGaussianMixture(**kwargs), X + shift)
    if covariance_type in ("diag", "spherical"):  # scikit-learn's E[x^2] - mu^2 loses digits
        error = np.max(np.abs(theirs.covariances_ / centred.covariances_ - 1))
        assert error > 1e-6


def test_sample_weight_equals_repeated_rows(X):
    weights = np.arange(len(X)) % 3
    kwargs = dict(n_components=3, tol=0, mean_prior=np.zeros(3),
                  covariance_prior=np.eye(3))
    start = _fit(BayesianGaussianMixture(**kwargs, max_iter=0, random_state=0), X)
    weighted = _fit(start.set_params(warm_start=True, max_iter=5), X, sample_weight=weights)
    again = _fit(BayesianGaussianMixture(**kwargs, max_iter=0, random_state=0), X)
    repeated = _fit(again.set_params(warm_start=True, max_iter=5), np.repeat(X, weights, axis=0))
    for name in FITTED:
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-9)
    np.testing.assert_allclose(weighted.lower_bound_, repeated.lower_bound_, rtol=1e-9)


@pytest.mark.parametrize("n_init", [1, 3])
@pytest.mark.parametrize("init_params, init_passes", [("kmeans", 2), ("random", 1)])
def test_passes_over_a_zarr_store(tmp_path, X, n_init, init_params, init_passes):
    """k-means: a sample, then one assignment pass that also gives the priors;
    random: one pass for the starts and the priors; then one pass per iteration."""
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(250, 3), dtype="f8")[:] = X
    stored, reads = counted_array(path)
    max_iter = 4
    fit = _fit(BayesianGaussianMixture(n_components=3, max_iter=max_iter, tol=0, n_init=n_init,
                                       init_params=init_params, random_state=0, cache=False),
               stored)
    assert fit.n_iter_ == max_iter
    assert reads["count"] == (init_passes + max_iter) * 10


@pytest.mark.slow
def test_fit_on_a_local_cluster(client, X):
    kwargs = dict(n_components=3, covariance_type="full", max_iter=5, tol=0, random_state=0)
    with dask.config.set(scheduler="threads"):
        local = _fit(BayesianGaussianMixture(**kwargs), da.from_array(X, chunks=(400, 3)))
    remote = _fit(BayesianGaussianMixture(**kwargs), da.from_array(X, chunks=(400, 3)))
    assert_same_fit(remote, local, rtol=1e-9)
    assert isinstance(remote.predict(da.from_array(X, chunks=(400, 3))), da.Array)


def test_bad_input_leaves_the_fitted_model(X):
    bgm = _fit(BayesianGaussianMixture(n_components=2, max_iter=3), X)
    before = {name: np.copy(getattr(bgm, name)) for name in FITTED}
    bad = X.copy()
    bad[2400, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bgm.fit(da.from_array(bad, chunks=(500, 3)))
    with pytest.raises(ValueError, match="degrees_of_freedom_prior"):
        bgm.set_params(degrees_of_freedom_prior=1.0).fit(X)
    with pytest.raises(ValueError, match="means"):
        bgm.set_params(degrees_of_freedom_prior=None, mean_prior=np.zeros(4)).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        bgm.set_params(mean_prior=None, n_components=10).fit(X[:5])
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(bgm, name), value)


def test_checkpoint_resumes_to_the_same_fit(tmp_path, X):
    kwargs = dict(n_components=3, covariance_type="tied", tol=0, random_state=0,
                  weight_concentration_prior_type="dirichlet_distribution")
    path = str(tmp_path / "state")
    _fit(BayesianGaussianMixture(**kwargs, max_iter=3, checkpoint=path), X)
    resumed = _fit(BayesianGaussianMixture(**kwargs, max_iter=7, checkpoint=path), X)
    straight = _fit(BayesianGaussianMixture(**kwargs, max_iter=7), X)
    assert_same_fit(resumed, straight, rtol=1e-12)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_save_load_and_info(tmp_path, X, prior_type, capsys):
    fit = _fit(BayesianGaussianMixture(n_components=6, max_iter=50, random_state=0,
                                       weight_concentration_prior_type=prior_type), X)
    path = str(tmp_path / "model")
    fit.save(path)
    loaded = daskgmm.load(path)
    assert type(loaded) is BayesianGaussianMixture
    assert loaded.get_params() == fit.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), fit.predict_proba(X))
    cli.main(["info", path])
    effective = int(np.sum(fit.weights_ > cli.EFFECTIVE_WEIGHT / 6))
    assert f"effective components {effective} " in capsys.readouterr().out


@pytest.mark.slow
def test_cli_fit_bayesian(tmp_path, X):
    data, model = str(tmp_path / "x.npy"), str(tmp_path / "model")
    np.save(data, X)
    cli.main(["fit", data, "--n-components", "5", "--bayesian", "--weight-concentration-prior",
              "dirichlet_distribution:0.01", "--output", model, "--quiet", "--random-state",
              "0"])
    loaded = daskgmm.load(model)
    assert loaded.weight_concentration_prior_type == "dirichlet_distribution"
    assert loaded.weight_concentration_prior_ == 0.01
    with pytest.raises(SystemExit):
        cli.main(["fit", data, "--n-components", "5", "--weight-concentration-prior",
                  "dirichlet", "--output", model])


@pytest.mark.slow
def test_check_estimator():
    failures = [r for r in check_estimator(BayesianGaussianMixture(), on_fail=None)
                if r["status"] == "failed"]
    assert failures == []
