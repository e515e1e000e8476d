"""Dask and zarr input: real LocalCluster, real zarr stores, passes over the data."""

import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from daskgmm import GaussianMixture

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture


@pytest.fixture(scope="module")
def data():
    return make_mixture(n_samples=3000, n_features=3, n_components=3, seed=2)


def _explicit_init(X, covariance_type):
    fit = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, random_state=0).fit(X)
    return dict(n_components=3, covariance_type=covariance_type, weights_init=fit.weights_,
                means_init=fit.means_, precisions_init=fit.precisions_)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_on_local_cluster_matches_in_memory(client, data, covariance_type):
    X, _ = data
    kwargs = dict(_explicit_init(X, covariance_type), max_iter=10, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = GaussianMixture(**kwargs).fit(X)
        # 38 chunks: more than the client merges itself, so a tree of fan-in 2 merges them.
        fit = GaussianMixture(**kwargs, split_every=2).fit(da.from_array(X, chunks=(80, 3)))
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        np.testing.assert_allclose(getattr(fit, name), getattr(expected, name), rtol=1e-9)
    assert fit.lower_bounds_ == pytest.approx(expected.lower_bounds_, rel=1e-9)
    assert len(client.cluster.workers) == 2


@pytest.mark.slow
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_dask_init_params_on_cluster(client, init_params):
    X, _ = make_mixture(n_samples=3000, n_features=3, n_components=3, seed=2, separation=10)
    Xd = da.from_array(X, chunks=(400, 3))
    first = GaussianMixture(3, init_params=init_params, random_state=0, n_init=2).fit(Xd)
    again = GaussianMixture(3, init_params=init_params, random_state=0, n_init=2).fit(Xd)
    np.testing.assert_array_equal(first.means_, again.means_)
    reference = GaussianMixture(3, init_params=init_params, random_state=0, n_init=2).fit(X)
    # Another start, the same optimum: lower bounds agree closely.
    assert first.lower_bound_ == pytest.approx(reference.lower_bound_, abs=0.05)
    if init_params != "random":  # random starts stall near the global mean, sklearn's too
        assert adjusted_rand_score(first.predict(Xd).compute(), reference.predict(X)) > 0.95


def test_random_init_does_not_depend_on_chunking(data):
    X, _ = data
    fits = [GaussianMixture(3, init_params="random", random_state=4, max_iter=3, tol=0)
            .fit(da.from_array(X, chunks=(rows, 3))) for rows in (97, 1000, 3000)]
    for fit in fits[1:]:
        np.testing.assert_allclose(fit.means_, fits[0].means_, rtol=1e-9)


def test_predict_methods_are_lazy_and_match_numpy(client, data):
    X, _ = data
    gm = GaussianMixture(3, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(700, 3))
    labels, proba, scores = gm.predict(Xd), gm.predict_proba(Xd), gm.score_samples(Xd)
    for lazy in (labels, proba, scores):
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[0] == Xd.chunks[0]
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    np.testing.assert_allclose(proba.compute(), gm.predict_proba(X), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(scores.compute(), gm.score_samples(X), rtol=1e-10)
    assert isinstance(gm.score(Xd), float)
    assert gm.score(Xd) == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.bic(Xd) == pytest.approx(gm.bic(X), rel=1e-12)
    assert gm.aic(Xd) == pytest.approx(gm.aic(X), rel=1e-12)


@pytest.mark.parametrize("n_init", [1, 4])
@pytest.mark.parametrize("cache, passes", [(False, 6), ("auto", 6), (True, 1)])
def test_one_pass_per_iteration_from_zarr(tmp_path, data, n_init, cache, passes):
    """Streaming reads the store once per iteration; caching reads it once in all.

    Without a distributed cluster, 'auto' streams: it never loads data into this process.
    """
    X, _ = data
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(300, 3), dtype="f8")[:] = X
    n_chunks, max_iter = 10, 6
    kwargs = dict(_explicit_init(X, "full"), max_iter=max_iter, tol=0, n_init=n_init,
                  cache=cache)
    stored, reads = counted_array(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = GaussianMixture(**kwargs).fit(stored)
    assert fit.n_iter_ == max_iter
    assert reads["count"] == passes * n_chunks


def test_kmeans_init_costs_two_passes(tmp_path, data):
    X, _ = data
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(300, 3), dtype="f8")[:] = X
    stored, reads = counted_array(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixture(3, max_iter=4, tol=0, n_init=3, random_state=0, cache=False).fit(stored)
    # One pass to sample rows, one to assign them to the k-means centres, then EM.
    assert reads["count"] == (2 + 4) * 10


def test_zarr_input_fits_like_numpy(tmp_path, data):
    X, _ = data
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(256, 2), dtype="f4")[:] = X
    stored = zarr.open_array(path, mode="r")
    kwargs = dict(_explicit_init(X, "diag"), max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = GaussianMixture(**kwargs).fit(stored)
        expected = GaussianMixture(**kwargs).fit(stored[:].astype(np.float64))
    # float32 data: the same fit, its attributes float32 as scikit-learn's (one rounding).
    np.testing.assert_allclose(fit.means_, expected.means_, rtol=np.finfo(np.float32).eps)
    assert fit.means_.dtype == np.float32


def test_nan_in_dask_input_is_found_in_the_first_pass(client, data):
    X, _ = data
    kwargs = dict(_explicit_init(X, "full"), max_iter=5)
    gm = GaussianMixture(**kwargs).fit(X)
    before = {k: np.copy(v) for k, v in vars(gm).items() if k.endswith("_")}
    bad = X.copy()
    bad[2900, 1] = np.nan  # in the last chunk: found by the EM pass itself
    with pytest.raises(ValueError, match="NaN"):
        gm.fit(da.from_array(bad, chunks=(500, 3)))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(gm, name), value)
    bad[2900, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        gm.fit(da.from_array(bad, chunks=(500, 3)))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(gm, name), value)
