"""Seconds per EM iteration: scikit-learn, daskgmm on NumPy, Dask and a LocalCluster, and peers.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_em.py            # configurations A, B, C and D, 10 iterations
    python benchmarks/bench_em.py --peers    # the same, plus pomegranate and torchgmm
    python benchmarks/bench_em.py --spark    # the same, plus Spark ML's GaussianMixture (full)
    python benchmarks/bench_em.py --repeats 2   # the fastest of 2 fits per figure
    python benchmarks/bench_em.py --scale 0.01 --iterations 2 --peers   # smoke test
    python benchmarks/bench_em.py --n-samples 20000 --iterations 2      # one custom configuration

Configurations (``--configs A B C D``, default all; ``--scale`` multiplies N):

- A: N = 1,000,000 rows, D = 16 features, K = 8 components, every covariance type;
- B: N = 200,000 rows, D = 64 features, K = 16 components, every covariance type;
- C: N = 1,000,000, D = 64, K = 64, ``diag`` only (PyCave's published benchmark);
- D: N = 100,000, D = 32, K = 16, ``full`` only (PyCave's published benchmark).

``--n-samples``, ``--n-features`` and ``--n-components`` run one custom
configuration instead, the values not given taken from the configuration named
by ``--configs`` (one name; A by default).

The data are drawn (seeded, float64) from a mixture with random full
covariances, as two kinds (``--data``, default both): ``overlapping`` (random
means) and ``separated`` (the same mixture with its means scaled so that the
closest two are ``SEPARATION`` times the largest standard deviation of any
component apart). Every system starts from the same parameters (K distinct
random rows as means, the covariance of the data for every component, equal
weights) and runs exactly ``--iterations`` EM iterations (``tol=0``), for each
covariance type of the configuration:

- ``scikit-learn``: ``sklearn.mixture.GaussianMixture`` on the NumPy array,
  with the default BLAS threads, as users run it;
- ``scikit-learn float32``: the same on ``X.astype(np.float32)`` (scikit-learn
  keeps float32);
- ``daskgmm numpy`` and ``daskgmm numpy float32``: daskgmm on the NumPy array
  and on its float32 copy (local threads, one BLAS thread per task);
- ``daskgmm dask``: daskgmm on ``da.from_array(X)`` in ``--chunk-rows`` row
  chunks, in memory but not persisted, on the threaded scheduler;
- ``daskgmm dask persisted``: the same array persisted first;
- ``daskgmm localcluster``: daskgmm on a ``distributed.LocalCluster`` of
  ``--workers`` processes with one thread each (distributed pins BLAS to one
  thread there), the data persisted on the workers before timing, in
  ``--n-chunks`` row chunks dealt round-robin so that every worker holds the
  same share;
- ``pomegranate`` and ``torchgmm`` (with ``--peers``, in every dtype of
  ``--dtypes``; see ``benchmarks/peer_gmm.py``): pomegranate 1.x's
  ``GeneralMixtureModel`` of ``Normal`` (no ``tied``) from the same start, and
  torchgmm's (PyCave's maintained fork) ``GaussianMixture`` from the same
  means, on CPU with all cores. They are not dependencies of daskgmm: install
  them in a separate environment (``benchmarks/requirements-peers.txt``);
  where one does not import, one line says that it was skipped and why;
- ``Spark ML local[2]`` (with ``--spark``, full covariances, overlapping data
  only: it evaluates densities outside log space):
  ``pyspark.ml.clustering.GaussianMixture`` (``maxIter=--iterations``,
  ``tol=0.0``, seed 0) on a cached DataFrame of the same rows in
  ``--n-chunks`` partitions, after a 1-iteration warm-up fit (see
  ``benchmarks/spark_gmm.py``). Spark starts from its own initialisation, so
  its means are not compared. It needs ``pip install pyspark`` and a Java
  runtime (``java -version``: Java 17 here); without either, one line says
  that Spark was skipped and why.

``--dtypes float64`` drops the float32 rows; ``--modes`` picks the daskgmm
rows (``numpy`` covers both dtypes).

Prints a header (machine, versions, BLAS, the exact command, the FLOP floor
behind the GFLOP/s column, and this machine's dgemm rate: a ``DGEMM_SIZE``
square float64 ``np.dot`` on one BLAS thread and on all of them, the fastest
of ``DGEMM_REPEATS``), then for every configuration and kind of data the data
and the passes over the source data of one daskgmm fit on Dask input (chunk
reads / chunks; with the default settings and, if the estimator has it, with
``cache=False``), then one Markdown table: configuration, data, covariance
type, system, seconds per iteration (wall time of ``fit`` divided by its
``n_iter_``; with ``--repeats R``, of the fastest of R fits, for every system
alike: this 2-vCPU machine's speed varies by about 10 % from minute to
minute), the speed-ups against scikit-learn float64 and float32 (their seconds
/ the row's), Dask / NumPy (the row's seconds / daskgmm numpy's, for Dask
input), separated / overlapping (the row's seconds / the same system's on
overlapping data), GFLOP/s (the floor FLOPs of one iteration / its seconds),
the largest relative difference of ``means_`` from scikit-learn's float64 fit
(float32 rows too: scikit-learn's float32 fit sums raw moments in float32 and
drifts from its float64 fit; at A ``tied``, 3 iterations from the same start,
its means were 8.7e-2 apart elementwise where daskgmm's float32 means were
2.1e-5 apart), and the peak RSS of this process and of every worker (for Spark: its
JVM and the JVM's Python workers) during the fit (sampled every 0.1 s).
scikit-learn's, the peers' and Spark's ``fit`` also run their initialisation
and scikit-learn's a final E-step; a note after the table gives their seconds
per iteration without them, from a second, 1-iteration fit: (t_n - t_1) / (n -
1). A second table gives the GFLOP/s of daskgmm's float64 ``full`` rows
beside the dgemm rates, in percent.

With ``--scaling`` (the default; ``--no-scaling`` skips it) a last table
follows for the full type of configuration A (or of the custom configuration)
on overlapping data: the same daskgmm fit on a LocalCluster of 1 and of 2
worker processes with one thread each, the data persisted evenly on the
workers, its seconds per iteration and the speed-up from 1 to 2 workers.

Exits with status 1 when a daskgmm result differs from scikit-learn's float64
fit by more than ``TOLERANCE`` (float64 rows) or ``FLOAT32_TOLERANCE`` (float32
rows) relative.
"""

import argparse
import importlib.util
import itertools
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, replace
from importlib import metadata

import dask
import dask.array as da
import distributed
import numpy as np
import psutil
import sklearn
from scipy.spatial.distance import pdist
from distributed import Client, LocalCluster, wait
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

import daskgmm
import peer_gmm
from daskgmm import GaussianMixture
from daskgmm._covariance_types import COVARIANCE_TYPES

MODES = ("numpy", "dask", "dask-persisted", "localcluster")
DTYPES = {"float64": np.float64, "float32": np.float32}
SPARK = "Spark ML local[2]"
PEERS = ("pomegranate", "torchgmm")
SKLEARN = "scikit-learn"
NUMPY = "daskgmm numpy"
# Systems on Dask input, whose seconds are compared with NUMPY's.
DASK_SYSTEMS = ("daskgmm dask", "daskgmm dask persisted", "daskgmm localcluster")


def dtype_name(system, dtype):
    """The name of ``system`` run on ``dtype`` data: float64 is the unmarked default."""
    return system if dtype == "float64" else f"{system} {dtype}"


SYSTEMS = tuple(
    dtype_name(system, dtype)
    for system in (SKLEARN, NUMPY, *DASK_SYSTEMS, *PEERS)
    for dtype in (DTYPES if system in (SKLEARN, NUMPY, *PEERS) else ["float64"])
) + (SPARK,)
SEED = 0
# Largest relative difference of means_ from scikit-learn's float64 fit that passes
# (for float32 rows: FLOAT32_TOLERANCE).
TOLERANCE = 1e-6
FLOAT32_TOLERANCE = 1e-3
# Seconds between two memory samples.
SAMPLE_INTERVAL = 0.1
# Rows whose covariance starts every component.
INIT_ROWS = 100_000
MB = 2**20
# Worker processes (one thread each) of the scaling table.
SCALING_WORKERS = (1, 2)
# Rows of a chunk of the Dask input on threads.
CHUNK_ROWS = 50_000
# Closest means of the separated data, in largest component standard deviations.
SEPARATION = 8.0
# Kinds of data: the separation they are drawn with (None: the means as drawn).
DATA = {"overlapping": None, "separated": SEPARATION}
# This machine's dgemm rate: square products of this size, the fastest of this many.
DGEMM_SIZE = 2000
DGEMM_REPEATS = 3
# What a failed fit raises (numpy's LinAlgError is a ValueError, torch's a RuntimeError).
FIT_ERRORS = (ValueError, RuntimeError)
FLOOR_LINE = (
    "GFLOP/s = floor FLOPs of one iteration / s per iteration; the floor, for the textbook "
    "formulation: full 4·N·K·D², tied 2·N·D² + 4·N·K·D, diag and spherical 6·N·K·D"
)


@dataclass(frozen=True)
class Config:
    name: str
    n_samples: int
    n_features: int
    n_components: int
    covariance_types: tuple = COVARIANCE_TYPES


CONFIGS = {
    "A": Config("A", 1_000_000, 16, 8),
    "B": Config("B", 200_000, 64, 16),
    # The published shapes of PyCave's benchmark.
    "C": Config("C", 1_000_000, 64, 64, ("diag",)),
    "D": Config("D", 100_000, 32, 16, ("full",)),
}
CUSTOM = "custom"
# The configurations whose full type the scaling table measures.
SCALING_CONFIGS = ("A", CUSTOM)
SCALING_SKIPPED = (
    "Scaling: skipped, neither configuration A nor a custom one was run on overlapping data."
)


def floor_flops(covariance_type, config):
    """FLOPs of one EM iteration in the textbook formulation (see FLOOR_LINE)."""
    n, d, k = config.n_samples, config.n_features, config.n_components
    return {
        "full": 4 * n * k * d**2,
        "tied": 2 * n * d**2 + 4 * n * k * d,
        "diag": 6 * n * k * d,
        "spherical": 6 * n * k * d,
    }[covariance_type]


# ------------------------------------------------------------------ data


def spreads_apart(means, factors):
    """Distance of the closest two means / the largest standard deviation of any component."""
    spread = np.linalg.norm(factors, ord=2, axis=(1, 2)).max()
    return pdist(means).min(initial=np.inf) / spread


def mixture_parameters(n_features, n_components, seed=SEED, separation=None):
    """Means, covariance factors (covariance = F Fᵀ) and weights of a random mixture.

    With ``separation``, the means are scaled so that ``spreads_apart(means, factors)``
    equals it.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    factors += 0.3 * np.eye(n_features)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    if separation is not None and n_components > 1:
        means *= separation / spreads_apart(means, factors)
    return means, factors, weights


def sample_mixture(n_samples, parameters, rng):
    """``n_samples`` rows of the mixture, in random component order, float64."""
    means, factors, weights = parameters
    labels = rng.choice(len(weights), size=n_samples, p=weights)
    X = rng.standard_normal((n_samples, means.shape[1]))
    for k in range(len(weights)):
        rows = labels == k
        X[rows] = X[rows] @ factors[k].T + means[k]
    return X


def config_data(config, data="overlapping"):
    """The seeded rows of ``config`` of the kind ``data`` (a key of DATA), and their separation."""
    means, factors, weights = mixture_parameters(
        config.n_features, config.n_components, separation=DATA[data]
    )
    X = sample_mixture(config.n_samples, (means, factors, weights), np.random.default_rng(SEED))
    return X, spreads_apart(means, factors)


def initial_parameters(X, n_components, covariance_type, seed=SEED):
    """weights_init, means_init, precisions_init: random rows, the data's covariance."""
    rng = np.random.default_rng(seed)
    means = X[np.sort(rng.choice(len(X), n_components, replace=False))]
    covariance = np.cov(X[:INIT_ROWS], rowvar=False)
    variances = np.diag(covariance)
    precisions = {
        "full": np.tile(np.linalg.inv(covariance), (n_components, 1, 1)),
        "tied": np.linalg.inv(covariance),
        "diag": np.tile(1 / variances, (n_components, 1)),
        "spherical": np.full(n_components, 1 / variances.mean()),
    }
    return dict(
        weights_init=np.full(n_components, 1 / n_components),
        means_init=means,
        precisions_init=precisions[covariance_type],
    )


# ---------------------------------------------------------------- memory


def rss():
    """Resident set size of the calling process, in bytes."""
    return psutil.Process().memory_info().rss


def client_rss():
    return {"client": rss()}


def cluster_rss(client):
    """A probe: RSS of this process (key ``"client"``) and of every worker (its address).

    The workers' RSS is read from here by process id, not by ``client.run``, which would
    add work to the workers' event loops while they are being timed.
    """
    workers = {address: psutil.Process(pid) for address, pid in client.run(os.getpid).items()}
    return lambda: {"client": rss(), **{a: p.memory_info().rss for a, p in workers.items()}}


def spark_rss():
    """A probe: RSS of this process and, as one worker, of its children (Spark's JVM and its
    Python workers)."""
    children = 0
    for child in psutil.Process().children(recursive=True):
        try:
            children += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return {"client": rss(), "spark": children}


class PeakSampler:
    """Largest value of every key of ``probe()`` while the block runs, sampled in a thread."""

    def __init__(self, probe, interval=SAMPLE_INTERVAL):
        self.probe = probe
        self.interval = interval
        self.peaks = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self):
        for key, value in self.probe().items():
            self.peaks[key] = max(self.peaks.get(key, 0), value)


def timed(func, probe, repeats=1):
    """The fewest wall seconds of ``repeats`` calls of ``func()``; the peaks of ``probe``."""
    times = []
    with PeakSampler(probe) as sampler:
        for _ in range(repeats):
            tic = time.perf_counter()
            func()
            times.append(time.perf_counter() - tic)
    return min(times), sampler.peaks


def format_workers(peaks):
    """Peak RSS of every worker in MB, ``a / b``, or a dash without workers."""
    workers = [f"{peaks[key] / MB:.0f}" for key in sorted(peaks) if key != "client"]
    return " / ".join(workers) or "—"


# ---------------------------------------------------------------- header


def header_lines():
    blas = "; ".join(
        f"{info['internal_api']} {info['version']} {info['architecture']} "
        f"({info['prefix']}, {info['num_threads']} threads)"
        for info in threadpool_info()
        if info["user_api"] == "blas"
    )
    return [
        f"Machine: os.cpu_count()={os.cpu_count()}, {platform.platform()}, "
        f"{platform.machine()}, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, dask {dask.__version__}, "
        f"distributed {distributed.__version__}, daskgmm {daskgmm.__version__}",
        f"BLAS: {blas}",
        f"Command: {shlex.join([os.path.basename(sys.executable), *sys.argv])}",
    ]


def dgemm_rates():
    """GFLOP/s of a DGEMM_SIZE square float64 ``np.dot``: {BLAS threads: rate}, 1 and all."""
    a, b = np.random.default_rng(SEED).standard_normal((2, DGEMM_SIZE, DGEMM_SIZE))
    out = np.empty_like(a)
    rates = {}
    for threads in sorted({1, os.cpu_count()}):
        with threadpool_limits(limits=threads, user_api="blas"):
            np.dot(a, b, out=out)  # warm-up
            seconds, _ = timed(lambda: np.dot(a, b, out=out), client_rss, DGEMM_REPEATS)
        rates[threads] = 2 * DGEMM_SIZE**3 / seconds / 1e9
    return rates


def dgemm_line(rates):
    return (
        f"dgemm: {DGEMM_SIZE}x{DGEMM_SIZE} float64 np.dot, fastest of {DGEMM_REPEATS}: "
        + ", ".join(f"{rate:.1f} GFLOP/s on {n} BLAS thread(s)" for n, rate in rates.items())
    )


def java_executable():
    """The ``java`` on PATH, else ``$JAVA_HOME/bin/java``, else None."""
    home = os.environ.get("JAVA_HOME")
    fallback = os.path.join(home, "bin", "java") if home else None
    return shutil.which("java") or (fallback if fallback and os.path.exists(fallback) else None)


def spark_line():
    """``(True, versions)`` when Spark can run here, else ``(False, why it is skipped)``."""
    java = java_executable()
    if importlib.util.find_spec("pyspark") is None:
        return False, "Spark: skipped, pyspark is not installed (pip install pyspark)"
    if java is None:
        return False, "Spark: skipped, no Java runtime (no java on PATH, no $JAVA_HOME/bin/java)"
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    return True, f"Spark: pyspark {metadata.version('pyspark')}, {version.splitlines()[0]}, {java}"


# ------------------------------------------------------------ benchmarks


@dataclass(frozen=True)
class Row:
    """What a result measures: its place in the table."""

    config: str
    data: str  # a key of DATA
    covariance_type: str
    system: str
    dtype: str = "float64"  # a key of DTYPES

    @property
    def label(self):
        """The system's name in the tables."""
        return dtype_name(self.system, self.dtype)


@dataclass
class Result:
    row: Row
    seconds: float | None  # per iteration; None where the fit failed
    means: np.ndarray | None
    peaks: dict  # bytes: "client" and one entry per worker
    failure: str | None = None  # the exception's type, where the fit failed
    error: float | None = None  # largest relative difference of means_ from scikit-learn's
    em_only: float | None = None  # s/iteration without the fixed cost of fit, where measured


def measure(row, estimator, X, probe, repeats):
    """The result of ``estimator.fit(X)``; a failed fit is printed and gives a failed result."""
    try:
        seconds, peaks = timed(lambda: estimator.fit(X), probe, repeats)
    except FIT_ERRORS as error:
        print(f"{row.config} {row.data} {row.covariance_type} {row.label} failed: {error!r}")
        return Result(row, None, None, {}, failure=type(error).__name__)
    return Result(row, seconds / estimator.n_iter_, np.asarray(estimator.means_), peaks)


def measure_em_only(row, make, X, iterations, probe, repeats):
    """The result of ``make(iterations).fit(X)``, with its s/iteration without fixed costs.

    That is (t_n - t_1) / (n - 1), from a fit of ``make(1)`` timed right after.
    """
    estimator = make(iterations)
    result = measure(row, estimator, X, probe, repeats)
    n = getattr(estimator, "n_iter_", 0)
    if result.failure is None and n > 1:
        one_iteration = make(1)
        one, _ = timed(lambda: one_iteration.fit(X), probe, repeats)
        result.em_only = (result.seconds * n - one) / (n - 1)
    return result


def estimator_kwargs(X, covariance_type, config, iterations):
    """The same start and the same fixed number of iterations for every system."""
    return dict(
        n_components=config.n_components,
        covariance_type=covariance_type,
        tol=0,
        max_iter=iterations,
        # scikit-learn (and daskgmm on NumPy input, through it) still runs its
        # initialisation before taking the given parameters: the cheapest one.
        init_params="random_from_data",
        random_state=SEED,
        **initial_parameters(X, config.n_components, covariance_type),
    )


def row_blocks(X, n_chunks):
    """X cut into ``n_chunks`` row blocks (views) of equal size, the last one shorter."""
    rows = -(-len(X) // n_chunks)
    return [X[start : start + rows] for start in range(0, len(X), rows)]


def as_dask(X, chunk_rows):
    return da.from_array(X, chunks=(chunk_rows, X.shape[1]))


def persist_balanced(client, blocks):
    """Row blocks (Dask arrays) persisted round-robin over the workers, as one array.

    Left to the scheduler, the chunks can land unevenly (say 3 / 5), and the
    worker holding more becomes the bottleneck of every iteration.
    """
    workers = itertools.cycle(sorted(client.scheduler_info()["workers"]))
    parts = [client.persist(block, workers=[next(workers)]) for block in blocks]
    wait(parts)
    chunks = " / ".join(str(len(keys)) for _, keys in sorted(client.has_what().items()))
    print(f"LocalCluster: data chunks per worker {chunks}")
    return da.concatenate(parts)


def count_passes(X, chunk_rows, kwargs):
    """Passes over the source of one daskgmm fit (chunk reads / chunks) and its n_iter_."""
    reads = itertools.count()

    def touch(block):
        next(reads)
        return block

    dask_X = as_dask(X, chunk_rows)
    counted = dask_X.map_blocks(touch, meta=X[:0])
    with dask.config.set(scheduler="threads"):
        fit = GaussianMixture(**kwargs).fit(counted)
    return next(reads) / dask_X.numblocks[0], fit.n_iter_


def passes_line(X, chunk_rows, kwargs):
    """The passes of a fit with the default settings, and with cache=False if it exists."""
    variants = {"default settings": {}}
    if "cache" in GaussianMixture().get_params():
        variants["cache=False"] = {"cache": False}
    counts = []
    for name, extra in variants.items():
        passes, n_iter = count_passes(X, chunk_rows, {**kwargs, **extra})
        counts.append(f"{name}: {passes:g} (n_iter_ = {n_iter})")
    return "Passes over the source data in one daskgmm fit on Dask input: " + "; ".join(counts)


def local_inputs(X, arrays, args):
    """{(system, dtype): its input} of the daskgmm rows on this process's threads; ``arrays``
    holds X in every dtype of --dtypes."""
    inputs = {}
    if "numpy" in args.modes:
        inputs.update({(NUMPY, dtype): array for dtype, array in arrays.items()})
    if "dask" in args.modes:
        inputs["daskgmm dask", "float64"] = as_dask(X, args.chunk_rows)
    if "dask-persisted" in args.modes:
        persisted = as_dask(X, args.chunk_rows).persist(scheduler="threads")
        inputs["daskgmm dask persisted", "float64"] = persisted
    return inputs


def run_local(X, rows, kwargs_by_type, args, peers):
    """scikit-learn, the daskgmm modes and the peers ({(name, dtype): maker}) on this process."""
    arrays = {dtype: X.astype(DTYPES[dtype], copy=False) for dtype in args.dtypes}
    inputs = local_inputs(X, arrays, args)
    results = []
    with dask.config.set(scheduler="threads"):
        for covariance_type, kwargs in kwargs_by_type.items():
            row = replace(rows, covariance_type=covariance_type)
            for dtype, array in arrays.items():
                results.append(
                    measure_em_only(
                        replace(row, system=SKLEARN, dtype=dtype),
                        lambda n, kwargs=kwargs: SklearnGaussianMixture(
                            **{**kwargs, "max_iter": n}),
                        array,
                        kwargs["max_iter"],
                        client_rss,
                        args.repeats,
                    )
                )
            for (system, dtype), data in inputs.items():
                results.append(
                    measure(
                        replace(row, system=system, dtype=dtype),
                        GaussianMixture(**kwargs),
                        data,
                        client_rss,
                        args.repeats,
                    )
                )
            for (name, dtype), make in peers.items():
                if covariance_type not in peer_gmm.COVARIANCE_TYPES[name]:
                    continue
                results.append(
                    measure_em_only(
                        replace(row, system=name, dtype=dtype),
                        lambda n, make=make, kwargs=kwargs: make(kwargs, n),
                        arrays[dtype],
                        kwargs["max_iter"],
                        client_rss,
                        args.repeats,
                    )
                )
    return results


def run_cluster(X, rows, kwargs_by_type, n_workers, n_chunks, repeats,
                system="daskgmm localcluster"):
    """daskgmm on a LocalCluster of ``n_workers`` × 1 thread, the data persisted on the workers."""
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # One small graph per block, not the whole NumPy array in each.
        blocks = [da.from_array(block) for block in row_blocks(X, n_chunks)]
        X_workers = persist_balanced(client, blocks)
        # Warm-up: the workers import daskgmm and scikit-learn on their first task.
        first = next(iter(kwargs_by_type.values()))
        GaussianMixture(**{**first, "max_iter": 1}).fit(X_workers)
        return [
            measure(
                replace(rows, covariance_type=covariance_type, system=system),
                GaussianMixture(**kwargs),
                X_workers,
                cluster_rss(client),
                repeats,
            )
            for covariance_type, kwargs in kwargs_by_type.items()
        ]


def run_spark(X, rows, config, args):
    """Spark ML's GaussianMixture (full) on local[2], the rows cached in Spark before timing."""
    import spark_gmm

    with tempfile.TemporaryDirectory() as tmp, spark_gmm.session() as spark:
        path = os.path.join(tmp, "X.npy")
        np.save(path, X)
        frame = spark_gmm.features_frame(spark, path, len(X), args.n_chunks)

        def make(max_iter):
            return spark_gmm.SparkGaussianMixture(config.n_components, max_iter, SEED)

        make(1).fit(frame)  # warm-up: the JVM compiles the EM code on the first fit
        return measure_em_only(
            replace(rows, covariance_type="full", system=SPARK),
            make,
            frame,
            args.iterations,
            spark_rss,
            args.repeats,
        )


def run_config(config, data, args, spark_ready, peers):
    """The main table's results of ``config`` on ``data`` and, if it is the scaling one, the
    scaling's."""
    X, spreads = config_data(config, data)
    print(
        f"\nConfiguration {config.name}, {data} data (closest means {spreads:.1f} largest "
        f"standard deviations apart): {config.n_samples:,} rows x {config.n_features} "
        f"features, {config.n_components} components, float64, {X.nbytes / MB:.0f} MB; "
        f"Dask input in {args.chunk_rows:,}-row chunks on threads, in {args.n_chunks} chunks "
        f"on the LocalCluster; {args.iterations} iterations, tol=0, the same start for every "
        "system"
    )
    covariance_types = [c for c in args.covariance_types if c in config.covariance_types]
    kwargs_by_type = {c: estimator_kwargs(X, c, config, args.iterations) for c in covariance_types}
    if not kwargs_by_type:
        return [], []
    print(passes_line(X, args.chunk_rows, next(iter(kwargs_by_type.values()))))
    rows = Row(config.name, data, None, None)
    results = run_local(X, rows, kwargs_by_type, args, peers)
    if "localcluster" in args.modes:
        results += run_cluster(
            X, rows, kwargs_by_type, args.workers, args.n_chunks, args.repeats
        )
    overlapping = DATA[data] is None
    if spark_ready and overlapping and "full" in kwargs_by_type:
        results.append(run_spark(X, rows, config, args))
    scaling = []
    if args.scaling and overlapping and config.name in SCALING_CONFIGS and "full" in kwargs_by_type:
        scaling = run_scaling(X, rows, config, args)
    return results, scaling


def run_scaling(X, rows, config, args):
    """daskgmm, full, on a LocalCluster of 1 and of 2 workers."""
    kwargs = {"full": estimator_kwargs(X, "full", config, args.iterations)}
    return [
        run_cluster(
            X, rows, kwargs, n, args.n_chunks, args.repeats, f"daskgmm localcluster {n}x1"
        )[0]
        for n in SCALING_WORKERS
    ]


# ---------------------------------------------------------------- output


def set_errors(results, references):
    """Relative difference of every daskgmm result's means_ from scikit-learn's float64 fit."""
    reference = {
        r.row: r.means for r in references if r.row.system == SKLEARN and r.failure is None
    }
    for r in results:
        expected = reference.get(replace(r.row, system=SKLEARN, dtype="float64"))
        if r.row.system.startswith("daskgmm") and r.failure is None and expected is not None:
            r.error = float(np.max(np.abs(r.means - expected) / np.abs(expected)))


def tolerance(result):
    return FLOAT32_TOLERANCE if result.row.dtype == "float32" else TOLERANCE


def format_error(result):
    if result.error is None:
        return "—"
    return f"{result.error:.1e}" + ("" if result.error <= tolerance(result) else " FAIL")


def gflops(result, configs):
    """Achieved GFLOP/s of ``result``: its floor FLOPs per iteration / its s/iteration."""
    config = configs[result.row.config]
    return floor_flops(result.row.covariance_type, config) / result.seconds / 1e9


def format_ratio(numerator, denominator):
    """``numerator / denominator`` to two decimals, or a dash where either is missing."""
    if numerator is None or denominator is None:
        return "—"
    return f"{numerator / denominator:.2f}"


def ratios(result, seconds):
    """The speed-ups against scikit-learn float64 and float32, Dask / NumPy and separated /
    overlapping of ``result``, formatted; ``seconds`` maps every Row to its s/iteration."""
    row = result.row
    numpy = seconds.get(replace(row, system=NUMPY)) if row.system in DASK_SYSTEMS else None
    overlapping = None if DATA[row.data] is None else seconds.get(replace(row, data="overlapping"))
    return [
        format_ratio(seconds.get(replace(row, system=SKLEARN, dtype="float64")), result.seconds),
        format_ratio(seconds.get(replace(row, system=SKLEARN, dtype="float32")), result.seconds),
        format_ratio(result.seconds, numpy),
        format_ratio(result.seconds, overlapping),
    ]


def table(results, configs):
    seconds = {r.row: r.seconds for r in results if r.failure is None}
    lines = [
        "| config | data | covariance type | system | s/iteration | speed-up vs scikit-learn "
        "| speed-up vs scikit-learn float32 | Dask / NumPy | separated / overlapping | GFLOP/s "
        "| max rel. error vs scikit-learn | peak client RSS MB | peak worker RSS MB |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.failure is not None:
            cells = [r.row.config, r.row.data, r.row.covariance_type, r.row.label]
            lines.append("| " + " | ".join(cells) + f" | failed ({r.failure}) |" + " — |" * 8)
            continue
        cells = [
            r.row.config,
            r.row.data,
            r.row.covariance_type,
            r.row.label,
            f"{r.seconds:.4f}",
            *ratios(r, seconds),
            f"{gflops(r, configs):.2f}",
            format_error(r),
            f"{r.peaks['client'] / MB:.0f}",
            format_workers(r.peaks),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def em_only_note(results):
    em_only = [r for r in results if r.em_only is not None]
    if not em_only:
        return []
    return [
        "",
        "scikit-learn's fit also runs its initialisation (an M-step) and a final E-step "
        "(the peers' and Spark's: their initialisation). Without them ((t_n - t_1) / (n - 1)) "
        "the s/iteration is: "
        + ", ".join(
            f"{r.row.config} {r.row.data} {r.row.covariance_type} {r.row.label} {r.em_only:.4f}"
            for r in em_only
        )
        + ".",
    ]


def dgemm_table(results, configs, rates):
    """daskgmm's float64 full rows: GFLOP/s and its percentage of every dgemm rate."""
    full = [
        r
        for r in results
        if r.row.covariance_type == "full"
        and r.failure is None
        and r.row.system.startswith("daskgmm")
        and r.row.dtype == "float64"
    ]
    if not full:
        return []
    lines = [
        "",
        f"The full kernel against this machine's dgemm ({DGEMM_SIZE}x{DGEMM_SIZE} float64, "
        "measured at the start of this run)",
        "",
        "| config | data | system | GFLOP/s | "
        + " | ".join(f"% of dgemm on {n} thread(s) ({rate:.1f})" for n, rate in rates.items())
        + " |",
        "|---|---|---|---:|" + "---:|" * len(rates),
    ]
    for r in full:
        rate = gflops(r, configs)
        percentages = [f"{100 * rate / dgemm:.0f}" for dgemm in rates.values()]
        lines.append(
            f"| {r.row.config} | {r.row.data} | {r.row.label} | {rate:.2f} | "
            + " | ".join(percentages)
            + " |"
        )
    return lines


def scaling_table(results, configs):
    config = results[0].row.config
    lines = [
        "",
        f"Scaling, configuration {config}, full: daskgmm on a LocalCluster of 1 and of 2 "
        "worker processes x 1 thread, the data persisted evenly on the workers",
        "",
        "| workers | s/iteration | speed-up vs 1 worker | GFLOP/s "
        "| max rel. error vs scikit-learn | peak worker RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, r in zip(SCALING_WORKERS, results):
        if r.failure is not None:
            lines.append(f"| {n} | failed ({r.failure}) |" + " — |" * 4)
            continue
        lines.append(
            f"| {n} | {r.seconds:.4f} | {format_ratio(results[0].seconds, r.seconds)} "
            f"| {gflops(r, configs):.2f} | {format_error(r)} | {format_workers(r.peaks)} |"
        )
    return lines


# ------------------------------------------------------------- arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIGS, help="configurations to run (default: all)"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies N of every configuration"
    )
    for option in ("--n-samples", "--n-features", "--n-components"):
        parser.add_argument(option, type=int, help="run one custom configuration")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--covariance-types", nargs="+", choices=COVARIANCE_TYPES, default=list(COVARIANCE_TYPES)
    )
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument(
        "--n-chunks", type=int, default=8,
        help="row chunks of the data on the LocalCluster and in Spark",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=CHUNK_ROWS,
        help="rows of a chunk of the Dask input on threads",
    )
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="full type of configuration A on 1 and 2 LocalCluster workers",
    )
    parser.add_argument(
        "--peers", action="store_true", help="add pomegranate and torchgmm where they import"
    )
    parser.add_argument("--spark", action="store_true", help="add Spark ML's GaussianMixture")
    parser.add_argument(
        "--repeats", type=int, default=1,
        help="fits per measurement, of which the fastest counts (every system alike)",
    )
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.configs = selected_configs(parser, args)
    return args


def selected_configs(parser, args):
    """The configurations named by --configs, or the custom one, N times --scale."""
    custom = {
        field: getattr(args, field)
        for field in ("n_samples", "n_features", "n_components")
        if getattr(args, field) is not None
    }
    configs = [CONFIGS[name] for name in args.configs or CONFIGS]
    if custom:
        if len(configs) > 1 and args.configs:
            parser.error("--n-samples/--n-features/--n-components take at most one --configs")
        configs = [replace(configs[0], name=CUSTOM, **custom)]
    configs = [replace(c, n_samples=round(c.n_samples * args.scale)) for c in configs]
    if any(c.n_samples < c.n_components for c in configs):
        parser.error("every configuration needs at least K rows")
    return configs


def sort_results(results, args):
    """In place: by configuration, data, covariance type and system, each in the order given."""
    names = [c.name for c in args.configs]
    results.sort(
        key=lambda r: (
            names.index(r.row.config),
            args.data.index(r.row.data),
            args.covariance_types.index(r.row.covariance_type),
            SYSTEMS.index(r.row.label),
        )
    )


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="Sending large graph")
    rates = dgemm_rates()
    print("\n".join([*header_lines(), FLOOR_LINE, dgemm_line(rates)]))
    spark_ready = False
    if args.spark:
        spark_ready, line = spark_line()
        print(line)
    peers = {}
    if args.peers:
        found, line = peer_gmm.available(PEERS)
        print(line)
        peers = {(name, dtype): peer_gmm.MAKERS[name] for name in found for dtype in args.dtypes}

    results, scaling = [], []
    for config in args.configs:
        for data in args.data:
            config_results, config_scaling = run_config(config, data, args, spark_ready, peers)
            results += config_results
            scaling += config_scaling
    sort_results(results, args)
    set_errors(results + scaling, results)
    configs = {c.name: c for c in args.configs}
    print()
    print("\n".join(table(results, configs) + em_only_note(results)))
    print("\n".join(dgemm_table(results, configs, rates)))
    if args.scaling:
        print("\n".join(scaling_table(scaling, configs) if scaling else ["", SCALING_SKIPPED]))
    if any(r.error is not None and not r.error <= tolerance(r) for r in results + scaling):
        sys.exit(
            f"FAIL: a daskgmm result differs from scikit-learn's by more than {TOLERANCE:g} "
            f"(float64) or {FLOAT32_TOLERANCE:g} (float32)"
        )


if __name__ == "__main__":
    main()
