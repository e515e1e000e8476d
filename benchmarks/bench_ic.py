"""Model search at scale: GaussianMixtureIC against separate fits and scikit-learn's recipe.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_ic.py                     # N 1,000,000, D 16, K 1..12 x 4 types
    python benchmarks/bench_ic.py --cluster           # also on a 2-worker LocalCluster
    python benchmarks/bench_ic.py --n-samples 200000 --skip-sklearn --cluster
    python benchmarks/bench_ic.py --n-samples 20000 --max-components 3 \\
        --chunk-rows 5000                             # smoke test (seconds)

The data: ``--n-samples`` x ``--n-features`` float64 rows (seeded) drawn from
a mixture of ``--true-components`` (6) components with random full
covariances (``bench_em.mixture_parameters``), the means scaled so that the
closest two are ``--separation`` (8) largest component standard deviations
apart (0: the means as drawn, overlapping), written once, chunk by chunk, to
a zarr store in a temporary directory, ``--chunk-rows`` rows per chunk, all
features in one chunk, zarr's default compression.

The search: every K in 1..``--max-components`` x every covariance type (full,
tied, diag, spherical), all with scikit-learn's defaults (``init_params=
'kmeans'``, ``n_init=1``, ``tol=1e-3``, ``max_iter=100``) and
``random_state=0``, the best by BIC. Measured:

(1) ``daskgmm.GaussianMixtureIC(1, max_components, covariance_type='all',
    random_state=0, cache=False)`` fitted on ``zarr.open_array(store)``, i.e.
    streamed from the store in every pass, on Dask's threaded scheduler
    (both cores); with ``--cluster``, the same on a ``LocalCluster`` of
    ``--workers`` (2) worker processes with one thread each;
(2) the same search as separate fits, as users run it today: for every
    candidate, ``daskgmm.GaussianMixture(k, covariance_type=type,
    random_state=0, cache=False).fit(store)`` then ``.bic(store)``, on
    threads (with ``--cluster-separate``, also on the LocalCluster). Its
    time and passes include the 48 BIC passes (a note gives the fits alone);
(3) scikit-learn's recipe (its BIC model-selection example), unless
    ``--skip-sklearn``: ``GridSearchCV(sklearn.mixture.GaussianMixture(
    random_state=0), {"n_components": range(1, max_components + 1),
    "covariance_type": [...]}, scoring=lambda est, X, y=None: -est.bic(X),
    cv=[(all rows, all rows)], refit=False)`` on the rows in memory (one
    "fold", train = test = every row; scikit-learn's default BLAS threads).
    The refit of the best candidate that the recipe does by default is left
    out (``refit=False``), which only flatters scikit-learn. Loading the rows
    into memory is not timed.

Passes over the data are counted on the store itself: every chunk read goes
through a zarr ``WrapperStore`` that appends a byte to a log file (shared by
threads and worker processes), and passes = chunk reads / chunks.

Prints a header (machine, versions, command, store), then one Markdown table:
method, scheduler, wall seconds, passes, the ratios separate fits / this
search (passes and wall time; against the separate fits on the same
scheduler where measured, else on threads) and scikit-learn / this search
(wall time), the chosen (K, covariance type), and peak RSS of this process
and of every worker during the run (sampled every 0.1 s by process id, from
this process). Notes after it give the search's iterations (passes expected:
2 initialisation passes + the slowest candidate's iterations + 1 scoring
pass), the largest relative difference between the search's BIC and the
separate fits' (every candidate should equal its standalone fit), the
lifetime peak RSS (``resource.getrusage``) of this process before the rows
are loaded for scikit-learn and of every worker, and whether each search
row meets the issue's targets (issue 11):

- at least 10x fewer passes than the separate fits (2);
- at least 5x less wall time than the separate fits (2);
- at least 20x less wall time than scikit-learn's recipe (3).

Exits with status 1 when the search and the separate fits choose different
models or their BIC differ by more than ``BIC_TOLERANCE`` relative.
"""

import argparse
import importlib
import math
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import zarr
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV
from zarr.storage import LocalStore, WrapperStore

import daskgmm
from bench_em import (
    MB,
    SEED,
    SEPARATION,
    client_rss,
    cluster_rss,
    format_workers,
    header_lines,
    mixture_parameters,
    sample_mixture,
    spreads_apart,
    timed,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# The targets: separate fits / search (passes, wall time), scikit-learn / search (time).
TARGET_PASSES = 10
TARGET_SEPARATE_TIME = 5
TARGET_SKLEARN_TIME = 20
# Largest relative difference of a candidate's BIC between the search and its separate fit.
BIC_TOLERANCE = 1e-6
THREADS = "threads"
CLUSTER = "LocalCluster"


# ----------------------------------------------------------------- store


class CountingStore(WrapperStore):
    """A zarr store whose every chunk read appends one byte to the file ``log``.

    A file, not a counter in memory, so that reads in worker processes count too
    (the store travels to the workers pickled, with the path).
    """

    def __init__(self, store, log):
        super().__init__(store)
        self.log = log

    def _with_store(self, store):
        return type(self)(store, self.log)

    async def get(self, key, prototype, byte_range=None):
        if key.startswith("c/"):  # a chunk; zarr.json is metadata
            with open(self.log, "ab") as f:
                f.write(b".")
        return await super().get(key, prototype, byte_range)


class ReadCounter:
    """Chunk reads of the store at ``path`` through the arrays it opens, from a fresh log."""

    def __init__(self, path, log, n_chunks):
        self.path, self.log, self.n_chunks = path, log, n_chunks

    def open(self):
        """A new count from zero, and the store's array reading through it."""
        open(self.log, "wb").close()
        return zarr.open_array(CountingStore(LocalStore(self.path, read_only=True), self.log),
                               mode="r")

    def reads(self):
        return os.path.getsize(self.log)

    def passes(self):
        return self.reads() / self.n_chunks


def write_store(path, args):
    """The rows, chunk by chunk from generators seeded by the chunk's index; their separation."""
    means, factors, weights = mixture_parameters(
        args.n_features, args.true_components, separation=args.separation or None)
    stored = zarr.create_array(path, shape=(args.n_samples, args.n_features),
                               chunks=(args.chunk_rows, args.n_features), dtype="f8")
    for index, start in enumerate(range(0, args.n_samples, args.chunk_rows)):
        rows = min(args.chunk_rows, args.n_samples - start)
        rng = np.random.default_rng([SEED, index])
        stored[start:start + rows] = sample_mixture(rows, (means, factors, weights), rng)
    return stored, spreads_apart(means, factors)


def store_line(stored, path, separation):
    codecs = ", ".join(type(c).__name__ for c in stored.compressors) or "none"
    return (
        f"Store: {path}, {stored.shape[0]:,} x {stored.shape[1]} {stored.dtype}, chunks "
        f"{stored.chunks} ({math.ceil(stored.shape[0] / stored.chunks[0])} chunks), "
        f"{stored.nbytes / MB:.0f} MB ({stored.nbytes_stored() / MB:.0f} MB stored, "
        f"compressors: {codecs}); closest means {separation:.1f} largest standard "
        "deviations apart"
    )


# ------------------------------------------------------------ benchmarks


class Result:
    def __init__(self, method, scheduler, seconds, peaks, passes=None, chosen=None, bic=None,
                 note=None):
        self.method, self.scheduler = method, scheduler
        self.seconds, self.peaks, self.passes = seconds, peaks, passes
        self.chosen, self.bic, self.note = chosen, bic, note


def candidates(args):
    return [(k, t) for k in range(1, args.max_components + 1) for t in COVARIANCE_TYPES]


def run_search(counter, args, scheduler, probe):
    """(1): every candidate in shared passes over the store."""
    X = counter.open()
    search = daskgmm.GaussianMixtureIC(
        1, args.max_components, covariance_type="all", random_state=SEED, cache=False)
    seconds, peaks = timed(lambda: search.fit(X), probe)
    results = search.results_
    bic = {(int(k), str(t)): float(b) for k, t, b in
           zip(results["n_components"], results["covariance_type"], results["bic"])}
    n_iter = results["n_iter"]
    note = (
        f"(1) on {scheduler}: iterations per candidate {n_iter.min()}..{n_iter.max()} "
        f"(passes expected: 2 initialisation + {n_iter.max()} + 1 scoring = "
        f"{n_iter.max() + 3}; counted {counter.passes():g}), "
        f"{int((~results['converged']).sum())} of {len(n_iter)} candidates not converged"
    )
    return Result("(1) GaussianMixtureIC", scheduler, seconds, peaks, counter.passes(),
                  (search.n_components_, search.covariance_type_), bic, note)


def run_separate(counter, args, scheduler, probe):
    """(2): one GaussianMixture fit, then one BIC pass, per candidate."""
    X = counter.open()
    bic, fit = {}, {"seconds": 0.0, "reads": 0}

    def fit_all():
        for k, covariance_type in candidates(args):
            model = daskgmm.GaussianMixture(
                k, covariance_type=covariance_type, random_state=SEED, cache=False)
            tic, reads = time.perf_counter(), counter.reads()
            try:
                model.fit(X)
            except ValueError:  # as in the search: a failed candidate is never chosen
                model = None
            fit["seconds"] += time.perf_counter() - tic
            fit["reads"] += counter.reads() - reads
            bic[k, covariance_type] = np.inf if model is None else model.bic(X)

    seconds, peaks = timed(fit_all, probe)
    chosen = min(bic, key=bic.get)
    note = (
        f"(2) on {scheduler}: the {len(bic)} fits alone (without their BIC passes) "
        f"{fit['seconds']:.1f} s, {fit['reads'] / counter.n_chunks:g} passes"
    )
    return Result(f"(2) {len(bic)} separate GaussianMixture fits + bic", scheduler, seconds,
                  peaks, counter.passes(), chosen, bic, note)


def run_sklearn(path, args):
    """(3): scikit-learn's GridSearchCV-with-BIC recipe on the rows in memory."""
    X = zarr.open_array(path, mode="r")[:]
    every = np.arange(len(X))
    grid = GridSearchCV(
        SklearnGaussianMixture(random_state=SEED),
        {"n_components": range(1, args.max_components + 1),
         "covariance_type": list(COVARIANCE_TYPES)},
        scoring=lambda estimator, X, y=None: -estimator.bic(X),
        cv=[(every, every)],
        refit=False,
    )
    seconds, peaks = timed(lambda: grid.fit(X), client_rss)
    best = grid.best_params_
    return Result("(3) scikit-learn GridSearchCV + BIC scorer", "in memory (BLAS threads)",
                  seconds, peaks, chosen=(best["n_components"], best["covariance_type"]))


def run_cluster(counter, args):
    """(1), and with --cluster-separate (2), on a LocalCluster; the workers' lifetime peaks."""
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                     dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.run(importlib.import_module, "daskgmm")  # untimed: the workers' imports
        probe = cluster_rss(client)
        results = [run_search(counter, args, CLUSTER, probe)]
        if args.cluster_separate:
            results.append(run_separate(counter, args, CLUSTER, probe))
        lifetime = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return results, lifetime


# ---------------------------------------------------------------- output


def ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator == 0:
        return "—"
    return f"{numerator / denominator:.1f}"


def separate_for(result, results):
    """The separate fits on ``result``'s scheduler where measured, else on threads."""
    separate = {r.scheduler: r for r in results if r.method.startswith("(2)")}
    return separate.get(result.scheduler, separate.get(THREADS))


def sklearn_result(results):
    return next((r for r in results if r.method.startswith("(3)")), None)


def comparisons(result, results):
    """(separate / this passes, separate / this time, scikit-learn / this time), or Nones."""
    if not result.method.startswith("(1)"):
        return None, None, None
    separate, sklearn = separate_for(result, results), sklearn_result(results)
    return (
        separate.passes / result.passes if separate else None,
        separate.seconds / result.seconds if separate else None,
        sklearn.seconds / result.seconds if sklearn else None,
    )


def table(results):
    lines = [
        "| method | scheduler | wall s | passes | separate / search, passes "
        "| separate / search, time | scikit-learn / search, time | chosen (K, type) "
        "| peak client RSS MB | peak worker RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        passes, separate_time, sklearn_time = comparisons(r, results)
        cells = [
            r.method,
            r.scheduler,
            f"{r.seconds:.1f}",
            "—" if r.passes is None else f"{r.passes:g}",
            "—" if passes is None else f"{passes:.1f}",
            "—" if separate_time is None else f"{separate_time:.1f}",
            "—" if sklearn_time is None else f"{sklearn_time:.1f}",
            f"{r.chosen[0]}, {r.chosen[1]}",
            f"{r.peaks['client'] / MB:.0f}",
            format_workers(r.peaks),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def target_lines(results):
    lines = []
    for r in results:
        if not r.method.startswith("(1)"):
            continue
        passes, separate_time, sklearn_time = comparisons(r, results)
        checks = [
            (passes, TARGET_PASSES, "fewer passes than separate fits"),
            (separate_time, TARGET_SEPARATE_TIME, "less wall time than separate fits"),
            (sklearn_time, TARGET_SKLEARN_TIME, "less wall time than scikit-learn"),
        ]
        parts = [
            f">= {target}x {what}: "
            + ("not measured" if value is None
               else f"{value:.1f}x, {'met' if value >= target else 'NOT met'}")
            for value, target, what in checks
        ]
        lines.append(f"Targets, (1) on {r.scheduler}: " + "; ".join(parts))
    return lines


def agreement(results):
    """Lines comparing every search's BIC and choice with the separate fits'; True if they agree."""
    lines, agree = [], True
    for r in results:
        separate = separate_for(r, results) if r.method.startswith("(1)") else None
        if separate is None:
            continue
        differences = [
            abs(r.bic[key] - separate.bic[key]) / abs(separate.bic[key])
            for key in r.bic if np.isfinite(separate.bic[key]) and np.isfinite(r.bic[key])
        ]
        mismatch = [key for key in r.bic
                    if np.isfinite(r.bic[key]) != np.isfinite(separate.bic[key])]
        largest = max(differences, default=0.0)
        ok = largest <= BIC_TOLERANCE and not mismatch and r.chosen == separate.chosen
        agree &= ok
        lines.append(
            f"(1) on {r.scheduler} vs (2) on {separate.scheduler}: BIC of every candidate "
            f"agrees to {largest:.1e} relative"
            + (f", failed in one only: {mismatch}" if mismatch else "")
            + f"; same choice: {r.chosen == separate.chosen}" + ("" if ok else " FAIL")
        )
    return lines, agree


# ------------------------------------------------------------- arguments


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--max-components", type=int, default=12,
                        help="candidates K = 1..this, x every covariance type")
    parser.add_argument("--chunk-rows", type=int, default=100_000,
                        help="rows per chunk of the zarr store")
    parser.add_argument("--true-components", type=int, default=6,
                        help="components of the mixture the rows are drawn from")
    parser.add_argument("--separation", type=float, default=SEPARATION,
                        help="closest means in largest standard deviations (0: as drawn)")
    parser.add_argument("--skip-sklearn", action="store_true",
                        help="leave out scikit-learn's GridSearchCV recipe (3)")
    parser.add_argument("--cluster", action="store_true",
                        help="also run the search (1) on a LocalCluster")
    parser.add_argument("--cluster-separate", action="store_true",
                        help="with --cluster, also run the separate fits (2) there")
    parser.add_argument("--workers", type=int, default=2,
                        help="LocalCluster worker processes (one thread each)")
    args = parser.parse_args(argv)
    if args.max_components < 1 or args.n_samples < args.max_components:
        parser.error("need 1 <= --max-components <= --n-samples")
    if args.chunk_rows < 1:
        parser.error("--chunk-rows must be at least 1")
    if args.cluster_separate and not args.cluster:
        parser.error("--cluster-separate needs --cluster")
    return args


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="Sending large graph")
    print("\n".join(header_lines()))
    with tempfile.TemporaryDirectory(prefix="daskgmm-bench-ic-") as tmp:
        path = os.path.join(tmp, "X.zarr")
        stored, separation = write_store(path, args)
        print(store_line(stored, path, separation))
        n_chunks = math.ceil(args.n_samples / args.chunk_rows)
        counter = ReadCounter(path, os.path.join(tmp, "reads.log"), n_chunks)
        print(f"Search: K = 1..{args.max_components} x {len(COVARIANCE_TYPES)} types = "
              f"{len(candidates(args))} candidates, random_state={SEED}, defaults otherwise",
              flush=True)

        results = [run_search(counter, args, THREADS, client_rss)]
        print(f"(1) on threads: {results[-1].seconds:.1f} s", flush=True)
        results.append(run_separate(counter, args, THREADS, client_rss))
        print(f"(2) on threads: {results[-1].seconds:.1f} s", flush=True)
        worker_lifetime = None
        if args.cluster:
            cluster_results, worker_lifetime = run_cluster(counter, args)
            results += cluster_results
            print("On the LocalCluster: "
                  + ", ".join(f"{r.method[:3]} {r.seconds:.1f} s" for r in cluster_results),
                  flush=True)
        client_lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if not args.skip_sklearn:
            results.append(run_sklearn(path, args))
            print(f"(3): {results[-1].seconds:.1f} s", flush=True)

    order = [THREADS, CLUSTER]
    results.sort(key=lambda r: (r.method[:3], order.index(r.scheduler)
                                if r.scheduler in order else len(order)))
    checks, agree = agreement(results)
    notes = [r.note for r in results if r.note] + checks + [
        f"Lifetime peak RSS (getrusage) of this process before the rows are loaded for "
        f"scikit-learn: {client_lifetime / MB:.0f} MB"
        + ("" if worker_lifetime is None else "; of the workers: " + " / ".join(
            f"{worker_lifetime[a] * 1024 / MB:.0f}" for a in sorted(worker_lifetime)) + " MB"),
        *target_lines(results),
    ]
    print()
    print("\n".join(table(results)))
    print()
    print("\n".join(f"- {line}" for line in notes))
    if not agree:
        sys.exit("FAIL: the search and the separate fits disagree")


if __name__ == "__main__":
    main()
