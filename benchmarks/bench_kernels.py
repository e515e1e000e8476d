"""Seconds per EM iteration of the per-chunk kernels, side by side with their floors.

Run from the repository root, on a quiet machine::

    python benchmarks/bench_kernels.py                     # A, B, C, D and Flash
    python benchmarks/bench_kernels.py --quick             # tiny (scale 0.01), in seconds
    python benchmarks/bench_kernels.py --configs A --scale 0.1 --repeats 5

For every configuration and covariance type, one row per system, each figure
the fastest of ``--repeats`` repetitions, the systems interleaved within every
repetition (this 2-core machine's speed drifts from minute to minute):

- ``scikit-learn`` and ``scikit-learn float32``: ``GaussianMixture`` on the
  NumPy array and on its float32 copy, all BLAS threads;
- ``daskgmm numpy`` and ``daskgmm numpy float32``: daskgmm on the same arrays;
- ``daskgmm dask`` and ``daskgmm dask float32``: daskgmm on ``da.from_array``
  of them in ``CHUNK_ROWS`` chunks (in memory, threaded scheduler);
- ``textbook``: one pass of the textbook NumPy/BLAS formulation (sklearn's
  E-step, then raw-moment statistics r^T X, r^T X^2 or (r X)^T X, with no
  numerical care), float64, all BLAS threads: a floor for the pass.

The fits' seconds per iteration are (t(n) - t(1)) / (n - 1) for fits of n =
``--iterations`` and of 1 iteration from the same start (``tol=0``), so that
initialisation and the final E-step drop out. Columns: seconds, speed-up
against scikit-learn float64, the row's seconds / the textbook pass's,
float32 / float64 seconds of the same system, Dask / NumPy seconds, and for
float64 ``full`` the share of the machine's dgemm rate (``DGEMM_SIZE`` square,
all threads) that 4 N K D^2 FLOPs per iteration make. A fit that raises
ValueError (an ill-defined covariance: scikit-learn's float32 B ``full`` on
``--quick``'s 2,000 rows) shows "failed" and dashes for its ratios.
"""

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import bench_em
from bench_em import CONFIGS, Config, as_dask, config_data, estimator_kwargs
from daskgmm import GaussianMixture

# Flash-GMM-like: many components of many features, diagonal covariances.
KERNEL_CONFIGS = {**CONFIGS, "Flash": Config("Flash", 200_000, 128, 256, ("diag",))}
CHUNK_ROWS = bench_em.CHUNK_ROWS
SYSTEMS = ("scikit-learn", "scikit-learn float32", "daskgmm numpy", "daskgmm numpy float32",
           "daskgmm dask", "daskgmm dask float32", "textbook")
QUICK_SCALE = 0.01


def textbook_pass(X, weights, means, precisions, covariance_type):
    """One E-step and raw-moment statistics, as textbooks (and sklearn) write them."""
    n_features = X.shape[1]
    if covariance_type == "full":
        chol = np.linalg.cholesky(precisions)  # P = L L^T
        log_prob = np.empty((X.shape[0], len(weights)))
        for k, (mean, factor) in enumerate(zip(means, chol)):
            y = (X - mean) @ factor
            log_prob[:, k] = -0.5 * np.einsum("ij,ij->i", y, y) + np.log(np.diag(factor)).sum()
    elif covariance_type == "tied":
        factor = np.linalg.cholesky(precisions)
        y, m = X @ factor, means @ factor
        log_prob = (y @ m.T - 0.5 * np.einsum("ij,ij->i", y, y)[:, None]
                    - 0.5 * np.einsum("ij,ij->i", m, m) + np.log(np.diag(factor)).sum())
    else:
        p = precisions if covariance_type == "diag" else np.outer(precisions, np.ones(n_features))
        log_prob = (X @ (means * p).T - 0.5 * (X**2) @ p.T
                    - 0.5 * np.sum(means**2 * p, axis=1) + 0.5 * np.log(p).sum(axis=1))
    log_prob += np.log(weights) - 0.5 * n_features * np.log(2 * np.pi)
    norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - norm[:, None])
    nk, first = resp.sum(axis=0), resp.T @ X
    if covariance_type == "full":
        second = np.stack([(resp[:, k, None] * X).T @ X for k in range(len(weights))])
    elif covariance_type == "tied":
        second = X.T @ X
    elif covariance_type == "diag":
        second = resp.T @ (X * X)
    else:
        second = resp.T @ np.einsum("ij,ij->i", X, X)
    return nk, first, second, norm.sum()


def fit_seconds(make, X, iterations):
    """Wall seconds of a fit of ``iterations`` iterations and of one of 1 iteration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tic = time.perf_counter()
        make(iterations).fit(X)
        many = time.perf_counter() - tic
        tic = time.perf_counter()
        make(1).fit(X)
        one = time.perf_counter() - tic
    return many, one


def measure(config, covariance_type, args):
    """{system: seconds per iteration}, the fastest of ``args.repeats`` interleaved runs."""
    X, _ = config_data(config)
    X32 = X.astype(np.float32)
    kwargs = estimator_kwargs(X, covariance_type, config, args.iterations)
    start = (kwargs["weights_init"], kwargs["means_init"], kwargs["precisions_init"])

    def make(cls, dtype=np.float64):
        def estimator(max_iter):
            given = {name: (np.asarray(value, dtype) if name.endswith("_init") else value)
                     for name, value in kwargs.items()}
            return cls(**{**given, "max_iter": max_iter})
        return estimator

    runs = {
        "scikit-learn": (make(SklearnGaussianMixture), X),
        "scikit-learn float32": (make(SklearnGaussianMixture, np.float32), X32),
        "daskgmm numpy": (make(GaussianMixture), X),
        "daskgmm numpy float32": (make(GaussianMixture, np.float32), X32),
        "daskgmm dask": (make(GaussianMixture), as_dask(X, CHUNK_ROWS)),
        "daskgmm dask float32": (make(GaussianMixture, np.float32), as_dask(X32, CHUNK_ROWS)),
    }
    fit_seconds(runs["daskgmm numpy"][0], X[:1000], 2)  # compiles or loads the kernels
    fit_seconds(runs["daskgmm numpy float32"][0], X32[:1000], 2)
    best = dict.fromkeys(SYSTEMS, np.inf)
    iterations = max(args.iterations, 2)
    for _ in range(args.repeats):
        for system, (make_fit, data) in runs.items():
            try:
                many, one = fit_seconds(make_fit, data, iterations)
            except ValueError:  # an ill-defined covariance (scikit-learn's float32 B
                continue  # `full` on the few rows of --quick): "failed" in the table
            best[system] = min(best[system], max(many - one, 0.0) / (iterations - 1))
        tic = time.perf_counter()
        textbook_pass(X, *start, covariance_type)
        best["textbook"] = min(best["textbook"], time.perf_counter() - tic)
    return best


def ratio(numerator, denominator):
    """numerator / denominator, or a dash where either failed (inf) or is 0."""
    finite = np.isfinite(numerator) and np.isfinite(denominator)
    return f"{numerator / denominator:.2f}" if finite and denominator > 0 else "—"


def table(config, covariance_type, best, dgemm):
    """Markdown rows of one configuration and covariance type."""
    flops = 4 * config.n_samples * config.n_components * config.n_features**2
    lines = []
    for system in SYSTEMS:
        seconds = best[system]
        single = system.endswith("float32")
        double = system.removesuffix(" float32")
        dask = system.replace("gmm dask", "gmm numpy") if "gmm dask" in system else None
        share = (f"{100 * flops / seconds / 1e9 / dgemm:.0f} %"
                 if covariance_type == "full" and system == "daskgmm numpy"
                 and np.isfinite(seconds) else "—")
        lines.append(markdown_row([
            config.name, covariance_type, system,
            f"{seconds:.4f}" if np.isfinite(seconds) else "failed",
            ratio(best["scikit-learn"], seconds), ratio(seconds, best["textbook"]),
            ratio(seconds, best[double]) if single else "—",
            ratio(seconds, best[dask]) if dask else "—", share]))
    return lines


def markdown_row(cells):
    """One row of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=KERNEL_CONFIGS,
                        default=list(KERNEL_CONFIGS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies N")
    parser.add_argument("--quick", action="store_true",
                        help=f"--scale {QUICK_SCALE}, 1 repeat, 3 iterations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--types", nargs="+", choices=bench_em.COVARIANCE_TYPES,
                        default=list(bench_em.COVARIANCE_TYPES))
    args = parser.parse_args(argv)
    if args.quick:
        args.scale, args.repeats, args.iterations = QUICK_SCALE, 1, 3
    return args


def main(argv=None):
    args = parse_args(argv)
    rates = bench_em.dgemm_rates()
    dgemm = max(rates.values())
    print("\n".join([*bench_em.header_lines(), bench_em.dgemm_line(rates)]))
    print()
    print(markdown_row(["config", "type", "system", "s / iteration", "vs sklearn f64 (x)",
                        "/ textbook", "f32 / f64", "Dask / NumPy", "full: % of dgemm"]))
    print(markdown_row(["---"] * 9))
    for name in args.configs:
        config = KERNEL_CONFIGS[name]
        config = replace(config, n_samples=max(int(config.n_samples * args.scale),
                                               4 * config.n_components))
        for covariance_type in config.covariance_types:
            if covariance_type not in args.types:
                continue
            best = measure(config, covariance_type, args)
            print("\n".join(table(config, covariance_type, best, dgemm)), flush=True)


if __name__ == "__main__":
    main()
