"""Client-side cost of one EM iteration's graph, for arrays of many chunks.

Prints, per number of row chunks and reduction fan-in: the time daskgmm takes
to build the lazy graph of one EM pass, the time dask then takes to optimise
and materialise it (what ``dask.compute`` does on the client before anything
runs), and the number of tasks. Nothing is computed.

    python benchmarks/bench_graph.py [--chunks 1000 10000] [--repeats 3]
"""

import argparse
import time

import dask
import dask.array as da
import numpy as np

from daskgmm import _graph
from daskgmm._family import MAXIMUM_LIKELIHOOD
from daskgmm._mstep import Parameters

N_FEATURES, N_COMPONENTS, ROWS_PER_CHUNK = 16, 8, 100


def one_iteration(n_chunks, split_every):
    """Seconds to build and to optimise the graph of one pass, and its task count."""
    X = da.ones((n_chunks * ROWS_PER_CHUNK, N_FEATURES), chunks=(ROWS_PER_CHUNK, N_FEATURES))
    data = _graph.RowData(X, None, None)
    identities = np.stack([np.eye(N_FEATURES)] * N_COMPONENTS)
    models = [Parameters(
        "full",
        np.full(N_COMPONENTS, 1 / N_COMPONENTS),
        np.zeros((N_COMPONENTS, N_FEATURES)),
        identities,
        identities,
    )]
    start = time.perf_counter()
    lazy, _ = _graph.em_statistics(data, models, MAXIMUM_LIKELIHOOD, split_every)
    built = time.perf_counter()
    (optimised,) = dask.optimize(*lazy)
    n_tasks = len(dict(optimised.__dask_graph__()))
    done = time.perf_counter()
    return built - start, done - built, n_tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"full, D {N_FEATURES}, K {N_COMPONENTS}; best of {args.repeats}; "
          f"dask {dask.__version__}")
    print("| row chunks | split_every | daskgmm build ms | dask optimise + materialise ms "
          "| total ms | tasks |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n_chunks in args.chunks:
        for split_every in (None, 32):
            runs = [one_iteration(n_chunks, split_every) for _ in range(args.repeats)]
            build = min(run[0] for run in runs) * 1e3
            optimise = min(run[1] for run in runs) * 1e3
            total = min(run[0] + run[1] for run in runs) * 1e3
            label = "dask's default" if split_every is None else split_every
            print(f"| {n_chunks:,} | {label} | {build:.0f} | {optimise:.0f} | {total:.0f} "
                  f"| {runs[0][2]:,} |")


if __name__ == "__main__":
    main()
