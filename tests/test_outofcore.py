"""A zarr store three times larger than the cluster's memory is streamed, not loaded."""

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
# after a fit: a limit of 300 MiB killed the workers before any data.
WORKER_MEMORY = "450MiB"
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


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    total_memory = 2 * parse_bytes(WORKER_MEMORY)
    n_samples = int(3.2 * total_memory / (8 * N_FEATURES))
    X, parameters = make_mixture(n_samples, N_FEATURES, N_COMPONENTS, chunk_rows=200_000, seed=7)
    path = str(tmp_path_factory.mktemp("big") / "x.zarr")
    X.to_zarr(path, compressors=None)  # random floats barely compress; writing is faster
    return path, parameters


@pytest.mark.slow
def test_fit_streams_a_store_larger_than_the_cluster(big_store):
    path, (weights, means, covariances) = big_store
    stored = zarr.open_array(path, mode="r")
    assert stored.nbytes >= 3 * 2 * parse_bytes(WORKER_MEMORY)
    kwargs = dict(n_components=N_COMPONENTS, covariance_type="full", weights_init=weights,
                  means_init=means, precisions_init=np.linalg.inv(covariances),
                  max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=WORKER_MEMORY, dashboard_address=None) as cluster, \
                Client(cluster):
            workers = set(cluster.scheduler.workers)
            with _StatusWatch(cluster.scheduler) as watch:
                streamed = GaussianMixture(**kwargs).fit(stored)
            assert set(cluster.scheduler.workers) == workers, "a worker was lost"
            assert watch.seen == {"Status.running"}, f"workers were {watch.seen}"
        in_memory = GaussianMixture(**kwargs).fit(stored[:])
    for name in ["weights_", "means_", "covariances_"]:
        np.testing.assert_allclose(getattr(streamed, name), getattr(in_memory, name), rtol=1e-9)
    assert streamed.lower_bounds_ == pytest.approx(in_memory.lower_bounds_, rel=1e-9)
