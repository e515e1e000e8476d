import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

# pytest-xdist's processes (README's command runs two) share the machine's cores: each
# gets one BLAS and one OpenMP thread, as distributed gives its workers, instead of one
# per core each (two processes of two threads on two cores, with threads spinning while
# they wait). The processes the tests start inherit the variables; in this one a plugin
# may have loaded NumPy's BLAS already, so threadpoolctl sets it (below).
if "PYTEST_XDIST_WORKER" in os.environ:
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import dask
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from distributed.utils import get_mp_context
from threadpoolctl import threadpool_limits
from zarr.storage import LocalStore, WrapperStore

from daskgmm._covariance_types import COVARIANCE_TYPES  # noqa: F401 (the tests import it from here)

from ._warm_kernels import warm_kernels

if "PYTEST_XDIST_WORKER" in os.environ:
    threadpool_limits(1)

# Worker processes of the clusters the tests start here are forked from a server
# that has imported what a worker of a fit imports, as distributed's own test
# suite does: a spawned worker imports dask, distributed, scikit-learn and numba
# itself (about 7 s of CPU on the 2-core CI machine, and as much to stop), which
# made cluster start-up the largest part of the slow tests. The workers are still
# separate processes that receive their tasks pickled, as spawned ones do; the
# command-line and benchmark tests start theirs (in subprocesses) the default way.
WORKER_PRELOAD = ["distributed", "zarr", "daskgmm._gaussian_mixture", "daskgmm._kernels",
                  "daskgmm._fused", "daskgmm._missing", "daskgmm._pattern_kernels"]
dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
# (after distributed's own choice of preloads, which the first call makes)
get_mp_context().set_forkserver_preload(WORKER_PRELOAD)


def _compile_kernels():
    """Compile (or load from numba's disk cache) every kernel a fit can reach, once.

    In a fresh clone numba's cache is empty, and every process reaching a kernel
    first compiles it (3-12 s of CPU per covariance type): the test process and
    each worker of a cluster, at the same time. Compiled here first, before any
    worker starts, the others load it from the cache. The float32 kernels compile
    in a second process while this one compiles the float64 ones (the CI machine
    has two cores), then this one loads them from the cache.
    """
    other = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_warm_kernels.py")),
                              "float32"])
    warm_kernels(np.float64)
    other.wait()
    warm_kernels(np.float32)  # from the cache the other process wrote (or compiled here)


def pytest_configure(config):
    """Compile the kernels in the process that starts the run: pytest-xdist's workers
    (``config.workerinput``) start after it and load each kernel from the cache when a
    test first reaches it, instead of loading all of them again (about 7 s of CPU each)."""
    if not hasattr(config, "workerinput"):
        _compile_kernels()
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    """Run the modules with the most slow tests first, each module's tests together and
    in their order (a stable sort). README's command hands pytest-xdist's two workers
    one module at a time (``--dist loadfile``: a module's fixtures are built once) in
    this order (its own, by number of tests, is turned off in `pytest_configure`): the
    longest modules start first instead of stretching the end of the run."""
    slow_tests = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_tests[item.path])


def make_mixture(n_samples=2000, n_features=3, n_components=3, seed=0, separation=4.0):
    """Rows drawn from a mixture with random full covariances; returns (X, labels)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=separation, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    mixing = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    noise = rng.normal(size=(n_samples, n_features))
    X = means[labels] + np.einsum("nij,nj->ni", mixing[labels], noise) + 0.3 * noise
    return X, labels


@pytest.fixture(scope="session")
def cluster():
    """A real two-worker LocalCluster with worker processes, one thread each."""
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    """A client of the shared cluster; closed after the test so it is not the default."""
    with Client(cluster) as client:
        yield client


class InstrumentedStore(WrapperStore):
    """A real zarr store whose reads pass through ``on_read(key)`` first.

    Subclasses count reads or make one fail; ``state`` is shared by the copies
    zarr makes of the store.
    """

    def __init__(self, store, state):
        super().__init__(store)
        self.state = state

    def _with_store(self, store):
        return type(self)(store, self.state)

    def on_read(self, key):
        raise NotImplementedError

    async def get(self, key, prototype, byte_range=None):
        self.on_read(key)
        return await super().get(key, prototype, byte_range)


class CountingStore(InstrumentedStore):
    """A real LocalStore that counts the reads of data chunks (``state["count"]``)."""

    def on_read(self, key):
        if key.startswith("c/"):
            with self.state["lock"]:
                self.state["count"] += 1


class LoggingStore(InstrumentedStore):
    """A real LocalStore that appends the key of every data chunk read to the file
    ``state["log"]``: reads counted across worker processes."""

    def on_read(self, key):
        if key.startswith("c/"):
            with open(self.state["log"], "a") as log:
                log.write(key + "\n")


def logged_array(path, log):
    """The zarr array at ``path`` opened through a `LoggingStore` writing to ``log``."""
    return zarr.open_array(LoggingStore(LocalStore(path), {"log": str(log)}), mode="r")


def counted_array(path):
    """The zarr array at ``path`` opened through a `CountingStore`, and its read count."""
    reads = {"count": 0, "lock": threading.Lock()}
    return zarr.open_array(CountingStore(LocalStore(path), reads), mode="r"), reads
