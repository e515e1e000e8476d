"""Passes and seconds to convergence: batch EM, incremental EM and partial_fit epochs.

Run from the repository root (scikit-image from ``benchmarks/requirements.txt``)::

    python benchmarks/bench_incremental.py --gb 8      # the 8 GB streamed store
    python benchmarks/bench_incremental.py --gb 0.05   # a small store
    python benchmarks/bench_incremental.py --gb 0.001 --skip-images --max-iter 3  # smoke run
    python benchmarks/bench_incremental.py --skip-store --covariance-types diag  # in memory

Data, K = 10, every method from the same k-means start:

- the digits of scikit-learn after PCA to 20 dimensions (1797 rows, in
  memory, 32 row chunks), full and diag;
- the RGB pixels of four scikit-image sample images (astronaut, coffee,
  chelsea, rocket: 910k rows x 3, in memory, 64 row chunks), full and diag
  (``--covariance-types`` of both in-memory datasets);
- a synthetic zarr store of ``--gb`` GB (10 strongly overlapping diagonal
  components in 8 dimensions, 64 chunks, written once at ``--path``),
  streamed with ``cache=False`` through a LocalCluster of ``--workers`` one-thread worker
  processes whose memory limit (``--worker-memory``) is far below the data,
  diag (``--skip-store``: not run).

Methods, each run once to tol 1e-5 (the tol 1e-3 column: where the same run
first changes by less than 1e-3, exactly where a fit with that tol would stop):

- batch: ``GaussianMixture(tol=tol)``, a pass per iteration;
- incremental plain (``relaxation=1``) and auto (``relaxation='auto'``),
  ``n_blocks='auto'`` or ``--n-blocks``: a pass per lap;
- partial_fit: epochs of ``partial_fit`` over the same blocks until an
  epoch's mean log-likelihood changes by less than tol (at most 12; "12+":
  not converged).

One yardstick for every method: the passes until its recorded bound
(``lower_bounds_``, one per pass) first comes within 1e-4 of the best final
bound that batch or incremental EM reached on that case ("never" with the
gap when it does not), and the ratio of batch EM's passes to that to the
method's. Prints a Markdown table with these, the passes to each tol, the
bound at the tol 1e-5 stop, the seconds to it and to the 1e-4 yardstick (pro
rata of the passes; wall time: noisy on a shared machine, which the load
average printed under the table says), where the data was read from (in
memory; for the store, whether this run wrote it and the share of its bytes
in the OS page cache when each fit starts, from ``fincore``), and the idle
share of the workers' thread time during the fit (task stream); then the
peak resident memory of this process and of the workers.

Instead, on the store: ``--sweep-blocks 2,4,8,16,32`` runs incremental EM to
tol 1e-5 with each number of blocks (laps, seconds, idle share), and
``--compare-read-ahead 6`` times 5 laps with and without reading the next
block ahead, alternating, 6 runs each.
"""

import argparse
import os
import resource
import shutil
import subprocess
import time
import warnings

import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture, _graph
from daskgmm._graph import from_dask

TOLS = (1e-3, 1e-5)
REACH = 1e-4  # "reaches the best final bound": within this of it
MAX_EPOCHS = 12
IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
# Spread of the synthetic store's means (in units of the components' scales, 0.5-1.5): so
# much overlap that batch EM needs about 50 passes to tol 1e-5, as real data often does.
SEPARATION = 0.8


def synthetic_store(path, gigabytes, n_features=8, n_components=10, n_chunks=64, seed=1):
    """``(array, written)``: a zarr store of overlapping diagonal components.

    Written once, chunk by chunk; ``written`` says whether this call wrote it
    (False: a store of the same kind was found at ``path``).
    """
    n_samples = int(gigabytes * 1e9 / (8 * n_features)) // n_chunks * n_chunks
    rows = n_samples // n_chunks
    if os.path.exists(path):
        stored = zarr.open_array(path, mode="r")
        if (stored.shape == (n_samples, n_features) and stored.chunks[0] == rows
                and stored.attrs.get("separation") == SEPARATION):
            return stored, False
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=SEPARATION, size=(n_components, n_features))
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    store = zarr.create_array(path, shape=(n_samples, n_features), chunks=(rows, n_features),
                              dtype="f8", overwrite=True, attributes={"separation": SEPARATION})
    for chunk in range(n_chunks):
        labels = rng.integers(n_components, size=rows)
        store[chunk * rows:(chunk + 1) * rows] = (
            means[labels] + scales[labels] * rng.normal(size=(rows, n_features)))
    return store, True


def page_cache_share(path):
    """Share of the bytes of the files under ``path`` in the OS page cache (None: unknown).

    From util-linux's ``fincore``; None where it is missing.
    """
    files = [os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names]
    if shutil.which("fincore") is None or not files:
        return None
    lines = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output",
                            "RES,SIZE", *files], capture_output=True, text=True,
                           check=True).stdout.split()
    sizes = [int(size) for size in lines[1::2]]
    resident = sum(min(int(pages), size) for pages, size in zip(lines[::2], sizes))  # whole pages
    return resident / sum(sizes) if sum(sizes) else None


def image_pixels():
    """The RGB pixels of scikit-image's sample images, in [0, 1]."""
    import skimage.data

    return np.concatenate([getattr(skimage.data, name)().reshape(-1, 3) / 255.0
                           for name in IMAGES])


def _busy_share(client, since, wall):
    """Share of the workers' thread time spent in tasks since ``since`` (epoch seconds)."""
    busy = sum(part["stop"] - part["start"] for task in client.get_task_stream(start=since)
               for part in task["startstops"] if part["action"] == "compute")
    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    return busy / (threads * wall)


def _timed(client, fit):
    """``(bound history, seconds, idle share of the workers or None)`` of ``fit()``."""
    tic, wall_start = time.perf_counter(), time.time()
    history = fit()
    seconds = time.perf_counter() - tic
    idle = None if client is None else 1 - _busy_share(client, wall_start, seconds)
    return np.asarray(history), seconds, idle


def _from_start(X, covariance_type, **params):
    """Parameters of a GaussianMixture (K = 10) starting where k-means leaves X."""
    start = GaussianMixture(10, covariance_type=covariance_type, random_state=0,
                            max_iter=0).fit(X)
    return dict(n_components=10, covariance_type=covariance_type, cache=False,
                weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, **params)


def _epochs(common, X, bounds, tol):
    """Mean bound of every epoch of partial_fit over the blocks, until it changes by < tol."""
    online, history = GaussianMixture(**common), []
    while len(history) < min(MAX_EPOCHS, common["max_iter"]) and _stop(history, tol) is None:
        for begin, end in bounds:
            online.partial_fit(X[begin:end])
        history.append(np.mean(online.lower_bounds_[-len(bounds):]))
    return history


def _stop(history, tol):
    """Passes after which a fit with ``tol`` stops: the first change below it (None: none)."""
    small = np.flatnonzero(np.abs(np.diff(history)) < tol)
    return None if len(small) == 0 else int(small[0]) + 2


def _first_within(history, target):
    """Passes until ``history`` first comes within REACH of ``target`` (None: never)."""
    within = np.flatnonzero(np.asarray(history) >= target - REACH)
    return None if len(within) == 0 else int(within[0]) + 1


def run(name, X, covariance_type, n_blocks, client, max_iter=500, source=lambda: "memory"):
    """Rows of the table for one dataset and covariance type.

    Every method runs once, to the smallest tol; the larger tol stops it at
    the first change below that tol, exactly where its own fit would.
    ``source()`` says where the data is read from when a fit starts.
    """
    common = _from_start(X, covariance_type, max_iter=max_iter)
    bounds = _graph.block_bounds(from_dask(da.asarray(X)), n_blocks)
    methods = {
        "batch": {},
        f"incremental plain ({len(bounds)} blocks)": dict(
            algorithm="incremental", n_blocks=n_blocks, relaxation=1.0),
        f"incremental auto ({len(bounds)} blocks)": dict(
            algorithm="incremental", n_blocks=n_blocks),
    }
    results, sources = {}, {}
    for method, kwargs in methods.items():
        sources[method] = source()
        results[method] = _timed(client, lambda kw=kwargs: GaussianMixture(
            **common, **kw, tol=min(TOLS)).fit(X).lower_bounds_)
    sources["partial_fit epochs"] = source()
    results["partial_fit epochs"] = _timed(None, lambda: _epochs(common, X, bounds, min(TOLS)))
    # The yardstick: the best bound batch or incremental EM ended at (their histories never
    # decrease; partial_fit's epoch means are of changing parameters, not a bound).
    best = max(history[-1] for method, (history, _, _) in results.items() if method in methods)
    batch_reach = _first_within(results["batch"][0], best)
    for method, (history, seconds, idle) in results.items():
        stops = [_stop(history, tol) for tol in TOLS]
        passes = stops[-1] or len(history)
        reach = _first_within(history, best)
        if reach is None:
            yardstick = (f"never in {len(history)} (gap {best - history[-1]:.5f}) | | ")
        else:
            ratio = (f"{batch_reach / reach:.2f}" if batch_reach is not None
                     else f"> {len(results['batch'][0]) / reach:.2f}")
            yardstick = f"{reach} | {ratio} | {seconds * reach / len(history):.1f}"
        print(f"| {name} | {covariance_type} | {method} | {sources[method]} | "
              + " | ".join(f"{stop or f'{len(history)}+'}" for stop in stops)
              + f" | {history[passes - 1]:.5f} | {seconds * passes / len(history):.1f} | "
              f"{yardstick} | {'' if idle is None else f'{idle:.0%}'} |", flush=True)


def sweep(X, counts, client):
    """Incremental EM ('auto') to tol 1e-5 with each number of blocks: laps, seconds, idle."""
    common = _from_start(X, "diag", max_iter=500, tol=min(TOLS), algorithm="incremental")
    print("| blocks | chunks per block | laps | seconds | seconds per lap | idle |")
    print("|---|---|---|---|---|---|")
    for n_blocks in counts:
        history, seconds, idle = _timed(client, lambda n=n_blocks: GaussianMixture(
            **common, n_blocks=n).fit(X).lower_bounds_)
        print(f"| {n_blocks} | {X.numblocks[0] / n_blocks:g} | {len(history)} | "
              f"{seconds:.1f} | {seconds / len(history):.2f} | {idle:.0%} |", flush=True)


def compare_read_ahead(X, repeats, client, laps=5):
    """Seconds per lap and idle share with and without reading the next block ahead.

    The two variants alternate, ``repeats`` times each, in this process (the
    machine's speed drifts between runs); "without" replaces
    `daskgmm._graph.read_ahead` by the identity for its runs.
    """
    common = _from_start(X, "diag", max_iter=laps, tol=0, algorithm="incremental")
    variants = {"with read-ahead": _graph.read_ahead, "without": lambda data: data}
    seconds, idle, bounds = ({name: [] for name in variants} for _ in range(3))
    for _ in range(repeats):
        for name, read_ahead in variants.items():
            _graph.read_ahead = read_ahead
            history, wall, idle_share = _timed(client, lambda: GaussianMixture(**common).fit(X)
                                               .lower_bounds_)
            seconds[name].append(wall / laps)
            idle[name].append(idle_share)
            bounds[name].append(history[-1])
    _graph.read_ahead = variants["with read-ahead"]
    print(f"| variant | median s per lap ({repeats} runs of {laps} laps) | median idle | "
          "bounds equal |")
    print("|---|---|---|---|")
    for name in variants:
        print(f"| {name} | {np.median(seconds[name]):.3f} | {np.median(idle[name]):.0%} | "
              f"{len(set(bounds[name] + bounds['with read-ahead'])) == 1} |")
    print(f"without / with, time per lap: "
          f"{np.median(seconds['without']) / np.median(seconds['with read-ahead']):.3f}")


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_average():
    """The machine's load average (its seconds columns are wall time: noisy under load)."""
    return ("load average " + ", ".join(f"{load:.1f}" for load in os.getloadavg())
            + " (1, 5, 15 min)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=8.0, help="size of the synthetic store")
    parser.add_argument("--path", default="/tmp/daskgmm-bench-incremental.zarr")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="2GiB")
    parser.add_argument("--n-blocks", default="auto")
    parser.add_argument("--skip-memory", action="store_true",
                        help="only the streamed store (not digits and images)")
    parser.add_argument("--skip-images", action="store_true",
                        help="not the images (no scikit-image needed)")
    parser.add_argument("--skip-store", action="store_true",
                        help="only the data in memory (digits and images)")
    parser.add_argument("--covariance-types", nargs="+", default=["full", "diag"],
                        choices=["full", "diag"], help="of the fits on the data in memory")
    parser.add_argument("--max-iter", type=int, default=500,
                        help="most passes (and partial_fit epochs) of a method; a smoke run "
                             "takes a few")
    parser.add_argument("--sweep-blocks", default=None,
                        help="instead: incremental EM on the store with these numbers of "
                             "blocks, e.g. 4,8,16,32")
    parser.add_argument("--compare-read-ahead", type=int, default=0, metavar="REPEATS",
                        help="instead: incremental EM on the store with and without reading "
                             "the next block ahead, alternating, REPEATS runs each")
    args = parser.parse_args()
    n_blocks = args.n_blocks if args.n_blocks == "auto" else int(args.n_blocks)
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.sweep_blocks or args.compare_read_ahead:
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=args.worker_memory, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.get_task_stream()
            X = da.from_zarr(synthetic_store(args.path, args.gb)[0])
            if args.sweep_blocks:
                sweep(X, [int(count) for count in args.sweep_blocks.split(",")], client)
            else:
                compare_read_ahead(X, args.compare_read_ahead, client)
        return
    print(f"| data | covariance | method | read from | passes to tol {TOLS[0]:g} | "
          f"passes to tol {TOLS[1]:g} | bound at tol {TOLS[1]:g} stop | seconds to it | "
          f"passes to within {REACH:g} of best bound | batch / method, those passes | "
          "seconds to within | idle |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    if not args.skip_memory:
        digits = PCA(20, random_state=0).fit_transform(load_digits().data)
        datasets = [("digits PCA-20", digits, 32)]
        if not args.skip_images:
            pixels = image_pixels()
            datasets.append((f"{len(pixels) // 1000}k image pixels", pixels, 64))
        for name, X, chunks in datasets:
            for covariance_type in args.covariance_types:
                run(name, da.from_array(X, chunks=(-(-len(X) // chunks), X.shape[1])),
                    covariance_type, n_blocks, None, args.max_iter)
    if args.skip_store:
        print(f"\npeak RSS: this process {_peak_rss_mib():.0f} MiB; {_load_average()}")
        return
    store, written = synthetic_store(args.path, args.gb)

    def source():
        share = page_cache_share(args.path)
        return (f"store {'written by this run' if written else 'found on disk'}, "
                f"{'?' if share is None else f'{share:.0%}'} in page cache")

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.worker_memory, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.get_task_stream()  # the scheduler records task times from this call on
        run(f"zarr {args.gb:g} GB", da.from_zarr(store), "diag", n_blocks, client, args.max_iter,
            source)
        workers = client.run(_peak_rss_mib)
    print(f"\npeak RSS: this process {_peak_rss_mib():.0f} MiB; workers "
          + ", ".join(f"{rss:.0f}" for rss in workers.values()) + f" MiB; {_load_average()}")


if __name__ == "__main__":
    main()
