"""The ``daskgmm`` command line: make data, fit, predict, score, inspect, demo."""

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings

import dask.array as da
import numpy as np
import zarr
from sklearn.exceptions import ConvergenceWarning

from . import __version__, load
from ._cluster import connect
from ._gaussian_mixture import GaussianMixture
from ._ic import GaussianMixtureIC
from .datasets import make_mixture


def open_data(path):
    """A Dask array over a zarr store or a ``.npy`` file, never read whole."""
    if str(path).endswith(".npy"):
        return da.from_array(np.load(path, mmap_mode="r"))
    try:
        return da.from_zarr(zarr.open_array(path, mode="r"))
    except Exception as error:  # zarr raises several types for a bad store
        raise ValueError(f"{path} is not a zarr array or .npy file: {error}") from None


def _make_data(args):
    X, _ = make_mixture(args.n_samples, args.n_features, args.n_components,
                        chunk_rows=args.chunk_rows, seed=args.seed)
    X.to_zarr(args.output, overwrite=True)
    print(f"wrote {args.output}: {X.shape[0]} rows x {X.shape[1]} features, "
          f"{X.numblocks[0]} chunk(s) of up to {X.chunks[0][0]} rows")


def _search(args, X):
    """``fit --select MIN:MAX``: a GaussianMixtureIC search; prints its table, saves the best."""
    try:
        low, high = (int(side) for side in args.select.split(":"))
    except ValueError:
        raise ValueError(f"--select takes MIN:MAX (two integers); got {args.select!r}") from None
    types = args.covariance_type if args.covariance_type == "all" else \
        args.covariance_type.split(",")
    with connect(args.cluster):
        ic = GaussianMixtureIC(low, high, covariance_type=types, max_iter=args.max_iter,
                               tol=args.tol, n_init=args.n_init, init_params=args.init_params,
                               random_state=args.random_state, verbose=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            ic.fit(X)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    results = ic.results_
    print("n_components covariance_type          bic          aic  n_iter converged")
    for row in zip(*(results[name] for name in ("n_components", "covariance_type", "bic",
                                                 "aic", "n_iter", "converged"))):
        print("{:12d} {:15s} {:12.2f} {:12.2f} {:7d} {}".format(*row))
    ic.save(args.output)
    print(f"best: {ic.n_components_} {ic.covariance_type_} components, {ic.criterion} "
          f"{ic.criterion_:.2f}; saved to {args.output}")
    return ic.best_estimator_


def _fit(args):
    X = open_data(args.data)
    if getattr(args, "select", None):  # demo's arguments have none
        return _search(args, X)
    if args.n_components is None:
        raise ValueError("fit needs --n-components K, or --select MIN:MAX for a search")
    with connect(args.cluster):
        gm = GaussianMixture(
            args.n_components, covariance_type=args.covariance_type, max_iter=args.max_iter,
            tol=args.tol, n_init=args.n_init, init_params=args.init_params,
            random_state=args.random_state, verbose=2, verbose_interval=1,
        )
        tic = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            gm.fit(X)
        seconds = time.perf_counter() - tic
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    gm.save(args.output)
    print(f"fitted {gm.means_.shape[0]} {args.covariance_type} components in {gm.n_iter_} "
          f"iterations ({seconds:.1f} s), converged: {gm.converged_}, "
          f"lower bound {gm.lower_bound_:.6f}; saved to {args.output}")
    return gm


def _predict(args):
    gm = load(args.model)
    X = open_data(args.data)
    with connect(args.cluster):
        stores = [gm.predict(X).to_zarr(args.output, overwrite=True, compute=False)]
        if args.probabilities:
            stores.append(gm.predict_proba(X).to_zarr(args.probabilities, overwrite=True,
                                                      compute=False))
        da.compute(*stores)
    print(f"wrote labels of {X.shape[0]} rows to {args.output}"
          + (f" and probabilities to {args.probabilities}" if args.probabilities else ""))


def _score(args):
    gm = load(args.model)
    X = open_data(args.data)
    with connect(args.cluster):
        score = gm.score(X)
    n_samples, n_parameters = X.shape[0], gm._n_parameters()
    bic = -2 * score * n_samples + n_parameters * np.log(n_samples)
    aic = -2 * score * n_samples + 2 * n_parameters
    print(f"mean log-likelihood {score:.6f}  BIC {bic:.2f}  AIC {aic:.2f}")


def _info(args):
    gm = load(args.model)
    print(f"daskgmm model {args.model}")
    print(f"  components {gm.means_.shape[0]}, features {gm.n_features_in_}, "
          f"covariance {gm.covariance_type}")
    print(f"  iterations {gm.n_iter_}, converged {gm.converged_}, "
          f"lower bound {gm.lower_bound_:.6f}")
    if hasattr(gm, "classes_"):
        print(f"  classes {list(gm.classes_)}")
    for k, (weight, mean) in enumerate(zip(gm.weights_, gm.means_)):
        print(f"  component {k}: weight {weight:.4f}, mean {np.array2string(mean, precision=3)}")


def _demo(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="daskgmm-demo-")
    data = os.path.join(workdir, "data.zarr")
    model = os.path.join(workdir, "model.zarr")
    print(f"daskgmm {__version__} demo in {workdir}")
    _make_data(argparse.Namespace(output=data, n_samples=args.n_samples, n_features=4,
                                  n_components=4, chunk_rows=max(1, args.n_samples // 8),
                                  seed=0))
    gm = _fit(argparse.Namespace(
        data=data, cluster=args.cluster, n_components=4, covariance_type="full",
        max_iter=100, tol=1e-3, n_init=1, init_params="kmeans", random_state=0, output=model))
    _, (weights, means, _) = make_mixture(1, 4, 4, seed=0)
    order = [int(np.argmin(np.linalg.norm(gm.means_ - mean, axis=1))) for mean in means]
    error = np.abs(gm.means_[order] - means).max()
    print(f"largest error of a fitted mean against the true means: {error:.3f}")
    print(f"true weights {np.round(weights, 3)}, fitted {np.round(gm.weights_[order], 3)}")


def _parser():
    parser = argparse.ArgumentParser(prog="daskgmm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"daskgmm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("make-data", help="write a synthetic mixture to a zarr store")
    make.add_argument("output")
    make.add_argument("--n-samples", type=int, default=1_000_000)
    make.add_argument("--n-features", type=int, default=16)
    make.add_argument("--n-components", type=int, default=8)
    make.add_argument("--chunk-rows", type=int, default=250_000)
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(run=_make_data)

    fit = commands.add_parser("fit", help="fit a model to a zarr store or .npy file")
    fit.add_argument("data")
    fit.add_argument("--n-components", type=int, default=None)
    fit.add_argument("--covariance-type", default="full",
                     help="full, tied, diag or spherical; with --select also 'all' or a "
                          "comma-separated list")
    fit.add_argument("--select", default=None, metavar="MIN:MAX",
                     help="search n_components in MIN..MAX (GaussianMixtureIC) and save the best")
    fit.add_argument("--max-iter", type=int, default=100)
    fit.add_argument("--tol", type=float, default=1e-3)
    fit.add_argument("--n-init", type=int, default=1)
    fit.add_argument("--init-params", default="kmeans",
                     choices=["kmeans", "k-means++", "random", "random_from_data"])
    fit.add_argument("--random-state", type=int, default=None)
    fit.add_argument("--output", required=True, help="model store to write")
    fit.set_defaults(run=_fit)

    predict = commands.add_parser("predict", help="write labels (and probabilities) to zarr")
    predict.add_argument("model")
    predict.add_argument("data")
    predict.add_argument("--output", required=True)
    predict.add_argument("--probabilities", default=None)
    predict.set_defaults(run=_predict)

    score = commands.add_parser("score", help="mean log-likelihood, BIC and AIC of data")
    score.add_argument("model")
    score.add_argument("data")
    score.set_defaults(run=_score)

    info = commands.add_parser("info", help="describe a saved model")
    info.add_argument("model")
    info.set_defaults(run=_info)

    demo = commands.add_parser("demo", help="make data, fit it on a local cluster, report")
    demo.add_argument("--n-samples", type=int, default=200_000)
    demo.add_argument("--workdir", default=None)
    demo.set_defaults(run=_demo)

    for command in (fit, predict, score, demo):
        command.add_argument("--cluster", default=None,
                             help="cluster config YAML (see cluster_configs/)")
    return parser


def main(argv=None):
    """Entry point of the ``daskgmm`` command."""
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"daskgmm {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
