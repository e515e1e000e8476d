"""Incremental EM (algorithm='incremental') and stepwise EM (partial_fit) on real stores."""

import os
import warnings
from collections import Counter

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import wait
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from zarr.storage import LocalStore

from daskgmm import GaussianMixture, GaussianMixtureIC
from daskgmm._em import Model, Settings
from daskgmm._family import _expected, free_energy, responsibility_entropy
from daskgmm._incremental import MAX_RELAXATION, RELAXATION_LAPS, _swap_in, relaxation
from daskgmm._graph import (READ_AHEAD_PRIORITY, block_bounds, from_dask, read_ahead,
                            row_block)
from daskgmm._kernels import resp_statistics
from daskgmm._mstep import Parameters, start_from_stats
from daskgmm._persist import read_group
from daskgmm._stats import merge, scaled

from .conftest import InstrumentedStore, counted_array, logged_array, make_mixture
from .test_reliability import FITTED, assert_same

N_CHUNKS = 32


class _FailingStore(InstrumentedStore):
    """A real LocalStore whose n-th read of one chunk fails, as a flaky disk would."""

    def on_read(self, key):
        if key == self.state["key"]:
            self.state["seen"] += 1
            if self.state["seen"] == self.state["fail_at"]:
                raise OSError("read failure")


def _quiet(fit, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(*args, **kwargs)


@pytest.fixture(scope="module")
def overlapping():
    """Ten overlapping components: batch EM needs tens of passes (a slow tail)."""
    return make_mixture(n_samples=32_000, n_features=5, n_components=10, seed=1,
                        separation=1.5)[0]


@pytest.fixture(scope="module")
def store(overlapping, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "x.zarr")
    rows = len(overlapping) // N_CHUNKS
    zarr.create_array(path, shape=overlapping.shape, chunks=(rows, 5), dtype="f8")[:] = overlapping
    return path


@pytest.fixture(scope="module")
def start(overlapping):
    fit = GaussianMixture(10, covariance_type="diag", random_state=0, max_iter=0).fit(overlapping)
    return dict(n_components=10, covariance_type="diag", weights_init=fit.weights_,
                means_init=fit.means_, precisions_init=fit.precisions_, cache=False)


@pytest.mark.slow
def test_incremental_reaches_batch_bound_in_fewer_passes(store, start):
    """Overlapping components, as real data has, give batch EM a slow linear tail.

    Plain incremental EM is Gauss-Seidel to batch EM's Jacobi: at best half
    its passes in that tail; over-relaxation ('auto') gets to a third.
    """
    X, reads = counted_array(store)
    batch = _quiet(GaussianMixture(**start, tol=1e-5, max_iter=300).fit, X)
    assert batch.converged_ and batch.n_iter_ >= 20
    assert reads["count"] == batch.n_iter_ * N_CHUNKS
    for omega, share in (("auto", 3), (1.0, 2)):
        reads["count"] = 0
        incremental = _quiet(GaussianMixture(**start, tol=0, max_iter=batch.n_iter_ // share,
                                             algorithm="incremental", n_blocks=16,
                                             relaxation=omega).fit, X)
        assert reads["count"] == incremental.n_iter_ * N_CHUNKS  # a lap reads every chunk once
        assert incremental.n_iter_ == batch.n_iter_ // share
        # Measured: 8 (auto, by 1.1e-4) and 10 (plain) laps against 24 batch passes.
        assert incremental.lower_bounds_[-1] >= batch.lower_bound_ - 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("omega", [1.0, "auto", 1.95])
def test_laps_never_lower_the_bound_which_bounds_the_log_likelihood(overlapping, start, omega):
    """A lap's bound is the free energy at its end: it never decreases, plain or
    over-relaxed (a step that would lower it is replaced by a plain one, which
    cannot), and it is at most the log-likelihood under the lap's parameters."""
    X = da.from_array(overlapping, chunks=(1000, 5))
    kwargs = dict(start, tol=0, algorithm="incremental", n_blocks=8, relaxation=omega)
    laps = 12
    fit = _quiet(GaussianMixture(**kwargs, max_iter=laps).fit, X)
    assert fit.n_iter_ == laps and len(fit.lower_bounds_) == laps
    assert np.all(np.diff(fit.lower_bounds_) >= -1e-12 * abs(fit.lower_bound_))
    scores = [_quiet(GaussianMixture(**kwargs, max_iter=lap).fit, X).score(overlapping)
              for lap in range(1, laps + 1)]
    assert scores[-1] == fit.score(overlapping)
    assert np.all(np.array(fit.lower_bounds_) <= np.array(scores) + 1e-12)
    # Measured: the bound is within 2e-3 of the log-likelihood after the first lap, 1e-6 by
    # the 12th.
    assert scores[-1] - fit.lower_bounds_[-1] < 1e-5


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_free_energy_is_exact_from_statistics_far_from_the_origin(covariance_type):
    """Q and sum r log r from centred statistics equal their sums over rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4)) * [1, 2, 0.5, 3] + 1e4
    X[:1000] += 3
    sample_weight = rng.uniform(0.5, 2, size=3000)
    reference = _quiet(SklearnGaussianMixture(3, covariance_type=covariance_type,
                                              random_state=0, max_iter=5).fit, X)
    parameters = Parameters(covariance_type, reference.weights_, reference.means_,
                            reference.covariances_, reference.precisions_cholesky_)
    # log(pi_k N(x | mu_k, Sigma_k)) from x - mu_k, exact far from the origin.
    covariances = reference.covariances_
    full = {"full": lambda: covariances, "tied": lambda: [covariances] * 3,
            "diag": lambda: [np.diag(variances) for variances in covariances],
            "spherical": lambda: [variance * np.eye(4) for variance in covariances],
            }[covariance_type]()
    log_prob = np.log(reference.weights_) + np.column_stack([
        multivariate_normal(mean, covariance).logpdf(X)
        for mean, covariance in zip(reference.means_, full)])
    resp = rng.dirichlet(np.ones(3), size=3000)
    stats = resp_statistics(X, sample_weight, resp, covariance_type)
    assert _expected(parameters, stats) == pytest.approx(
        np.sum(sample_weight[:, None] * resp * log_prob), rel=1e-10)
    resp = reference.predict_proba(X)
    stats = resp_statistics(X, sample_weight, resp, covariance_type)._replace(
        loglik=np.dot(sample_weight, reference.score_samples(X)))
    entropy = responsibility_entropy(parameters, stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_log_r = np.where(resp > 0, resp * np.log(resp), 0.0)
    assert entropy == pytest.approx(np.sum(sample_weight[:, None] * r_log_r), rel=1e-7)
    assert free_energy(parameters, stats._replace(entropy=entropy)) == pytest.approx(
        stats.loglik, rel=1e-12)


def test_auto_relaxation_is_youngs_omega_from_the_plain_laps():
    settings = Settings(tol=0, reg_covar=1e-6, max_iter=10, relaxation="auto")
    history = [-3.0, -2.0, -1.5, -1.25]  # changes 0.5 then 0.25: rho = 0.5
    assert [relaxation(history[:laps], settings) for laps in range(RELAXATION_LAPS)] == [1.0] * 4
    batch_rate = 1 - (1 - np.sqrt(0.5)) / 2
    omega = relaxation(history, settings)
    assert omega == pytest.approx(2 / (1 + np.sqrt(1 - batch_rate)), rel=1e-12)
    assert relaxation(history + [-1.2, -1.19], settings) == omega  # set once, from the plain laps
    assert relaxation([-3.0, -2.0, -1.999999, -1.999998001], settings) == MAX_RELAXATION
    assert relaxation([-3.0, -2.0, -1.5, -1.0], settings) == 1.0  # not converging linearly
    assert relaxation(history, Settings(tol=0, reg_covar=1e-6, max_iter=10,
                                        relaxation=1.3)) == 1.3


def test_same_blocks_same_result_whatever_the_chunking(overlapping, start):
    kwargs = dict(start, tol=0, max_iter=6, algorithm="incremental", n_blocks=4)
    coarse = _quiet(GaussianMixture(**kwargs).fit, da.from_array(overlapping, chunks=(2000, 5)))
    fine = _quiet(GaussianMixture(**kwargs).fit, da.from_array(overlapping, chunks=(500, 5)))
    assert_same(coarse, fine)
    # Other blocks, another algorithm path: different, so the comparison can fail.
    other = _quiet(GaussianMixture(**{**kwargs, "n_blocks": 8}).fit,
                   da.from_array(overlapping, chunks=(2000, 5)))
    assert not np.allclose(other.means_, coarse.means_, rtol=1e-9)


@pytest.mark.slow
def test_same_result_on_threads_and_a_cluster(overlapping, start, client):
    kwargs = dict(start, tol=0, max_iter=5, algorithm="incremental", n_blocks=4)
    X = da.from_array(overlapping, chunks=(2000, 5))
    on_cluster = _quiet(GaussianMixture(**kwargs).fit, X)
    assert len(client.cluster.workers) == 2
    with dask.config.set(scheduler="threads"):
        threads = _quiet(GaussianMixture(**kwargs).fit, X)
    assert_same(on_cluster, threads)


@pytest.mark.slow
def test_a_cluster_reads_the_next_block_behind_the_work(store, client):
    """The next block is persisted at a priority below every pass's tasks."""
    data = from_dask(da.from_zarr(store))
    block = row_block(data, 0, 4000)
    ahead = read_ahead(block)
    assert ahead.persisted and read_ahead(ahead) is ahead
    futures = list(dict(ahead.X.__dask_graph__()).values())
    wait(futures)
    priorities = client.run_on_scheduler(lambda dask_scheduler: {
        ts.key: ts.priority[0] for ts in dask_scheduler.tasks.values()})
    assert {priorities[future.key] for future in futures} == {-READ_AHEAD_PRIORITY}
    np.testing.assert_array_equal(ahead.X.compute(), block.X.compute())
    with dask.config.set(scheduler="threads"):
        assert read_ahead(block) is block  # nothing to read ahead of on local threads


@pytest.mark.slow
def test_reading_ahead_reads_every_chunk_once_a_lap(store, start, client, tmp_path):
    kwargs = dict(start, tol=0, max_iter=3, algorithm="incremental", n_blocks=8)
    on_cluster = _quiet(GaussianMixture(**kwargs).fit, logged_array(store, tmp_path / "reads"))
    times_read = Counter((tmp_path / "reads").read_text().split())
    assert len(times_read) == N_CHUNKS and set(times_read.values()) == {3}
    with dask.config.set(scheduler="threads"):
        threads = _quiet(GaussianMixture(**kwargs).fit, da.from_zarr(store))
    assert_same(on_cluster, threads)


def test_n_blocks_auto_and_in_memory_input(overlapping, start):
    memory = _quiet(GaussianMixture(**start, max_iter=3, tol=0, algorithm="incremental").fit,
                    overlapping)
    dask = _quiet(GaussianMixture(**start, max_iter=3, tol=0, algorithm="incremental").fit,
                  da.from_array(overlapping, chunks=(1000, 5)))
    assert memory.n_iter_ == dask.n_iter_ == 3
    assert memory.lower_bounds_[-1] > memory.lower_bounds_[0]


def test_integer_weights_equal_repeated_rows_and_n_init(overlapping):
    X = overlapping[:4000]
    weights = np.tile([1.0, 2.0], 2000)
    repeated = np.repeat(X, weights.astype(int), axis=0)
    fit = GaussianMixture(3, covariance_type="full", random_state=0, max_iter=0).fit(X)
    kwargs = dict(n_components=3, weights_init=fit.weights_, means_init=fit.means_,
                  precisions_init=fit.precisions_, tol=0, max_iter=4, algorithm="incremental",
                  n_blocks=2)
    # The same two blocks: X's first 2000 rows are 3000 repeated rows.
    weighted = _quiet(GaussianMixture(**kwargs).fit, da.from_array(X, chunks=500),
                      sample_weight=weights)
    plain = _quiet(GaussianMixture(**kwargs).fit, da.from_array(repeated, chunks=3000))
    assert_same(weighted, plain)
    many = _quiet(GaussianMixture(3, random_state=0, n_init=3, max_iter=4,
                                  algorithm="incremental", n_blocks=4).fit,
                  da.from_array(X, chunks=500))
    assert many.n_iter_ <= 4 and np.isfinite(many.lower_bound_)


def test_fit_with_labels_and_search(overlapping):
    X = overlapping[:4000]
    y = (X[:, 0] > 0).astype(int)
    Xd = da.from_array(X, chunks=500)
    fit = _quiet(GaussianMixture(algorithm="incremental", n_blocks=4, max_iter=5).fit, Xd, y)
    assert list(fit.classes_) == [0, 1] and fit.n_iter_ >= 1
    ic = _quiet(GaussianMixtureIC(2, 3, covariance_type=["diag", "full"], random_state=0,
                                  max_iter=6, tol=0, algorithm="incremental", n_blocks=4).fit,
                Xd)
    alone = _quiet(GaussianMixture(ic.n_components_, covariance_type=ic.covariance_type_,
                                   random_state=0, max_iter=6, tol=0, algorithm="incremental",
                                   n_blocks=4).fit, Xd)
    assert_same(ic.best_estimator_, alone)


@pytest.mark.slow
def test_checkpoint_resumes_mid_lap_after_a_failed_read(store, start, tmp_path):
    checkpoint = str(tmp_path / "fit.ckpt")
    kwargs = dict(start, tol=0, max_iter=8, algorithm="incremental", n_blocks=8)
    # Chunk 13 lies in block 3: its sixth read is in the middle of the sixth lap, over-relaxed.
    state = {"key": "c/13/0", "seen": 0, "fail_at": 6}
    failing = zarr.open_array(_FailingStore(LocalStore(store), state), mode="r")
    with pytest.raises(OSError, match="read failure"):
        _quiet(GaussianMixture(**kwargs, checkpoint=checkpoint).fit, failing)
    arrays, saved = read_group(checkpoint, "checkpoint")
    assert (saved["iteration"], saved["block"]) == (5, 3)  # blocks 0-2 of lap 6 done
    # Every block was last over-relaxed: its computed statistics are kept beside.
    assert not np.isnan(arrays["block_fresh_0"]).any()
    X = zarr.open_array(store, mode="r")
    resumed = _quiet(GaussianMixture(**kwargs, checkpoint=checkpoint).fit, X)
    uninterrupted = _quiet(GaussianMixture(**kwargs).fit, X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
    assert resumed.lower_bounds_ == uninterrupted.lower_bounds_
    settings = Settings(tol=0, reg_covar=1e-6, max_iter=8, relaxation="auto")
    assert relaxation(uninterrupted.lower_bounds_[:5], settings) > 1  # lap 6 was over-relaxed


def test_partial_fit_over_blocks_nears_batch(overlapping, start):
    X = overlapping
    batch = _quiet(GaussianMixture(**start, tol=1e-5, max_iter=300).fit, X)
    online = GaussianMixture(**start)
    for _ in range(4):
        for rows in np.array_split(np.arange(len(X)), 32):
            online.partial_fit(da.from_array(X[rows], chunks=500))
    assert online.n_iter_ == 128 and len(online.lower_bounds_) == 128
    assert online.score(X) >= batch.score(X) - 1e-2
    # The running statistics keep the weight of the first call's rows.
    assert float(online._stepwise[0].weight) == pytest.approx(len(X) / 32, rel=1e-12)


def test_partial_fit_under_dask_ml_incremental(overlapping):
    from dask_ml.wrappers import Incremental

    X = da.from_array(overlapping[:8000], chunks=1000)
    wrapped = Incremental(GaussianMixture(3, random_state=0)).fit(X)
    model = wrapped.estimator_
    assert model.n_iter_ == 8 and np.isfinite(model.lower_bound_)
    assert wrapped.predict(X).compute().shape == (8000,)


def test_partial_fit_checks_features_and_keeps_the_model(overlapping):
    model = GaussianMixture(2, random_state=0).partial_fit(overlapping[:500])
    means = model.means_.copy()
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(overlapping[:500, :3])
    np.testing.assert_array_equal(model.means_, means)
    assert model.n_iter_ == 1


@pytest.mark.parametrize("params, match", [
    (dict(algorithm="stepwise"), "algorithm"),
    (dict(algorithm="incremental", n_blocks=0), "n_blocks"),
    (dict(algorithm="incremental", n_blocks="many"), "n_blocks"),
    (dict(algorithm="incremental", n_blocks=9), "exceeds the 8 row chunks"),
    (dict(algorithm="incremental", n_blocks=1), r"n_blocks=1 is batch EM.*algorithm='batch'"),
    (dict(algorithm="incremental", relaxation=2.0), "relaxation"),
    (dict(algorithm="incremental", relaxation="fast"), "relaxation"),
    (dict(learning_decay=0.5), "learning_decay"),
    (dict(learning_offset=-1.0), "learning_offset"),
])
def test_bad_parameters_are_value_errors_and_leave_the_fit(overlapping, params, match):
    X = da.from_array(overlapping[:4000], chunks=500)
    model = _quiet(GaussianMixture(2, random_state=0, max_iter=3).fit, X)
    means = model.means_.copy()
    with pytest.raises(ValueError, match=match):
        model.set_params(**params).fit(X)
    np.testing.assert_array_equal(model.means_, means)


@pytest.mark.parametrize("moved, relaxed", [(0.3, True), (1.0, False)])
def test_over_relaxed_swap_falls_back_when_a_component_would_lose_its_weight(moved, relaxed):
    """A block's statistics go in as old + omega (new - old) unless that empties a component."""
    X = np.random.default_rng(0).normal(size=(300, 2))
    blocks = ((0, 100), (100, 300))
    even = np.full((100, 2), 0.5)
    old = resp_statistics(X[:100], None, even, "diag")
    # The new responsibilities move a share ``moved`` of component 1's weight to component 0.
    fresh = resp_statistics(X[:100], None, even + [[moved / 2, -moved / 2]], "diag")
    other = resp_statistics(X[100:], None, np.tile([0.9, 0.1], (200, 1)), "diag")
    model = Model("0", start_from_stats(merge(old, other, "diag"), 1e-6, "diag"),
                  history=[-3.0, -2.9, -2.85, -2.83], block_stats=[old, other],
                  block_fresh=[None, None])
    settings = Settings(tol=0, reg_covar=1e-6, max_iter=5, relaxation=1.8)
    assert _swap_in(model, 0, fresh, settings, 2, blocks) is None  # the lap goes on
    expected = merge(scaled(old, -0.8), scaled(fresh, 1.8), "diag") if relaxed else fresh
    np.testing.assert_allclose(model.block_stats[0].nk, expected.nk, rtol=1e-12)
    np.testing.assert_allclose(model.block_stats[0].m2, expected.m2, rtol=1e-12)
    computed = model.block_fresh[0] if relaxed else model.block_stats[0]
    np.testing.assert_array_equal(computed.m2, fresh.m2)
    assert (model.block_fresh[0] is None) is not relaxed
    totals = merge(model.block_stats[0], other, "diag")
    np.testing.assert_allclose(model.parameters.weights, totals.nk / totals.nk.sum(), rtol=1e-9)


def test_over_relaxed_swap_falls_back_when_a_covariance_would_be_ill_defined():
    """Half of block 0's rows lie on a line; the new statistics give them all of component 1."""
    X = np.random.default_rng(0).normal(size=(300, 2))
    X[:50, 1] = 0.0
    blocks = ((0, 100), (100, 300))
    old = resp_statistics(X[:100], None, np.full((100, 2), 0.5), "full")
    on_line = np.repeat([[0.0, 1.0], [1.0, 0.0]], 50, axis=0)
    fresh = resp_statistics(X[:100], None, on_line, "full")
    other = resp_statistics(X[100:], None, np.tile([0.97, 0.03], (200, 1)), "full")
    # Block 1's statistics were over-relaxed too: they go back to those computed.
    other_relaxed = scaled(other, 1.0001)
    model = Model("0", start_from_stats(merge(old, other, "full"), 1e-6, "full"),
                  history=[-3.0, -2.9, -2.85, -2.83], block_stats=[old, other_relaxed],
                  block_fresh=[None, other])
    relaxed = merge(scaled(old, -0.8), scaled(fresh, 1.8), "full")
    assert np.all(merge(relaxed, other_relaxed, "full").nk > 0)  # weights would not stop it
    settings = Settings(tol=0, reg_covar=1e-6, max_iter=5, relaxation=1.8)
    _swap_in(model, 0, fresh, settings, 2, blocks)
    np.testing.assert_array_equal(model.block_stats[0].m2, fresh.m2)
    assert model.block_stats[1] is other
    assert model.block_fresh == [None, None] and model.error is None
    assert np.all(np.linalg.eigvalsh(model.parameters.covariances) > 0)


def test_n_blocks_auto_depends_on_the_chunks_only(overlapping, start, monkeypatch):
    """4 chunks a block, 2 to 16 blocks, whatever the threads: the same fit anywhere."""
    kwargs = dict(start, tol=0, max_iter=4, algorithm="incremental")
    X = da.from_array(overlapping, chunks=(1000, 5))  # 32 chunks: 8 blocks
    fits = []
    with dask.config.set(scheduler="threads"):
        for cpus in (1, 2, 8):
            monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
            assert block_bounds(from_dask(X), "auto") == block_bounds(from_dask(X), 8)
            fits.append(_quiet(GaussianMixture(**kwargs).fit, X))
    assert_same(fits[0], fits[1])
    assert_same(fits[0], fits[2])
    assert_same(fits[0], _quiet(GaussianMixture(**kwargs, n_blocks=8).fit, X))
    # At least 2 blocks, at most 16.
    assert len(block_bounds(from_dask(X.rechunk((16_000, 5))), "auto")) == 2
    assert len(block_bounds(from_dask(X.rechunk((250, 5))), "auto")) == 16


@pytest.mark.slow
def test_n_blocks_auto_gives_the_same_fit_on_a_cluster(overlapping, start, client):
    kwargs = dict(start, tol=0, max_iter=4, algorithm="incremental")
    X = da.from_array(overlapping, chunks=(1000, 5))
    on_cluster = _quiet(GaussianMixture(**kwargs).fit, X)
    with dask.config.set(scheduler="threads"):
        threads = _quiet(GaussianMixture(**kwargs, n_blocks=8).fit, X)
    assert_same(on_cluster, threads)


def test_one_row_chunk_is_refused_by_n_blocks_auto(overlapping):
    model = GaussianMixture(2, algorithm="incremental")
    with pytest.raises(ValueError, match=r"1 row chunk.*rechunk X.*algorithm='batch'"):
        model.fit(da.from_array(overlapping[:4000], chunks=(4000, 5)))
    assert not hasattr(model, "means_")


@pytest.mark.slow
def test_an_emptied_component_does_not_stop_over_relaxation():
    """A component that no row reaches (responsibilities 0) has no weight in any block;
    over-relaxed steps go on around it, as in the fit without it."""
    X = make_mixture(n_samples=8000, n_features=3, n_components=4, seed=1, separation=1.5)[0]
    X += 50.0  # far from the origin, where the emptied component's mean goes
    live = GaussianMixture(4, covariance_type="diag", random_state=0, max_iter=0).fit(X)
    weights = np.append(live.weights_, 1e-3) / (1 + 1e-3)
    means = np.vstack([live.means_, np.full((1, 3), -1e3)])
    precisions = np.vstack([live.precisions_, np.ones((1, 3))])
    common = dict(covariance_type="diag", algorithm="incremental", n_blocks=8, tol=1e-6,
                  max_iter=200)
    Xd = da.from_array(X, chunks=(500, 3))

    def fit(n_components, omega, **start):
        return _quiet(GaussianMixture(n_components, relaxation=omega, **common, **start).fit,
                      Xd)

    without = fit(4, 1.5, weights_init=live.weights_, means_init=live.means_,
                  precisions_init=live.precisions_)
    emptied = fit(5, 1.5, weights_init=weights, means_init=means, precisions_init=precisions)
    plain = fit(5, 1.0, weights_init=weights, means_init=means, precisions_init=precisions)
    assert emptied.weights_[-1] < 1e-15
    assert emptied.n_iter_ == without.n_iter_ < plain.n_iter_
    np.testing.assert_allclose(emptied.means_[:4], without.means_, rtol=1e-6)
    assert emptied.lower_bound_ == pytest.approx(without.lower_bound_, rel=1e-9)


def test_in_memory_blocks_do_not_depend_on_the_machine(overlapping, start, monkeypatch):
    """In-memory input is cut into equal-row blocks whatever the number of CPUs."""
    X = overlapping[:4000]
    kwargs = dict(start, tol=0, max_iter=6, algorithm="incremental")
    fits = []
    for cpus in (1, 2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda cpus=cpus: cpus)
        fits.append(_quiet(GaussianMixture(**kwargs).fit, X))
    assert_same(fits[0], fits[1])
    assert_same(fits[0], fits[2])
    # The same 16 blocks of 250 rows as a Dask array.
    assert_same(fits[0], _quiet(GaussianMixture(**kwargs, n_blocks=16).fit,
                                da.from_array(X, chunks=(250, 5))))
