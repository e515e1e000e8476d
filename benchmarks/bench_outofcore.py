"""Streamed EM from a zarr store larger than the workers' memory, against its two floors.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_outofcore.py          # 8 GB store at /tmp/daskgmm-bench.zarr
    python benchmarks/bench_outofcore.py --gigabytes 0.02 --chunk-rows 20000 \\
        --memory-limit 1GiB --path /tmp/daskgmm-smoke.zarr           # smoke test

The store (float64, zarr's default compression, ``--chunk-rows`` rows per
chunk, all features in one chunk) is written once if missing, chunk by chunk
from a seeded generator, and reused afterwards (the script stops if the store
at ``--path`` has another shape or chunking). Then, on a LocalCluster of
``--workers`` processes with one thread and ``--memory-limit`` each:

(a) bare read: ``da.from_zarr(path).sum().compute()``;
(b) streamed EM: daskgmm ``GaussianMixture(covariance_type='full', tol=0,
    max_iter=--iterations)`` on ``da.from_zarr(path)``, started from parameters
    taken from the first rows (``cache=False`` where the estimator has it);
(c) in-memory EM: the same model on the first ~1,000,000 rows persisted on
    the workers, its seconds per iteration scaled to all rows.

They run in the order (c), (a), (b): the untimed 1-iteration warm-up of (c)
has the workers import daskgmm, and (a) leaves the operating system's page
cache as warm for (b) as it can (it is not dropped: reads of a store smaller
than the free memory are warm).

Prints a header (machine, versions, command, store), a Markdown table of the
seconds per pass over all rows and the peak RSS of this process and of every
worker in each phase (sampled every 0.1 s), and a second table with the ratio
streamed / (in-memory + bare read) against the goal of 1.15.
"""

import argparse
import os
import sys
import warnings

import dask
import dask.array as da
import numpy as np
import zarr
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from bench_em import (
    MB,
    SEED,
    cluster_rss,
    format_workers,
    header_lines,
    initial_parameters,
    mixture_parameters,
    persist_balanced,
    sample_mixture,
    timed,
)
from daskgmm import GaussianMixture

# The goal for streamed seconds per iteration / (in-memory + bare read).
GOAL = 1.15
# Rows (about; whole chunks) persisted for the in-memory fit.
IN_MEMORY_ROWS = 1_000_000
# Rows the initial parameters are taken from.
INIT_ROWS = 100_000


# ----------------------------------------------------------------- store


def _mixture_block(parameters, block_info=None):
    """One chunk of rows, from a generator seeded by the chunk's index."""
    info = block_info[None]
    rng = np.random.default_rng([SEED, info["chunk-location"][0]])
    return sample_mixture(info["chunk-shape"][0], parameters, rng)


def write_store(path, n_rows, n_features, n_components, chunk_rows):
    """Write the store chunk by chunk under a temporary name, then rename it into place."""
    parameters = mixture_parameters(n_features, n_components)
    lazy = da.map_blocks(
        _mixture_block,
        parameters,
        chunks=(da.core.normalize_chunks(chunk_rows, (n_rows,))[0], (n_features,)),
        meta=np.empty((0, 0)),
    )
    partial_path = f"{path}.partial"
    with dask.config.set(scheduler="threads"):
        lazy.to_zarr(partial_path, overwrite=True)
    os.replace(partial_path, path)


def open_store(args):
    """The store at ``args.path``, written first if missing."""
    n_rows = round(args.gigabytes * 1e9 / (8 * args.n_features))
    shape, chunks = (n_rows, args.n_features), (min(args.chunk_rows, n_rows), args.n_features)
    if not os.path.exists(args.path):
        print(f"Writing {n_rows:,} x {args.n_features} float64 to {args.path} ...", flush=True)
        write_store(args.path, n_rows, args.n_features, args.n_components, args.chunk_rows)
    stored = zarr.open_array(args.path, mode="r")
    if stored.shape != shape or stored.chunks != chunks:
        sys.exit(
            f"{args.path} holds shape {stored.shape} in chunks {stored.chunks}, not {shape} in "
            f"{chunks}: remove it or pass another --path"
        )
    return stored


def store_line(stored, path):
    codecs = ", ".join(type(c).__name__ for c in stored.compressors) or "none"
    return (
        f"Store: {path}, {stored.shape[0]:,} x {stored.shape[1]} {stored.dtype}, chunks "
        f"{stored.chunks}, {stored.nbytes / 1e9:.2f} GB ({stored.nbytes_stored() / 1e9:.2f} GB "
        f"stored, compressors: {codecs})"
    )


# ------------------------------------------------------------ benchmarks


def in_memory_seconds(client, path, n_sub, kwargs, probe):
    """Seconds per iteration on the first ``n_sub`` rows persisted on the workers."""
    sub = da.from_zarr(path)[:n_sub]
    X_sub = persist_balanced(client, [sub.blocks[i] for i in range(sub.numblocks[0])])
    # Warm-up: the workers import daskgmm and scikit-learn on their first task.
    GaussianMixture(**{**kwargs, "max_iter": 1}).fit(X_sub)
    seconds, peaks = timed(lambda: GaussianMixture(**kwargs).fit(X_sub), probe)
    return seconds / kwargs["max_iter"], peaks


def streamed_seconds(path, kwargs, probe):
    """Seconds per iteration of EM reading the store every iteration."""
    no_cache = {"cache": False} if "cache" in GaussianMixture().get_params() else {}
    model = GaussianMixture(**kwargs, **no_cache)
    seconds, peaks = timed(lambda: model.fit(da.from_zarr(path)), probe)
    return seconds / kwargs["max_iter"], peaks, no_cache


def run(args, stored):
    """Seconds per pass over all rows and peaks of (a), (b) and (c): three table rows."""
    n_rows, chunk_rows = stored.shape[0], stored.chunks[0]
    n_sub = min(n_rows, max(1, round(IN_MEMORY_ROWS / chunk_rows)) * chunk_rows)
    kwargs = dict(
        n_components=args.n_components,
        covariance_type="full",
        tol=0,
        max_iter=args.iterations,
        **initial_parameters(stored[:INIT_ROWS], args.n_components, "full"),
    )
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        probe = cluster_rss(client)
        memory, memory_peaks = in_memory_seconds(client, args.path, n_sub, kwargs, probe)
        read, read_peaks = timed(lambda: da.from_zarr(args.path).sum().compute(), probe)
        streamed, streamed_peaks, no_cache = streamed_seconds(args.path, kwargs, probe)
    cache = ", ".join(f"{k}={v}" for k, v in no_cache.items()) or "no cache parameter"
    return [
        ("(a) bare read, `da.from_zarr(path).sum()`", read, read_peaks),
        (
            f"(c) in-memory EM, first {n_sub:,} rows persisted, x {n_rows / n_sub:.4g}",
            memory * n_rows / n_sub,
            memory_peaks,
        ),
        (f"(b) streamed EM from zarr ({cache})", streamed, streamed_peaks),
    ]


# ---------------------------------------------------------------- output


def tables(rows):
    lines = [
        "| phase | s per pass over all rows | peak client RSS MB | peak worker RSS MB |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds, peaks in rows:
        lines.append(
            f"| {name} | {seconds:.3f} | {peaks['client'] / MB:.0f} | {format_workers(peaks)} |"
        )
    (_, read, _), (_, memory, _), (_, streamed, _) = rows
    ratio = streamed / (memory + read)
    lines += [
        "",
        "| streamed / (in-memory + bare read) | goal | met |",
        "|---:|---:|---|",
        f"| {ratio:.3f} | ≤ {GOAL} | {'yes' if ratio <= GOAL else 'no'} |",
    ]
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default="/tmp/daskgmm-bench.zarr", help="zarr store")
    parser.add_argument("--gigabytes", type=float, default=8.0, help="data size, 1e9 bytes")
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB", help="per worker")
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    stored = open_store(args)
    print("\n".join(header_lines()))
    print(f"zarr {zarr.__version__}; " + store_line(stored, args.path))
    print(
        f"LocalCluster: {args.workers} workers x 1 thread, memory limit {args.memory_limit} "
        f"each; {args.n_components} components, full covariances, {args.iterations} "
        f"iterations, tol=0"
    )
    rows = run(args, stored)
    print()
    print("\n".join(tables(rows)))


if __name__ == "__main__":
    main()
