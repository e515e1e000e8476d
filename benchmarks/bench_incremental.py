"""Passes and seconds to convergence: batch EM, incremental EM and partial_fit epochs.

Run from the repository root::

    python benchmarks/bench_incremental.py                # 0.5 GB synthetic store
    python benchmarks/bench_incremental.py --gb 0.05      # smoke run

Data: the digits of scikit-learn after PCA to 20 dimensions (K=10, full and
diag; in memory, 30 row chunks), and a synthetic zarr store of ``--gb`` GB
(10 overlapping diagonal components in 8 dimensions, 64 chunks, written once
at ``--path``) streamed through a LocalCluster of ``--workers`` one-thread
worker processes with ``cache=False``. Every method starts from the same
k-means start. For each tol (1e-3, 1e-5):

- batch: ``GaussianMixture(tol=tol)``, passes = ``n_iter_``;
- incremental: ``algorithm='incremental'`` (``n_blocks='auto'``, or
  ``--n-blocks``), passes = laps = ``n_iter_``, and the share of the
  workers' thread time left idle during its fit (from the task stream);
- partial_fit: epochs of ``partial_fit`` over the same blocks until an
  epoch's mean log-likelihood changes by less than tol (at most 30), one
  pass each.

Prints a Markdown table with the final mean log-likelihood on all rows and
the ratios batch / method of passes and seconds.
"""

import argparse
import os
import time
import warnings

import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from daskgmm import GaussianMixture
from daskgmm._em import block_bounds
from daskgmm._graph import from_dask

TOLS = (1e-3, 1e-5)
MAX_EPOCHS = 30


def synthetic_store(path, gigabytes, n_features=8, n_components=10, n_chunks=64, seed=1):
    """A zarr store of overlapping diagonal components (written once, chunk by chunk)."""
    n_samples = int(gigabytes * 1e9 / (8 * n_features)) // n_chunks * n_chunks
    rows = n_samples // n_chunks
    if os.path.exists(path):
        stored = zarr.open_array(path, mode="r")
        if stored.shape == (n_samples, n_features) and stored.chunks[0] == rows:
            return stored
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=1.5, size=(n_components, n_features))
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    store = zarr.create_array(path, shape=(n_samples, n_features), chunks=(rows, n_features),
                              dtype="f8", overwrite=True)
    for chunk in range(n_chunks):
        labels = rng.integers(n_components, size=rows)
        store[chunk * rows:(chunk + 1) * rows] = (
            means[labels] + scales[labels] * rng.normal(size=(rows, n_features)))
    return store


def _busy_share(client, since, wall):
    """Share of the workers' thread time spent in tasks since ``since`` (epoch seconds)."""
    busy = sum(part["stop"] - part["start"] for task in client.get_task_stream(start=since)
               for part in task["startstops"] if part["action"] == "compute")
    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    return busy / (threads * wall)


def run(name, X, covariance_type, n_blocks, client):
    """Rows of the table for one dataset and covariance type."""
    start = GaussianMixture(10, covariance_type=covariance_type, random_state=0,
                            max_iter=0).fit(X)
    common = dict(n_components=10, covariance_type=covariance_type, cache=False,
                  weights_init=start.weights_, means_init=start.means_,
                  precisions_init=start.precisions_, max_iter=500)
    bounds = block_bounds(from_dask(da.asarray(X)), n_blocks)
    rows = []
    for tol in TOLS:
        results = {}
        tic = time.perf_counter()
        batch = GaussianMixture(**common, tol=tol).fit(X)
        results["batch"] = (batch.n_iter_, time.perf_counter() - tic, batch, None)
        tic, wall_start = time.perf_counter(), time.time()
        incremental = GaussianMixture(**common, tol=tol, algorithm="incremental",
                                      n_blocks=n_blocks).fit(X)
        seconds = time.perf_counter() - tic
        idle = None if client is None else 1 - _busy_share(client, wall_start, seconds)
        results[f"incremental ({len(bounds)} blocks)"] = (incremental.n_iter_, seconds,
                                                          incremental, idle)
        online, previous, epochs = GaussianMixture(**common, tol=tol), -np.inf, 0
        tic = time.perf_counter()
        while epochs < MAX_EPOCHS:
            for begin, end in bounds:
                online.partial_fit(X[begin:end])
            epochs += 1
            mean = np.mean(online.lower_bounds_[-len(bounds):])
            if abs(mean - previous) < tol:
                break
            previous = mean
        results["partial_fit epochs"] = (epochs, time.perf_counter() - tic, online, None)
        base_passes, base_seconds = results["batch"][:2]
        for method, (passes, seconds, model, idle) in results.items():
            rows.append(
                f"| {name} | {covariance_type} | {tol:g} | {method} | {passes} | {seconds:.1f} | "
                f"{model.score(X):.5f} | {base_passes / passes:.2f} | "
                f"{base_seconds / seconds:.2f} | {'' if idle is None else f'{idle:.0%}'} |")
            print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=0.5, help="size of the synthetic store")
    parser.add_argument("--path", default="/tmp/daskgmm-bench-incremental.zarr")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-blocks", default="auto")
    args = parser.parse_args()
    n_blocks = args.n_blocks if args.n_blocks == "auto" else int(args.n_blocks)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print("| data | covariance | tol | method | passes | seconds | mean log-lik | "
          "passes ratio | time ratio | idle |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    digits = PCA(20, random_state=0).fit_transform(load_digits().data)
    for covariance_type in ("full", "diag"):
        run("digits PCA-20", da.from_array(digits, chunks=(60, 20)), covariance_type,
            n_blocks, None)
    store = synthetic_store(args.path, args.gb)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.get_task_stream()  # the scheduler records task times from this call on
        run(f"zarr {args.gb:g} GB", da.from_zarr(store), "diag", n_blocks, client)


if __name__ == "__main__":
    main()
