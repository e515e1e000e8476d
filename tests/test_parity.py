"""Fitted parameters match scikit-learn's from the same initial parameters."""

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from daskgmm import GaussianMixture

from .conftest import COVARIANCE_TYPES, make_mixture

FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]


@pytest.fixture(scope="module")
def X():
    return make_mixture(n_samples=2500, n_features=3, n_components=3, seed=1)[0]


def _start(X, covariance_type, n_components=3):
    """Initial parameters taken from one k-means-started scikit-learn iteration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = SklearnGaussianMixture(
            n_components, covariance_type=covariance_type, max_iter=1, random_state=0
        ).fit(X)
    return dict(
        n_components=n_components,
        covariance_type=covariance_type,
        weights_init=first.weights_,
        means_init=first.means_,
        precisions_init=first.precisions_,
        tol=0,
    )


def _fit(estimator, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **kwargs)


def assert_same_fit(ours, theirs, rtol):
    for name in FITTED:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol, atol=0,
                                   err_msg=name)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=rtol)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=rtol)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 5, pytest.param(30, marks=pytest.mark.slow)])
def test_matches_sklearn_for_every_chunking(X, covariance_type, max_iter):
    start = _start(X, covariance_type)
    expected = _fit(SklearnGaussianMixture(max_iter=max_iter, **start), X)
    inputs = {
        "numpy": X,
        "one chunk": da.from_array(X, chunks=-1),
        "97 rows": da.from_array(X, chunks=(97, 3)),
        "40 rows, merged by a tree": da.from_array(X, chunks=(40, 3)),
        "1000 rows": da.from_array(X, chunks=(1000, 3)),
    }
    fits = {name: _fit(GaussianMixture(max_iter=max_iter, **start), data)
            for name, data in inputs.items()}
    for name, fit in fits.items():
        assert_same_fit(fit, expected, rtol=1e-6)
        for attr in FITTED:
            assert type(getattr(fit, attr)) is np.ndarray, (name, attr)
    for fit in fits.values():
        assert_same_fit(fit, fits["one chunk"], rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [33, 64])
def test_matches_sklearn_with_many_features(covariance_type, n_features):
    """Wide data takes the kernels' other paths.

    From 32 features on, ``full`` multiplies by halves (an odd D splits
    unevenly). With 12 components, ``tied``, ``diag`` and ``spherical`` cut
    a sub-block's products into several small pieces and a rest (a piece is
    at most 1302 rows here, and 244 for ``tied`` at D 64).
    """
    X = make_mixture(n_samples=3000, n_features=n_features, n_components=12, seed=2)[0]
    start = _start(X, covariance_type, n_components=12)
    expected = _fit(SklearnGaussianMixture(max_iter=5, **start), X)
    for data in (X, da.from_array(X, chunks=(1400, n_features))):
        fit = _fit(GaussianMixture(max_iter=5, **start), data)
        assert_same_fit(fit, expected, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_converges_like_sklearn(X, covariance_type):
    start = {**_start(X, covariance_type), "tol": 1e-3}
    expected = _fit(SklearnGaussianMixture(max_iter=200, **start), X)
    ours = _fit(GaussianMixture(max_iter=200, **start), da.from_array(X, chunks=(300, 3)))
    assert expected.converged_ and ours.converged_
    assert_same_fit(ours, expected, rtol=1e-6)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_numpy_init_params_equal_sklearn(X, init_params):
    # Two k-means starts of these data find the same partition, so which of the
    # two is best is a tie decided by rounding: kmeans runs one. After 5
    # iterations the other methods' two starts differ by 0.01 or more.
    n_init = 1 if init_params == "kmeans" else 2
    kwargs = dict(n_components=3, init_params=init_params, random_state=7, n_init=n_init,
                  max_iter=5, tol=0)
    expected = _fit(SklearnGaussianMixture(**kwargs), X)
    assert_same_fit(_fit(GaussianMixture(**kwargs), X), expected, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("transform", ["shift 1e6", "scale 1e-6"])
def test_far_from_origin_gives_the_same_fit(X, covariance_type, transform):
    shift, scale = (1e6, 1.0) if transform == "shift 1e6" else (0.0, 1e-6)
    start = _start(X, covariance_type)
    reference = _fit(GaussianMixture(max_iter=10, **start), X)
    moved = dict(start)
    moved["means_init"] = start["means_init"] * scale + shift
    moved["precisions_init"] = start["precisions_init"] / scale**2
    moved["reg_covar"] = 1e-6 * scale**2
    fit = _fit(GaussianMixture(max_iter=10, **moved), da.from_array(X * scale + shift, chunks=400))
    np.testing.assert_allclose(fit.weights_, reference.weights_, rtol=1e-6)
    np.testing.assert_allclose((fit.means_ - shift) / scale, reference.means_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fit.covariances_ / scale**2, reference.covariances_, rtol=1e-6)
    # Densities scale by 1 / scale**D, so log-likelihoods shift by -D log(scale).
    np.testing.assert_allclose(
        fit.lower_bound_ + X.shape[1] * np.log(scale), reference.lower_bound_, rtol=1e-6
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_clusters_far_apart_keep_their_covariances(covariance_type):
    """Clusters 1e4 standard deviations apart: tied/diag covariances stay exact."""
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [1e4, 0.0], [0.0, 1e4]]) + 1e6
    labels = np.repeat(np.arange(3), 400)
    X = centres[labels] + rng.normal(size=(1200, 2))
    fit = _fit(GaussianMixture(3, covariance_type=covariance_type, means_init=centres,
                               max_iter=5, tol=0), da.from_array(X, chunks=250))
    spread = np.stack([np.cov(X[labels == k].T, bias=True) for k in range(3)])
    if covariance_type == "full":
        np.testing.assert_allclose(fit.covariances_, spread + 1e-6 * np.eye(2), atol=1e-9)
    elif covariance_type == "tied":
        pooled = np.mean(spread, axis=0)
        np.testing.assert_allclose(fit.covariances_, pooled + 1e-6 * np.eye(2), atol=1e-9)
    elif covariance_type == "diag":
        expected = np.diagonal(spread, axis1=1, axis2=2) + 1e-6
        np.testing.assert_allclose(fit.covariances_, expected, atol=1e-9)
    else:
        expected = np.diagonal(spread, axis1=1, axis2=2).mean(1) + 1e-6
        np.testing.assert_allclose(fit.covariances_, expected, atol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_separated_clusters_far_from_origin_are_exact_to_rounding(covariance_type):
    """Clusters 1e4 spreads apart at an offset of 1e6, in three dimensions and
    several chunkings: the covariances equal each cluster's own centred scatter
    (np.cov of its rows) to 1e-12, whatever the BLAS kernel, and a tied one is
    exactly symmetric. Raw moments about one centre lose (1e4)^2 eps = 2e-8 here."""
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0, 0.0], [1e4, 0.0, 0.0], [0.0, 1e4, 0.0], [0, 0, -1e4]]) + 1e6
    labels = np.repeat(np.arange(4), 500)
    X = centres[labels] + rng.normal(size=(2000, 3)) * [1.0, 2.0, 0.5]
    spread = np.stack([np.cov(X[labels == k].T, bias=True) for k in range(4)])
    expected = {
        "full": spread,
        "tied": spread.mean(axis=0),
        "diag": np.diagonal(spread, axis1=1, axis2=2),
        "spherical": np.diagonal(spread, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    for chunks in (2000, 333, 64):
        fit = _fit(GaussianMixture(4, covariance_type=covariance_type, means_init=centres,
                                   reg_covar=0, max_iter=3, tol=0),
                   da.from_array(X, chunks=chunks))
        np.testing.assert_allclose(fit.covariances_, expected, rtol=1e-12, atol=0)
        np.testing.assert_allclose(fit.means_, [X[labels == k].mean(0) for k in range(4)],
                                   rtol=1e-15, atol=0)
        if covariance_type == "tied":
            np.testing.assert_array_equal(fit.covariances_, fit.covariances_.T)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repeated_rows(X, covariance_type):
    start = _start(X, covariance_type)
    counts = np.random.default_rng(0).integers(0, 4, size=X.shape[0])
    repeated = _fit(GaussianMixture(max_iter=8, **start), np.repeat(X, counts, axis=0))
    weighted = _fit(GaussianMixture(max_iter=8, **start), X, sample_weight=counts)
    weighted_dask = _fit(GaussianMixture(max_iter=8, **start), da.from_array(X, chunks=300),
                         sample_weight=da.from_array(counts, chunks=700))
    for fit in (weighted, weighted_dask):
        assert_same_fit(fit, repeated, rtol=1e-9)
