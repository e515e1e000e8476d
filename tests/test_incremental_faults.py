"""Incremental EM under faults: a worker lost mid-lap, a checkpointed fit killed mid-lap."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import dask
import dask.array as da
import pytest
import zarr

from daskgmm import GaussianMixture
from daskgmm._checkpoint import fingerprint
from daskgmm._checkpoint import load as load_checkpoint

from .conftest import counted_array, make_mixture
from .test_checkpoint import _same_model
from .test_reliability import _during_fit, _LapsClock, _quiet_fit, assert_same
from .test_reliability import data, three_workers  # noqa: F401 (fixtures, used by name)

N_BLOCKS = 8

# Both tests fit with these parameters (and their own number of laps).
INCREMENTAL = dict(n_components=4, covariance_type="full", random_state=0, tol=0, cache=False,
                   algorithm="incremental", n_blocks=N_BLOCKS)

# On three workers a lap over the 30 chunks takes 0.3-0.6 s: the kill comes in one of
# the first laps of 20.
KILL_INTO_THE_LAPS_SECONDS = 1.0
LAPS_ON_CLUSTER = 20

# The store of the checkpointed fit: N_CHUNKS row chunks, two per block.
STORE_ROWS, STORE_FEATURES, N_CHUNKS = 200_000, 8, 16
CHUNKS_PER_BLOCK = N_CHUNKS // N_BLOCKS
# A lap with a checkpoint after each of its blocks takes about 0.3 s on two cores; the
# fitting process is stopped as soon as it is mid-lap after its first lap.
LAPS_CHECKPOINTED = 20

FIT_SCRIPT = """
import json, sys, warnings
import zarr
from daskgmm import GaussianMixture
warnings.simplefilter("ignore")
X = zarr.open_array(sys.argv[1], mode="r")
GaussianMixture(**json.loads(sys.argv[2]), checkpoint=sys.argv[3]).fit(X)
"""


@pytest.mark.slow
def test_worker_killed_mid_lap_costs_time_not_the_fit(data, three_workers):
    """A worker SIGKILLed during a lap: the fit ends with the model of an undisturbed run."""
    _, client = three_workers
    X = da.from_array(data, chunks=(2000, 6))
    victim = next(iter(client.run(os.getpid).values()))
    output = _LapsClock()
    killed_at = []

    def kill_in_a_lap():
        output.laps_began.wait(timeout=60)
        time.sleep(KILL_INTO_THE_LAPS_SECONDS)
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.monotonic())

    params = dict(INCREMENTAL, max_iter=LAPS_ON_CLUSTER)
    with contextlib.redirect_stdout(output):
        fit = _during_fit(0, kill_in_a_lap,
                          lambda: _quiet_fit(GaussianMixture(**params, verbose=1), X))
    laps = output.times["Initialization 0"], output.times["Initialization 0 did not converge."]
    assert laps[0] < killed_at[0] < laps[1], "the kill did not land in a lap"
    assert victim not in client.run(os.getpid).values(), "the worker was not killed"
    assert fit.n_iter_ == LAPS_ON_CLUSTER
    with dask.config.set(scheduler="threads"):  # the same blocks, off the cluster
        undisturbed = _quiet_fit(GaussianMixture(**params), X)
    assert_same(fit, undisturbed)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    X, _ = make_mixture(n_samples=STORE_ROWS, n_features=STORE_FEATURES, n_components=4, seed=3)
    path = str(tmp_path_factory.mktemp("data") / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(STORE_ROWS // N_CHUNKS, STORE_FEATURES),
                      dtype="f8")[:] = X
    return path


def _stopped_mid_lap(process, checkpoint, identity, timeout=60):
    """Stop (SIGSTOP) the fitting process when its checkpoint is mid-lap after a whole lap.

    Returns the checkpoint's state. It is read while the process is stopped:
    it is then the state a kill leaves, and the read never meets a save
    between its two renames (the only moment the checkpoint is absent).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        assert process.poll() is None, f"the fit ended (code {process.returncode}) first"
        process.send_signal(signal.SIGSTOP)
        _, status = os.waitpid(process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), "the fit ended first"
        if os.path.exists(checkpoint):
            state = load_checkpoint(checkpoint, identity)
            if state.iteration >= 1 and state.block != 0:
                return state
        process.send_signal(signal.SIGCONT)
    raise AssertionError(f"no mid-lap checkpoint after a whole lap within {timeout} s")


@pytest.mark.slow
def test_checkpointed_fit_killed_mid_lap_resumes_to_the_uninterrupted_model(store, tmp_path):
    """A fit SIGKILLed between two blocks of a lap resumes there and ends as if never killed."""
    checkpoint = str(tmp_path / "fit.ckpt")
    params = dict(INCREMENTAL, max_iter=LAPS_CHECKPOINTED)
    identity = fingerprint(GaussianMixture(**params, checkpoint=checkpoint), STORE_ROWS,
                           STORE_FEATURES, None, False)
    process = subprocess.Popen([sys.executable, "-c", FIT_SCRIPT, store, json.dumps(params),
                                checkpoint])
    try:
        saved = _stopped_mid_lap(process, checkpoint, identity)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        process.kill()
    assert 1 <= saved.iteration < LAPS_CHECKPOINTED and 0 < saved.block < N_BLOCKS
    X, reads = counted_array(store)
    resumed = _quiet_fit(GaussianMixture(**params, checkpoint=checkpoint), X)
    # No initialisation, and the lap in progress goes on from the saved block.
    assert reads["count"] == (N_CHUNKS * (LAPS_CHECKPOINTED - saved.iteration)
                              - CHUNKS_PER_BLOCK * saved.block)
    assert load_checkpoint(checkpoint, identity).iteration == LAPS_CHECKPOINTED
    _same_model(resumed, _quiet_fit(GaussianMixture(**params), zarr.open_array(store, mode="r")))
