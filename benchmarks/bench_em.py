"""Seconds per EM iteration: scikit-learn against daskgmm on NumPy, threads and a LocalCluster.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_em.py                  # N 1,000,000, D 16, K 8, 10 iterations
    python benchmarks/bench_em.py --n-samples 20000 --iterations 2   # smoke test

The data are drawn (seeded, float64) from a mixture with random full
covariances. Every system starts from the same parameters (K distinct random
rows as means, the covariance of the data for every component, equal weights)
and runs exactly ``--iterations`` EM iterations (``tol=0``):

- ``scikit-learn``: ``sklearn.mixture.GaussianMixture`` on the NumPy array,
  with the default BLAS threads, as users run it;
- ``daskgmm numpy``: daskgmm on the NumPy array (local threads, one BLAS
  thread per task);
- ``daskgmm dask-threads``: daskgmm on ``da.from_array(X)`` cut into
  ``--n-chunks`` row chunks, persisted, on the threaded scheduler;
- ``daskgmm localcluster``: daskgmm on a ``distributed.LocalCluster`` of
  ``--workers`` processes with one thread each (distributed pins BLAS to one
  thread there), the data persisted on the workers before timing, its row
  chunks dealt round-robin so that every worker holds the same share.

Prints a header (machine, versions, BLAS, the exact command, the data), the
passes over the source data of one daskgmm fit on Dask input (chunk reads /
chunks; with the default settings and, if the estimator has it, with
``cache=False``), then a Markdown table:
covariance type, system, seconds per iteration (wall time of ``fit`` divided by
the iterations), ratio (scikit-learn's seconds / ours), the largest relative
difference of ``means_`` from scikit-learn's, and the peak RSS of this process
and of every worker during the fit (sampled every 0.1 s). scikit-learn's
``fit`` also runs its initialisation (an M-step) and a final E-step; a note
after the table gives its seconds per iteration without them, from a second,
1-iteration fit: (t_n - t_1) / (n - 1). Exits with status 1 when a daskgmm
result differs from scikit-learn's by more than 1e-6 relative.
"""

import argparse
import itertools
import os
import platform
import shlex
import sys
import threading
import time
import warnings
from dataclasses import dataclass

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
SYSTEMS = ("scikit-learn",) + tuple(f"daskgmm {mode}" for mode in MODES)
SEED = 0
# Largest relative difference of means_ from scikit-learn's that passes.
TOLERANCE = 1e-6
# Seconds between two memory samples.
SAMPLE_INTERVAL = 0.1
# Rows whose covariance starts every component.
INIT_ROWS = 100_000
MB = 2**20


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
    """A probe: RSS of this process (key ``"client"``) and of every worker (its address)."""
    return lambda: {"client": rss(), **client.run(rss)}


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


def timed(func, probe):
    """Wall seconds of ``func()`` and the peaks of ``probe`` meanwhile."""
    with PeakSampler(probe) as sampler:
        tic = time.perf_counter()
        func()
        seconds = time.perf_counter() - tic
    return seconds, sampler.peaks


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


# ------------------------------------------------------------ benchmarks


@dataclass
class Result:
    covariance_type: str
    system: str
    seconds: float  # per iteration
    means: np.ndarray
    peaks: dict  # bytes: "client" and one entry per worker address
    error: float | None = None  # largest relative difference of means_ from scikit-learn's
    em_only: float | None = None  # scikit-learn only: s/iteration without its fixed cost


def measure(covariance_type, system, estimator, X, probe):
    seconds, peaks = timed(lambda: estimator.fit(X), probe)
    return Result(covariance_type, system, seconds / estimator.max_iter, estimator.means_, peaks)


def estimator_kwargs(X, covariance_type, args):
    """The same start and the same fixed number of iterations for every system."""
    return dict(
        n_components=args.n_components,
        covariance_type=covariance_type,
        tol=0,
        max_iter=args.iterations,
        # scikit-learn (and daskgmm on NumPy input, through it) still runs its
        # initialisation before taking the given parameters: the cheapest one.
        init_params="random_from_data",
        random_state=SEED,
        **initial_parameters(X, args.n_components, covariance_type),
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


def measure_sklearn(covariance_type, kwargs, X):
    """scikit-learn's result, with its s/iteration without initialisation and final E-step.

    That is (t_n - t_1) / (n - 1), from a 1-iteration fit timed right after.
    """
    result = measure(
        covariance_type, "scikit-learn", SklearnGaussianMixture(**kwargs), X, client_rss
    )
    n = kwargs["max_iter"]
    if n > 1:
        one_iteration = SklearnGaussianMixture(**{**kwargs, "max_iter": 1})
        one, _ = timed(lambda: one_iteration.fit(X), client_rss)
        result.em_only = (result.seconds * n - one) / (n - 1)
    return result


def run_local(X, kwargs_by_type, args):
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
            results.append(measure_sklearn(covariance_type, kwargs, X))
            results += [
                measure(covariance_type, system, GaussianMixture(**kwargs), data, client_rss)
                for system, data in runs
            ]
    return results


def run_cluster(X, kwargs_by_type, args):
    """daskgmm on a LocalCluster, the data persisted on the workers before timing."""
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        # One small graph per block, not the whole NumPy array in each.
        blocks = [da.from_array(block) for block in row_blocks(X, args.n_chunks)]
        X_workers = persist_balanced(client, blocks)
        # Warm-up: the workers import daskgmm and scikit-learn on their first task.
        first = next(iter(kwargs_by_type.values()))
        GaussianMixture(**{**first, "max_iter": 1}).fit(X_workers)
        return [
            measure(
                covariance_type,
                "daskgmm localcluster",
                GaussianMixture(**kwargs),
                X_workers,
                cluster_rss(client),
            )
            for covariance_type, kwargs in kwargs_by_type.items()
        ]


# ---------------------------------------------------------------- output


def set_errors(results):
    """Relative difference of every daskgmm result's means_ from scikit-learn's."""
    reference = {r.covariance_type: r.means for r in results if r.system == "scikit-learn"}
    for r in results:
        if r.system != "scikit-learn":
            expected = reference[r.covariance_type]
            r.error = float(np.max(np.abs(r.means - expected) / np.abs(expected)))


def table(results):
    reference = {r.covariance_type: r.seconds for r in results if r.system == "scikit-learn"}
    lines = [
        "| covariance type | system | s/iteration | ratio vs scikit-learn "
        "| max rel. error vs scikit-learn | peak client RSS MB | peak worker RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error is None:
            error = "—"
        else:
            error = f"{r.error:.1e}" + ("" if r.error <= TOLERANCE else " FAIL")
        lines.append(
            f"| {r.covariance_type} | {r.system} | {r.seconds:.4f} "
            f"| {reference[r.covariance_type] / r.seconds:.2f} | {error} "
            f"| {r.peaks['client'] / MB:.0f} | {format_workers(r.peaks)} |"
        )
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--covariance-types", nargs="+", choices=COVARIANCE_TYPES, default=list(COVARIANCE_TYPES)
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--n-chunks", type=int, default=8, help="row chunks of the Dask array")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="Sending large graph")
    X = sample_mixture(
        args.n_samples,
        mixture_parameters(args.n_features, args.n_components),
        np.random.default_rng(SEED),
    )
    print("\n".join(header_lines()))
    print(
        f"Data: {args.n_samples:,} rows x {args.n_features} features, {args.n_components} "
        f"components, float64, {X.nbytes / MB:.0f} MB; Dask input in {args.n_chunks} row "
        f"chunks; {args.iterations} iterations, tol=0, the same start for every system"
    )
    kwargs_by_type = {c: estimator_kwargs(X, c, args) for c in args.covariance_types}
    print(passes_line(X, args.n_chunks, next(iter(kwargs_by_type.values()))))

    results = run_local(X, kwargs_by_type, args)
    if "localcluster" in args.modes:
        results += run_cluster(X, kwargs_by_type, args)
    results.sort(
        key=lambda r: (args.covariance_types.index(r.covariance_type), SYSTEMS.index(r.system))
    )
    set_errors(results)
    print()
    print("\n".join(table(results)))
    em_only = [r for r in results if r.em_only is not None]
    if em_only:
        print(
            "\nscikit-learn's fit also runs its initialisation (an M-step) and a final E-step. "
            "Without them ((t_n - t_1) / (n - 1)) its s/iteration is: "
            + ", ".join(f"{r.covariance_type} {r.em_only:.4f}" for r in em_only)
            + "."
        )
    if any(r.error is not None and not r.error <= TOLERANCE for r in results):
        sys.exit(f"FAIL: a daskgmm result differs from scikit-learn's by more than {TOLERANCE:g}")


if __name__ == "__main__":
    main()
