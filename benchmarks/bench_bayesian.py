"""Seconds per iteration: scikit-learn's BayesianGaussianMixture against daskgmm's.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_bayesian.py                 # A and B, 10 iterations
    python benchmarks/bench_bayesian.py --scale 0.02 --iterations 3   # smoke test

Configurations (``--scale`` multiplies N): A: N = 1,000,000, D = 16, K = 8;
B: N = 200,000, D = 64, K = 16. Data drawn (seeded, float64) from a mixture
with random full covariances. For every covariance type, each system fits
with ``init_params='random'``, ``random_state=0`` and ``tol=0``: the same
start for scikit-learn and daskgmm on NumPy input (Dask input draws its
random responsibilities per row, so its means are not compared);
seconds per iteration are (t_n - t_1) / (n - 1) from fits of n and 1
iterations, which leaves out the initialisation, the priors' pass and
scikit-learn's final E-step. Systems: ``scikit-learn`` (NumPy, default BLAS
threads), ``daskgmm numpy`` (local threads) and ``daskgmm dask`` (a persisted
Dask array of ``--n-chunks`` row chunks, threaded scheduler). Prints one
Markdown table: configuration, covariance type, system, seconds per
iteration, ratio to scikit-learn, and the largest relative difference of
``means_`` from scikit-learn's.
"""

import argparse
import os
import sys
import time
import warnings

import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from daskgmm import BayesianGaussianMixture  # noqa: E402
from daskgmm.datasets import make_mixture  # noqa: E402

CONFIGS = {"A": (1_000_000, 16, 8), "B": (200_000, 64, 16)}
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _seconds(make, X, iterations):
    """Seconds per iteration of ``make(max_iter).fit(X)``, and the fitted model."""
    times = {}
    for max_iter in (1, iterations):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            tic = time.perf_counter()
            model = make(max_iter).fit(X)
            times[max_iter] = time.perf_counter() - tic
    return (times[iterations] - times[1]) / (iterations - 1), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies N")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--n-chunks", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"# {' '.join(sys.argv)}; {os.cpu_count()} CPUs")
    print("| config | covariance | system | s / iteration | ratio | means rel. diff |")
    print("|---|---|---|---|---|---|")
    for name in args.configs:
        n_samples, n_features, n_components = CONFIGS[name]
        n_samples = int(n_samples * args.scale)
        X = make_mixture(n_samples, n_features, n_components, seed=0)[0].compute()
        X_dask = da.from_array(X, chunks=(-(-n_samples // args.n_chunks), n_features)).persist()
        label = f"{name} N={n_samples} D={n_features} K={n_components}"
        for covariance_type in COVARIANCE_TYPES:
            kwargs = dict(n_components=n_components, covariance_type=covariance_type, tol=0,
                          init_params="random", random_state=0)
            reference, theirs = _seconds(
                lambda max_iter, kwargs=kwargs: SklearnBayesianGaussianMixture(**kwargs,
                                                                               max_iter=max_iter),
                X, args.iterations)
            rows = [("scikit-learn", reference, theirs)]
            for system, data in (("daskgmm numpy", X), ("daskgmm dask", X_dask)):
                rows.append((system, *_seconds(
                    lambda max_iter, kwargs=kwargs: BayesianGaussianMixture(**kwargs,
                                                                      max_iter=max_iter),
                    data, args.iterations)))
            for system, seconds, model in rows:
                diff = ("-" if system == "daskgmm dask"
                        else f"{np.max(np.abs(model.means_ / theirs.means_ - 1)):.1e}")
                print(f"| {label} | {covariance_type} | {system} | {seconds:.4f} | "
                      f"{reference / seconds:.2f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
