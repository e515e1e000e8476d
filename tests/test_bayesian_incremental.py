"""BayesianGaussianMixture(algorithm='incremental'): incremental variational Bayes on real stores.

Sato (2001): every block keeps the statistics of its last variational E-step
(with their sum of r log r), the M-step runs on the sum of all blocks' after
every block; one lap over the blocks is one pass.
"""

import warnings

import numpy as np
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning
from zarr.storage import LocalStore

import daskgmm
from daskgmm import BayesianGaussianMixture
from daskgmm import _persist
from daskgmm._persist import read_group

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture
from .test_bayesian import FITTED
from .test_incremental import _FailingStore

N_CHUNKS = 16


def _quiet(fit, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(*args)


@pytest.fixture(scope="module")
def X():
    """Three well-separated components."""
    return make_mixture(n_samples=4000, n_features=3, n_components=3, seed=2)[0]


@pytest.fixture(scope="module")
def store(X, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("data") / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(len(X) // N_CHUNKS, 3), dtype="f8")[:] = X
    return path


def _priors(X, covariance_type="full"):
    """Given priors: a fit then needs no pass of its own for them."""
    covariance = np.cov(X.T)
    return dict(mean_prior=X.mean(axis=0), covariance_prior=covariance
                if covariance_type == "full" else np.diag(covariance))


def _started(X, **kwargs):
    """A model fitted for 0 iterations on NumPy input (scikit-learn's random start),
    to warm-start batch and incremental fits from the same place."""
    start = _quiet(BayesianGaussianMixture(**kwargs, max_iter=0, init_params="random",
                                           random_state=0).fit, X)
    return start.set_params(warm_start=True)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
def test_incremental_ends_at_batch_bound_one_pass_per_lap(X, store, covariance_type,
                                                          prior_type):
    """From the same (random) start, incremental laps never lower the bound and end where
    batch ends, in fewer passes.

    Both iterate to the same fixed point: with every block's statistics
    computed under the same parameters, the incremental M-step is the batch
    one. Each stops when its bound changes by less than ``tol`` = 1e-6; on
    well-separated components the change falls by orders of magnitude per
    pass near the end (measured: 7e-4, then 1e-12), so each stands within
    ``tol`` of the common limit: the bounds (sums over 4000 rows, about
    -6e3) are compared to 1e-5 absolute (measured apart by 1e-11).
    Measured: 12 laps against 18 batch passes.
    """
    kwargs = dict(n_components=3, covariance_type=covariance_type, cache=False,
                  weight_concentration_prior_type=prior_type, **_priors(X, covariance_type))
    data, reads = counted_array(store)
    batch = _quiet(_started(X, **kwargs).set_params(tol=1e-6, max_iter=200).fit, data)
    assert batch.converged_
    assert reads["count"] == batch.n_iter_ * N_CHUNKS
    reads["count"] = 0
    incremental = _quiet(_started(X, **kwargs).set_params(
        tol=1e-6, max_iter=200, algorithm="incremental", n_blocks=4).fit, data)
    assert incremental.converged_
    assert reads["count"] == incremental.n_iter_ * N_CHUNKS  # a lap reads every chunk once
    assert incremental.n_iter_ < batch.n_iter_
    bounds = np.array(incremental.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * abs(bounds[-1]))
    assert incremental.lower_bound_ == pytest.approx(batch.lower_bound_, abs=1e-5)
    np.testing.assert_allclose(incremental.means_, batch.means_, atol=1e-6)
    np.testing.assert_allclose(incremental.weights_, batch.weights_, atol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_laps_never_lower_the_bound_from_a_random_start(X, covariance_type):
    """From a poor start (random responsibilities) the bound rises lap after lap,
    every covariance type, in-memory input cut into blocks."""
    fit = _quiet(BayesianGaussianMixture(
        n_components=4, covariance_type=covariance_type, init_params="random", random_state=1,
        tol=0, max_iter=8, algorithm="incremental", n_blocks=5).fit, X)
    bounds = np.array(fit.lower_bounds_)
    assert len(bounds) == fit.n_iter_ == 8
    assert np.all(np.diff(bounds) >= -1e-12 * abs(bounds[-1]))
    assert bounds[-1] > bounds[0]


def test_checkpoint_resumes_mid_lap_after_a_failed_read(X, store, tmp_path):
    checkpoint = str(tmp_path / "fit.ckpt")
    kwargs = dict(n_components=3, init_params="random", random_state=0, tol=0, max_iter=6,
                  algorithm="incremental", n_blocks=4, cache=False, **_priors(X))
    # One pass for the random start, then one read of chunk 13 (in block 3) per lap:
    # its fifth read is in lap 4.
    state = {"key": "c/13/0", "seen": 0, "fail_at": 5}
    failing = zarr.open_array(_FailingStore(LocalStore(store), state), mode="r")
    with pytest.raises(OSError, match="read failure"):
        _quiet(BayesianGaussianMixture(**kwargs, checkpoint=checkpoint).fit, failing)
    arrays, saved = read_group(checkpoint, "checkpoint")
    assert (saved["iteration"], saved["block"]) == (3, 3)  # blocks 0-2 of lap 4 done
    assert {"weight_concentration_0", "mean_precision_0", "degrees_of_freedom_0",
            "log_weights_0", "block_stats_0"} <= set(arrays)
    data, reads = counted_array(store)
    resumed = _quiet(BayesianGaussianMixture(**kwargs, checkpoint=checkpoint).fit, data)
    assert reads["count"] == N_CHUNKS // 4 + 2 * N_CHUNKS  # block 3 of lap 4, laps 5 and 6
    uninterrupted = _quiet(BayesianGaussianMixture(**kwargs).fit, zarr.open_array(store))
    for name in FITTED:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
    np.testing.assert_array_equal(resumed.weight_concentration_,
                                  uninterrupted.weight_concentration_)
    assert resumed.lower_bounds_ == uninterrupted.lower_bounds_


def test_save_load_round_trips_an_incremental_fit(X, tmp_path):
    fit = _quiet(BayesianGaussianMixture(n_components=3, covariance_type="tied", random_state=0,
                                         max_iter=5, algorithm="incremental", n_blocks=3,
                                         degrees_of_freedom_prior=4).fit, X)
    fit.save(tmp_path / "model")
    loaded = daskgmm.load(tmp_path / "model")
    assert loaded.get_params() == fit.get_params()
    for name, value in vars(fit).items():
        if name.endswith("_") and not name.startswith("_"):
            again = getattr(loaded, name)
            assert type(again) is type(value), name
            if isinstance(value, tuple):
                value, again = np.stack(value), np.stack(again)
            np.testing.assert_array_equal(again, value, err_msg=name)
            assert np.asarray(again).dtype == np.asarray(value).dtype, name
    np.testing.assert_array_equal(loaded.predict_proba(X), fit.predict_proba(X))


@pytest.mark.parametrize("relaxation", [1.5, "auto"])
def test_relaxation_other_than_one_is_refused(X, relaxation):
    estimator = BayesianGaussianMixture(n_components=2, algorithm="incremental",
                                        relaxation=relaxation)
    with pytest.raises(ValueError, match="relaxation=1 only"):
        estimator.fit(X)
    assert not hasattr(estimator, "converged_")


def test_refused_relaxation_leaves_a_fitted_model_as_it_was(X):
    estimator = _quiet(BayesianGaussianMixture(n_components=2, algorithm="incremental",
                                               n_blocks=2, max_iter=2, random_state=0).fit, X)
    fitted = {name: value for name, value in vars(estimator).items() if name.endswith("_")}
    with pytest.raises(ValueError, match="relaxation=1 only"):
        estimator.set_params(relaxation=1.5).fit(X[:100])
    assert {name for name in vars(estimator) if name.endswith("_")} == fitted.keys()
    for name, value in fitted.items():
        again = getattr(estimator, name)
        if isinstance(value, tuple):
            value, again = np.stack(value), np.stack(again)
        np.testing.assert_array_equal(again, value, err_msg=name)


def _without_new_parameters(checkpoint):
    """The checkpoint as a daskgmm before ``algorithm`` wrote it: its fingerprint
    lacks algorithm, n_blocks and relaxation."""
    arrays, attrs = read_group(checkpoint, "checkpoint")
    older = {name: value for name, value in attrs.items() if name != "checksum"}
    older["fingerprint"] = {name: value for name, value in attrs["fingerprint"].items()
                            if name not in ("algorithm", "n_blocks", "relaxation")}
    zarr.open_group(checkpoint, mode="r+").attrs.put(
        {**older, "checksum": _persist._checksum(arrays, older)})


def test_checkpoint_from_before_algorithm_resumes_a_batch_fit(X, tmp_path, capsys):
    checkpoint = str(tmp_path / "fit.ckpt")
    kwargs = dict(n_components=3, random_state=0, tol=0, **_priors(X))
    _quiet(BayesianGaussianMixture(**kwargs, max_iter=2, checkpoint=checkpoint).fit, X)
    _without_new_parameters(checkpoint)
    with pytest.raises(ValueError, match="algorithm is None there and 'incremental' here"):
        BayesianGaussianMixture(**kwargs, max_iter=4, checkpoint=checkpoint,
                                algorithm="incremental").fit(X)
    capsys.readouterr()
    resumed = _quiet(BayesianGaussianMixture(**kwargs, max_iter=4, checkpoint=checkpoint,
                                             verbose=1).fit, X)
    assert "after iteration 2" in capsys.readouterr().out
    uninterrupted = _quiet(BayesianGaussianMixture(**kwargs, max_iter=4).fit, X)
    assert resumed.lower_bounds_ == uninterrupted.lower_bounds_
    for name in FITTED:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
