"""Faults survived, results independent of how they were computed, degenerate data."""

import contextlib
import io
import os
import signal
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from zarr.storage import LocalStore

from daskgmm import GaussianMixture
from daskgmm._kernels import resp_statistics
from daskgmm._stats import merge

from .conftest import COVARIANCE_TYPES, InstrumentedStore, make_mixture

FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


def _quiet_fit(estimator, X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, **kwargs)


def assert_same(a, b, rtol=1e-9):
    for name in FITTED:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-300)
    assert a.lower_bounds_ == pytest.approx(b.lower_bounds_, rel=rtol)


@pytest.fixture(scope="module")
def data():
    return make_mixture(n_samples=60_000, n_features=6, n_components=4, seed=11)[0]


def _model(**kwargs):
    return GaussianMixture(**{"n_components": 4, "random_state": 0, "tol": 0, "max_iter": 12,
                              "cache": False, **kwargs})


# ------------------------------------------------------------- worker loss


@pytest.fixture
def three_workers():
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield cluster, client


class _After(threading.Timer):
    """Runs ``action`` after ``seconds`` and records when it ran."""

    def __init__(self, seconds, action):
        self.done_at = None

        def run():
            action()
            self.done_at = time.monotonic()

        super().__init__(seconds, run)
        self.start()


class _LapsClock(io.StringIO):
    """Standard output of a fit (verbose=1) that records when each line was first written.

    ``times[line]``; ``laps_began`` is set at "Initialization 0", which `run_em`
    prints before the first pass or lap (the initialisation has run by then).
    """

    def __init__(self):
        super().__init__()
        self.times = {}
        self.laps_began = threading.Event()

    def write(self, text):
        self.times.setdefault(text.strip(), time.monotonic())
        if text == "Initialization 0":
            self.laps_began.set()
        return super().write(text)


def _during_fit(seconds, action, fit):
    """Fit while ``action`` happens; checks that it happened before the fit ended."""
    event = _After(seconds, action)
    result = fit()
    ended = time.monotonic()
    event.join()
    assert event.done_at is not None and event.done_at < ended, "the fit ended first"
    return result


@pytest.mark.slow
def test_worker_killed_mid_fit_costs_time_not_the_fit(data, three_workers):
    cluster, client = three_workers
    X = da.from_array(data, chunks=(2000, 6))
    pids = list(client.run(os.getpid).values())
    fit = _during_fit(1.0, lambda: os.kill(pids[0], signal.SIGKILL),
                      lambda: _quiet_fit(_model(max_iter=40), X))
    assert pids[0] not in client.run(os.getpid).values(), "the worker was not killed"
    assert_same(fit, _quiet_fit(_model(max_iter=40), data))


@pytest.mark.slow
def test_worker_added_mid_fit(data, three_workers):
    cluster, client = three_workers
    X = da.from_array(data, chunks=(2000, 6))
    fit = _during_fit(0.5, lambda: cluster.scale(4), lambda: _quiet_fit(_model(max_iter=40), X))
    client.wait_for_workers(4, timeout=60)
    assert_same(fit, _quiet_fit(_model(max_iter=40), data))


class _FailingOnceStore(InstrumentedStore):
    """A real LocalStore whose first read of one chunk fails, as a flaky disk would.

    ``state`` is the path of a marker file: workers in other processes see it too.
    """

    def on_read(self, key):
        if key == "c/3/0" and os.path.exists(self.state):
            os.remove(self.state)
            raise OSError("transient read failure")


def test_transient_task_error_is_retried(data, tmp_path, client):
    path, marker = str(tmp_path / "x.zarr"), str(tmp_path / "fail-once")
    zarr.create_array(path, shape=data.shape, chunks=(5000, 6), dtype="f8")[:] = data
    open(marker, "w").close()
    X = zarr.open_array(_FailingOnceStore(LocalStore(path), marker), mode="r")
    fit = _quiet_fit(_model(max_iter=3), X)
    assert not os.path.exists(marker), "the fault was never injected"
    assert_same(fit, _quiet_fit(_model(max_iter=3), data))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["batch", "incremental"])
def test_cluster_gone_names_the_last_iteration(data, algorithm):
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    X = da.from_array(data, chunks=(2000, 6))
    output = _LapsClock()

    def close_in_the_iterations():  # after the initialisation, however long it took
        output.laps_began.wait(timeout=60)
        time.sleep(0.5)
        cluster.close()

    try:
        with pytest.raises(RuntimeError, match=r"last completed iteration is \d+.*checkpoint"), \
                contextlib.redirect_stdout(output):
            _during_fit(0, close_in_the_iterations, lambda: _quiet_fit(
                _model(max_iter=500, algorithm=algorithm, verbose=1), X))
    finally:
        client.close()
        cluster.close()


# -------------------------------------------------------------- determinism


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_same_random_state_same_model(data, init_params):
    X = da.from_array(data, chunks=(7000, 6))
    first = _quiet_fit(_model(init_params=init_params, n_init=2), X)
    second = _quiet_fit(_model(init_params=init_params, n_init=2), X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


@pytest.mark.slow
def test_same_fit_on_every_scheduler_chunking_and_worker_count(data, cluster):
    # A third of the rows: still one chunk, 207 chunks of 97 rows (the last ragged), 20
    # and 3 ragged chunks, each merged in another order; the sums are what may differ.
    data = data[:20_000]
    start = GaussianMixture(4, random_state=0, max_iter=0).fit(data)
    model = dict(weights_init=start.weights_, means_init=start.means_,
                 precisions_init=start.precisions_)
    reference = _quiet_fit(_model(**model), data)
    for chunks in (20_000, 97, 1000, 7001):
        X = da.from_array(data, chunks=(chunks, 6))
        for scheduler in ("synchronous", "threads"):
            with dask.config.set(scheduler=scheduler):
                assert_same(_quiet_fit(_model(**model), X), reference)
    X = da.from_array(data, chunks=(3001, 6))
    with Client(cluster):  # the shared cluster: two worker processes
        assert_same(_quiet_fit(_model(**model), X), reference)
    for n_workers in (1, 4):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as other, Client(other):
            assert_same(_quiet_fit(_model(**model), X), reference)


# ------------------------------------------------------------ degenerate data


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_identical_rows_are_well_defined(covariance_type):
    X = np.ones((50, 3))
    for data in (X, da.from_array(X, chunks=20)):
        gm = _quiet_fit(GaussianMixture(2, covariance_type=covariance_type, random_state=0), data)
        for name in FITTED:
            assert np.isfinite(getattr(gm, name)).all()
        # As in scikit-learn, a component left empty keeps mean 0 and covariance reg_covar.
        used = gm.weights_ > 1e-6
        np.testing.assert_allclose(gm.means_[used], 1.0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_more_features_than_rows_of_a_component(covariance_type):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(8, 20)), 50 + rng.normal(size=(200, 20))])
    gm = _quiet_fit(GaussianMixture(2, covariance_type=covariance_type, random_state=0),
                    da.from_array(X, chunks=50))
    for name in FITTED:
        assert np.isfinite(getattr(gm, name)).all()
    assert sorted(np.bincount(gm.predict(X))) == [8, 200]


def test_component_with_no_responsibility_stays_finite():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 2))
    gm = _quiet_fit(GaussianMixture(2, means_init=[[0, 0], [1e3, 1e3]], max_iter=5, tol=0), X)
    assert gm.weights_[1] < 1e-12
    for name in FITTED:
        assert np.isfinite(getattr(gm, name)).all()


def test_collapsed_component_without_reg_covar_names_the_fix():
    X = np.vstack([np.zeros((30, 2)), np.random.default_rng(0).normal(size=(30, 2)) + 9])
    start = dict(weights_init=[0.5, 0.5], means_init=[[0, 0], [9, 9]],
                 precisions_init=np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"increase reg_covar.*\(component 0, iteration \d+\)"):
        GaussianMixture(2, reg_covar=0, **start).fit(da.from_array(X, chunks=25))
    with pytest.raises(ValueError, match=r"increase reg_covar.*\(component \d, initialisation\)"):
        GaussianMixture(2, reg_covar=0, random_state=0).fit(da.from_array(X, chunks=25))


@pytest.mark.parametrize("init", [dict(init_params="kmeans"), dict(init_params="random"),
                                  dict(init_params="random_from_data"), dict(y=True)])
def test_empty_chunks_are_nothing(data, init):
    y = (data[:, 0] > 0).astype(int) if init.pop("y", False) else None
    chunks = ((20_000, 0, 25_000, 0, 15_000), (6,))
    X = da.from_array(data, chunks=chunks)
    kwargs = dict(n_components=2, max_iter=5, **init)
    fit = _quiet_fit(_model(**kwargs), X, y=y)
    expected = _quiet_fit(_model(**kwargs), da.from_array(data, chunks=(20_000, 6)), y=y)
    if init.get("init_params") != "kmeans":  # k-means samples rows by chunk positions
        assert_same(fit, expected)
    for name in FITTED:
        assert np.isfinite(getattr(fit, name)).all()


def test_statistics_too_large_are_refused_before_any_work():
    X = da.zeros((10_000, 10_000), chunks=(1000, 10_000))
    with pytest.raises(ValueError, match=r"GiB"):
        GaussianMixture(1000).fit(X)


# --------------------------------------------------------- property tests


@settings(max_examples=40, deadline=None)
@given(
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    n_rows=st.integers(2, 60),
    split=st.floats(0, 1),
    offset=st.sampled_from([0.0, 1e3, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_merged_statistics_equal_two_pass_statistics(covariance_type, n_rows, split, offset,
                                                     seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 3)) + offset
    resp = rng.dirichlet(np.ones(2), size=n_rows) * (rng.random((n_rows, 1)) < 0.8)
    weights = rng.integers(0, 3, size=n_rows).astype(float)
    cut = int(split * n_rows)

    def stats(rows):
        return resp_statistics(X[rows], weights[rows], resp[rows], covariance_type)

    merged = merge(stats(slice(0, cut)), stats(slice(cut, None)), covariance_type)
    r = resp * weights[:, None]
    nk = r.sum(0)
    means = np.where(nk[:, None] > 0, r.T @ X / np.where(nk > 0, nk, 1)[:, None], 0)
    dev = X[None] - means[:, None]
    scatter = np.einsum("kn,kni,knj->kij", r.T, dev, dev)
    expected = {"full": scatter, "tied": scatter.sum(0),
                "diag": np.diagonal(scatter, axis1=1, axis2=2),
                "spherical": np.trace(scatter, axis1=1, axis2=2)}[covariance_type]
    np.testing.assert_allclose(merged.nk, nk, rtol=1e-12, atol=1e-12)
    has = nk > 1e-12
    np.testing.assert_allclose(merged.mean[has], means[has], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(merged.m2, expected, rtol=1e-9, atol=1e-8)
    assert merged.weight == pytest.approx(weights.sum())
