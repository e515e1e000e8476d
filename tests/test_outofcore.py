"""A zarr store larger than the cluster's memory is streamed, not loaded."""

import threading
import warnings

import numpy as np
import pytest
import zarr
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture
from daskgmm.datasets import make_mixture

# A worker process that has imported numpy, dask (which imports xarray and pandas when
# they are installed), distributed and scikit-learn holds about 220 MiB, and 310 MiB
# after a fit; in a full test run more (316 MiB before any data once). So the workers'
# memory limit is measured: the footprint of a worker after a small fit, plus a margin
# for the chunks and temporaries of a task, far smaller than the store.
WORKER_MARGIN = parse_bytes("256MiB")
# The store is at least this many times the sum of the workers' memory limits (and
# more times their room above the footprint).
STORE_FACTOR = 1.2
N_FEATURES, N_COMPONENTS = 8, 2


class _StatusWatch:
    """Polls the scheduler's view of the workers and records any pause."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self.stop.wait(0.05):
            self.seen.update(str(ws.status) for ws in list(self.scheduler.workers.values()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _process_memory():
    import psutil

    return psutil.Process().memory_info().rss


def _spilled_writes(dask_worker):
    """How many times the worker wrote data to disk (spilled)."""
    return dask_worker.data.cumulative_metrics.get(("disk-write", "count"), 0)


@pytest.fixture(scope="module")
def worker_memory():
    """The memory limit of a worker: a warm worker's measured footprint plus a margin.

    Measured on a cluster like the test's (two worker processes) after a small
    fit, which imports and allocates what a fit does.
    """
    X, _ = make_mixture(20_000, N_FEATURES, N_COMPONENTS, chunk_rows=5_000, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            GaussianMixture(N_COMPONENTS, max_iter=2, cache=False).fit(X)
            footprint = max(client.run(_process_memory).values())
    return footprint + max(WORKER_MARGIN, footprint // 2)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory, worker_memory):
    total_memory = 2 * worker_memory
    n_samples = int(1.05 * STORE_FACTOR * total_memory / (8 * N_FEATURES))
    X, parameters = make_mixture(n_samples, N_FEATURES, N_COMPONENTS, chunk_rows=200_000, seed=7)
    path = str(tmp_path_factory.mktemp("big") / "x.zarr")
    X.to_zarr(path, compressors=None)  # random floats barely compress; writing is faster
    return path, parameters


@pytest.mark.slow
@pytest.mark.timeout(900)  # writes and reads gigabytes, on shared cores too
def test_fit_streams_a_store_larger_than_the_cluster(big_store, worker_memory):
    path, (weights, means, covariances) = big_store
    stored = zarr.open_array(path, mode="r")
    assert stored.nbytes >= STORE_FACTOR * 2 * worker_memory
    kwargs = dict(n_components=N_COMPONENTS, covariance_type="full", weights_init=weights,
                  means_init=means, precisions_init=np.linalg.inv(covariances),
                  max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=worker_memory, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            workers = set(cluster.scheduler.workers)
            with _StatusWatch(cluster.scheduler) as watch:
                streamed = GaussianMixture(**kwargs).fit(stored)
            assert set(cluster.scheduler.workers) == workers, "a worker was lost"
            assert watch.seen == {"Status.running"}, f"workers were {watch.seen}"
            spilled = client.run(_spilled_writes)
            assert set(spilled.values()) == {0}, f"workers spilled to disk: {spilled}"
        in_memory = GaussianMixture(**kwargs).fit(stored[:])
    for name in ["weights_", "means_", "covariances_"]:
        np.testing.assert_allclose(getattr(streamed, name), getattr(in_memory, name), rtol=1e-9)
    assert streamed.lower_bounds_ == pytest.approx(in_memory.lower_bounds_, rel=1e-9)
