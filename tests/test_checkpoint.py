"""Checkpoints: a killed fit resumes and ends with the uninterrupted model."""

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture
from daskgmm._checkpoint import fingerprint
from daskgmm._checkpoint import load as load_checkpoint

from .conftest import counted_array, make_mixture

FIT_SCRIPT = """
import sys, warnings
import zarr
from daskgmm import GaussianMixture
warnings.simplefilter("ignore")
X = zarr.open_array(sys.argv[1], mode="r")
GaussianMixture(4, covariance_type="full", random_state=0, max_iter=int(sys.argv[3]), tol=0,
                cache=False, checkpoint=sys.argv[2]).fit(X)
"""


def _fit(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(4, covariance_type="full", random_state=0, tol=0, cache=False,
                               **kwargs).fit(X)


def _same_model(a, b):
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # The parameters are bit for bit; a lap's bound recorded by another process (its own
    # BLAS thread count, so its own summation order) came back 1 and 5 ulp apart
    # (incremental EM, fresh-clone full runs, 9.2e-16 relative): compared to 1e-14.
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-14, atol=0)
    assert (a.n_iter_, a.converged_) == (b.n_iter_, b.converged_)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=4.5e-16, atol=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    X, _ = make_mixture(n_samples=200_000, n_features=8, n_components=4, seed=3)
    path = str(tmp_path_factory.mktemp("data") / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(25_000, 8), dtype="f8")[:] = X
    return path


@pytest.mark.slow
def test_killed_fit_resumes_to_the_uninterrupted_result(store, tmp_path):
    max_iter = 40
    checkpoint = str(tmp_path / "fit.ckpt")
    process = subprocess.Popen([sys.executable, "-c", FIT_SCRIPT, store, checkpoint,
                                str(max_iter)])
    identity = _identity(store, checkpoint)
    try:
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline:
            if os.path.exists(checkpoint):
                try:
                    state = load_checkpoint(checkpoint, identity)
                except ValueError:
                    state = None  # the file is being renamed into place
                if state is not None and state.iteration >= 3:
                    break
            time.sleep(0.05)
        assert process.poll() is None, "the fit ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        process.kill()
    assert state is not None and 3 <= state.iteration < max_iter
    X = zarr.open_array(store, mode="r")
    resumed = _fit(X, max_iter=max_iter, checkpoint=checkpoint)
    assert load_checkpoint(checkpoint, identity).iteration == max_iter
    _same_model(resumed, _fit(X, max_iter=max_iter))


def _identity(store, checkpoint):
    X = zarr.open_array(store, mode="r")
    estimator = GaussianMixture(4, covariance_type="full", random_state=0, tol=0, cache=False,
                                checkpoint=checkpoint)
    return fingerprint(estimator, X.shape[0], X.shape[1], None, False)


def test_finished_checkpoint_returns_its_model_without_reading(tmp_path):
    X, _ = make_mixture(n_samples=2000, n_features=3, n_components=4, seed=1)
    path, checkpoint = str(tmp_path / "x.zarr"), str(tmp_path / "fit.ckpt")
    zarr.create_array(path, shape=X.shape, chunks=(500, 3), dtype="f8")[:] = X
    first = _fit(zarr.open_array(path, mode="r"), max_iter=5, checkpoint=checkpoint)
    stored, reads = counted_array(path)
    again = _fit(stored, max_iter=5, checkpoint=checkpoint)
    _same_model(again, first)
    assert reads["count"] == 0
    longer = _fit(stored, max_iter=8, checkpoint=checkpoint)
    assert reads["count"] == 3 * 4
    _same_model(longer, _fit(zarr.open_array(path, mode="r"), max_iter=8))


@pytest.mark.parametrize("change, match", [
    (dict(n_samples=1999), "n_samples"),
    (dict(covariance_type="diag"), "covariance_type"),
    (dict(reg_covar=1e-3), "reg_covar"),
])
def test_checkpoint_of_another_fit_is_refused(tmp_path, change, match):
    X, _ = make_mixture(n_samples=2000, n_features=3, n_components=4, seed=1)
    checkpoint = str(tmp_path / "fit.ckpt")
    _fit(X, max_iter=2, checkpoint=checkpoint)
    rows = change.pop("n_samples", len(X))
    gm = GaussianMixture(4, random_state=0, tol=0, cache=False, checkpoint=checkpoint,
                         max_iter=2, **change)
    with pytest.raises(ValueError, match=f"other data or parameters.*{match}"):
        gm.fit(X[:rows])


def test_crash_between_the_two_renames_keeps_the_last_checkpoint(tmp_path, capsys):
    """A save killed after moving the old store aside: the next fit finds it again."""
    X, _ = make_mixture(n_samples=2000, n_features=3, n_components=4, seed=1)
    checkpoint = str(tmp_path / "fit.ckpt")
    _fit(X, max_iter=3, checkpoint=checkpoint)
    os.replace(checkpoint, checkpoint + ".old-0123")  # what _swap_in does first
    # A reader (another process, while a save runs) finds the last state and moves nothing.
    estimator = GaussianMixture(4, covariance_type="full", random_state=0, tol=0, cache=False,
                                checkpoint=checkpoint, max_iter=5)
    identity = fingerprint(estimator, len(X), X.shape[1], None, False)
    assert load_checkpoint(checkpoint, identity).iteration == 3
    assert not os.path.exists(checkpoint) and os.path.exists(checkpoint + ".old-0123")
    resumed = _fit(X, max_iter=5, checkpoint=checkpoint, verbose=1)
    assert "after iteration 3" in capsys.readouterr().out
    assert not os.path.exists(checkpoint + ".old-0123")
    _same_model(resumed, _fit(X, max_iter=5))
