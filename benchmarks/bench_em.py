"""Seconds per EM iteration: scikit-learn against daskgmm on NumPy, threads and a LocalCluster.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_em.py            # configurations A and B, 10 iterations
    python benchmarks/bench_em.py --spark    # the same, plus Spark ML's GaussianMixture (full)
    python benchmarks/bench_em.py --spark --repeats 2   # the fastest of 2 fits per figure
    python benchmarks/bench_em.py --scale 0.01 --iterations 2 --spark   # smoke test
    python benchmarks/bench_em.py --n-samples 20000 --iterations 2      # one custom configuration

Configurations (``--configs A B``, default both; ``--scale`` multiplies N):

- A: N = 1,000,000 rows, D = 16 features, K = 8 components;
- B: N = 200,000 rows, D = 64 features, K = 16 components.

``--n-samples``, ``--n-features`` and ``--n-components`` run one custom
configuration instead, the values not given taken from the configuration named
by ``--configs`` (one name; A by default).

The data are drawn (seeded, float64) from a mixture with random full
covariances. Every system starts from the same parameters (K distinct random
rows as means, the covariance of the data for every component, equal weights)
and runs exactly ``--iterations`` EM iterations (``tol=0``), for each of the
four covariance types:

- ``scikit-learn``: ``sklearn.mixture.GaussianMixture`` on the NumPy array,
  with the default BLAS threads, as users run it;
- ``daskgmm numpy``: daskgmm on the NumPy array (local threads, one BLAS
  thread per task);
- ``daskgmm dask-threads``: daskgmm on ``da.from_array(X)`` cut into
  ``--n-chunks`` row chunks, persisted, on the threaded scheduler;
- ``daskgmm localcluster``: daskgmm on a ``distributed.LocalCluster`` of
  ``--workers`` processes with one thread each (distributed pins BLAS to one
  thread there), the data persisted on the workers before timing, its row
  chunks dealt round-robin so that every worker holds the same share;
- ``Spark ML local[2]`` (with ``--spark``, full covariances only):
  ``pyspark.ml.clustering.GaussianMixture`` (``maxIter=--iterations``,
  ``tol=0.0``, seed 0) on a cached DataFrame of the same rows, after a
  1-iteration warm-up fit (see ``benchmarks/spark_gmm.py``). Spark starts from
  its own initialisation, so its means are not compared. It needs
  ``pip install pyspark`` and a Java runtime (``java -version``: Java 17 here);
  without either, one line says that Spark was skipped and why.

Prints a header (machine, versions, BLAS, the exact command, the FLOP floor
behind the GFLOP/s column), then for every configuration the data and the
passes over the source data of one daskgmm fit on Dask input (chunk reads /
chunks; with the default settings and, if the estimator has it, with
``cache=False``), then one Markdown table: configuration, covariance type,
system, seconds per iteration (wall time of ``fit`` divided by its
``n_iter_``; with ``--repeats R``, of the fastest of R fits, for every system
alike: this 2-vCPU machine's speed varies by about 10 % from minute to
minute), ratio (scikit-learn's seconds / the row's), GFLOP/s (the floor
FLOPs of one iteration / its seconds), the largest relative difference of
``means_`` from scikit-learn's, and the peak RSS of this process and of every
worker (for Spark: its JVM and the JVM's Python workers) during the fit
(sampled every 0.1 s). scikit-learn's (and Spark's) ``fit`` also runs its
initialisation and scikit-learn's a final E-step; a note after the table gives
their seconds per iteration without them, from a second, 1-iteration fit:
(t_n - t_1) / (n - 1).

With ``--scaling`` (the default; ``--no-scaling`` skips it) a second table
follows for the full type of configuration A (or of the custom configuration):
the same daskgmm fit on a LocalCluster of 1 and of 2 worker processes with one
thread each, the data persisted evenly on the workers, its seconds per
iteration and the speed-up from 1 to 2 workers.

Exits with status 1 when a daskgmm result differs from scikit-learn's by more
than 1e-6 relative.
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
from distributed import Client, LocalCluster, wait
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_info

import daskgmm
from daskgmm import GaussianMixture

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MODES = ("numpy", "dask-threads", "localcluster")
SPARK = "Spark ML local[2]"
SYSTEMS = ("scikit-learn",) + tuple(f"daskgmm {mode}" for mode in MODES) + (SPARK,)
SEED = 0
# Largest relative difference of means_ from scikit-learn's that passes.
TOLERANCE = 1e-6
# Seconds between two memory samples.
SAMPLE_INTERVAL = 0.1
# Rows whose covariance starts every component.
INIT_ROWS = 100_000
MB = 2**20
# Worker processes (one thread each) of the scaling table.
SCALING_WORKERS = (1, 2)
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


CONFIGS = {
    "A": Config("A", 1_000_000, 16, 8),
    "B": Config("B", 200_000, 64, 16),
}
CUSTOM = "custom"
# The configurations whose full type the scaling table measures.
SCALING_CONFIGS = ("A", CUSTOM)
SCALING_SKIPPED = "Scaling: skipped, neither configuration A nor a custom one was run."


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


def mixture_parameters(n_features, n_components, seed=SEED):
    """Means, covariance factors (covariance = F Fᵀ) and weights of a random mixture."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    factors += 0.3 * np.eye(n_features)
    weights = rng.dirichlet(np.full(n_components, 5.0))
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


def config_data(config):
    """The seeded rows of ``config``."""
    parameters = mixture_parameters(config.n_features, config.n_components)
    return sample_mixture(config.n_samples, parameters, np.random.default_rng(SEED))


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


@dataclass
class Result:
    config: str
    covariance_type: str
    system: str
    seconds: float  # per iteration
    means: np.ndarray
    peaks: dict  # bytes: "client" and one entry per worker
    error: float | None = None  # largest relative difference of means_ from scikit-learn's
    em_only: float | None = None  # s/iteration without the fixed cost of fit, where measured


def measure(config, covariance_type, system, estimator, X, probe, repeats):
    seconds, peaks = timed(lambda: estimator.fit(X), probe, repeats)
    return Result(
        config.name, covariance_type, system, seconds / estimator.n_iter_, estimator.means_, peaks
    )


def measure_em_only(config, covariance_type, system, make, X, iterations, probe, repeats):
    """The result of ``make(iterations).fit(X)``, with its s/iteration without fixed costs.

    That is (t_n - t_1) / (n - 1), from a fit of ``make(1)`` timed right after.
    """
    estimator = make(iterations)
    result = measure(config, covariance_type, system, estimator, X, probe, repeats)
    n = estimator.n_iter_
    if n > 1:
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


def as_dask(X, n_chunks):
    return da.from_array(X, chunks=(len(row_blocks(X, n_chunks)[0]), X.shape[1]))


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


def count_passes(X, n_chunks, kwargs):
    """Passes over the source of one daskgmm fit (chunk reads / chunks) and its n_iter_."""
    reads = itertools.count()

    def touch(block):
        next(reads)
        return block

    counted = as_dask(X, n_chunks).map_blocks(touch, meta=X[:0])
    with dask.config.set(scheduler="threads"):
        fit = GaussianMixture(**kwargs).fit(counted)
    return next(reads) / n_chunks, fit.n_iter_


def passes_line(X, n_chunks, kwargs):
    """The passes of a fit with the default settings, and with cache=False if it exists."""
    variants = {"default settings": {}}
    if "cache" in GaussianMixture().get_params():
        variants["cache=False"] = {"cache": False}
    counts = []
    for name, extra in variants.items():
        passes, n_iter = count_passes(X, n_chunks, {**kwargs, **extra})
        counts.append(f"{name}: {passes:g} (n_iter_ = {n_iter})")
    return "Passes over the source data in one daskgmm fit on Dask input: " + "; ".join(counts)


def measure_sklearn(config, covariance_type, kwargs, X, repeats):
    """scikit-learn's result, with its s/iteration without initialisation and final E-step."""
    return measure_em_only(
        config,
        covariance_type,
        "scikit-learn",
        lambda n: SklearnGaussianMixture(**{**kwargs, "max_iter": n}),
        X,
        kwargs["max_iter"],
        client_rss,
        repeats,
    )


def run_local(X, config, kwargs_by_type, args):
    """scikit-learn and the daskgmm modes on this process's threads."""
    runs = []
    if "numpy" in args.modes:
        runs.append(("daskgmm numpy", X))
    if "dask-threads" in args.modes:
        runs.append(
            ("daskgmm dask-threads", as_dask(X, args.n_chunks).persist(scheduler="threads"))
        )
    results = []
    with dask.config.set(scheduler="threads"):
        for covariance_type, kwargs in kwargs_by_type.items():
            results.append(measure_sklearn(config, covariance_type, kwargs, X, args.repeats))
            for system, data in runs:
                estimator = GaussianMixture(**kwargs)
                result = measure(
                    config, covariance_type, system, estimator, data, client_rss, args.repeats
                )
                results.append(result)
    return results


def run_cluster(X, config, kwargs_by_type, n_workers, n_chunks, repeats,
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
                config,
                covariance_type,
                system,
                GaussianMixture(**kwargs),
                X_workers,
                cluster_rss(client),
                repeats,
            )
            for covariance_type, kwargs in kwargs_by_type.items()
        ]


def run_spark(X, config, args):
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
            config, "full", SPARK, make, frame, args.iterations, spark_rss, args.repeats
        )


def run_config(config, args, spark_ready):
    """The main table's results of ``config`` and, if it is the scaling one, the scaling's."""
    X = config_data(config)
    print(
        f"\nConfiguration {config.name}: {config.n_samples:,} rows x {config.n_features} "
        f"features, {config.n_components} components, float64, {X.nbytes / MB:.0f} MB; "
        f"Dask input in {args.n_chunks} row chunks; {args.iterations} iterations, tol=0, "
        "the same start for every system"
    )
    kwargs_by_type = {
        c: estimator_kwargs(X, c, config, args.iterations) for c in args.covariance_types
    }
    print(passes_line(X, args.n_chunks, next(iter(kwargs_by_type.values()))))
    results = run_local(X, config, kwargs_by_type, args)
    if "localcluster" in args.modes:
        results += run_cluster(
            X, config, kwargs_by_type, args.workers, args.n_chunks, args.repeats
        )
    if spark_ready and "full" in args.covariance_types:
        results.append(run_spark(X, config, args))
    scaling = []
    if args.scaling and config.name in SCALING_CONFIGS:
        scaling = run_scaling(X, config, args)
    return results, scaling


def run_scaling(X, config, args):
    """daskgmm, full, on a LocalCluster of 1 and of 2 workers."""
    kwargs = {"full": estimator_kwargs(X, "full", config, args.iterations)}
    return [
        run_cluster(
            X, config, kwargs, n, args.n_chunks, args.repeats, f"daskgmm localcluster {n}x1"
        )[0]
        for n in SCALING_WORKERS
    ]


# ---------------------------------------------------------------- output


def set_errors(results, references):
    """Relative difference of every daskgmm result's means_ from scikit-learn's."""
    reference = {
        (r.config, r.covariance_type): r.means for r in references if r.system == "scikit-learn"
    }
    for r in results:
        expected = reference.get((r.config, r.covariance_type))
        if r.system.startswith("daskgmm") and expected is not None:
            r.error = float(np.max(np.abs(r.means - expected) / np.abs(expected)))


def format_error(error):
    if error is None:
        return "—"
    return f"{error:.1e}" + ("" if error <= TOLERANCE else " FAIL")


def gflops(result, configs):
    """Achieved GFLOP/s of ``result``: its floor FLOPs per iteration / its s/iteration."""
    return floor_flops(result.covariance_type, configs[result.config]) / result.seconds / 1e9


def table(results, configs):
    reference = {
        (r.config, r.covariance_type): r.seconds for r in results if r.system == "scikit-learn"
    }
    lines = [
        "| config | covariance type | system | s/iteration | ratio vs scikit-learn | GFLOP/s "
        "| max rel. error vs scikit-learn | peak client RSS MB | peak worker RSS MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.config} | {r.covariance_type} | {r.system} | {r.seconds:.4f} "
            f"| {reference[r.config, r.covariance_type] / r.seconds:.2f} "
            f"| {gflops(r, configs):.2f} | {format_error(r.error)} "
            f"| {r.peaks['client'] / MB:.0f} | {format_workers(r.peaks)} |"
        )
    return lines


def em_only_note(results):
    em_only = [r for r in results if r.em_only is not None]
    if not em_only:
        return []
    return [
        "",
        "scikit-learn's fit also runs its initialisation (an M-step) and a final E-step "
        "(Spark's: its initialisation). Without them ((t_n - t_1) / (n - 1)) the s/iteration is: "
        + ", ".join(f"{r.config} {r.covariance_type} {r.system} {r.em_only:.4f}" for r in em_only)
        + ".",
    ]


def scaling_table(results, configs):
    config = results[0].config
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
        lines.append(
            f"| {n} | {r.seconds:.4f} | {results[0].seconds / r.seconds:.2f} "
            f"| {gflops(r, configs):.2f} | {format_error(r.error)} | {format_workers(r.peaks)} |"
        )
    return lines


# ------------------------------------------------------------- arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIGS, help="configurations to run (default: A B)"
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
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--n-chunks", type=int, default=8, help="row chunks of the Dask array")
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="full type of configuration A on 1 and 2 LocalCluster workers",
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
    """In place: by configuration, covariance type and system, each in the order given."""
    names = [c.name for c in args.configs]
    results.sort(
        key=lambda r: (
            names.index(r.config),
            args.covariance_types.index(r.covariance_type),
            SYSTEMS.index(r.system),
        )
    )


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="Sending large graph")
    print("\n".join([*header_lines(), FLOOR_LINE]))
    spark_ready = False
    if args.spark:
        spark_ready, line = spark_line()
        print(line)

    results, scaling = [], []
    for config in args.configs:
        config_results, config_scaling = run_config(config, args, spark_ready)
        results += config_results
        scaling += config_scaling
    sort_results(results, args)
    set_errors(results + scaling, results)
    configs = {c.name: c for c in args.configs}
    print()
    print("\n".join(table(results, configs) + em_only_note(results)))
    if args.scaling:
        print("\n".join(scaling_table(scaling, configs) if scaling else ["", SCALING_SKIPPED]))
    if any(r.error is not None and not r.error <= TOLERANCE for r in results + scaling):
        sys.exit(f"FAIL: a daskgmm result differs from scikit-learn's by more than {TOLERANCE:g}")


if __name__ == "__main__":
    main()
