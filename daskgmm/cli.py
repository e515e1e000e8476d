"""The ``daskgmm`` command line: make data, fit, predict, score, impute, inspect, demo.

Only the standard library is imported when the command starts; Dask,
scikit-learn and zarr are imported by the commands that use them, so
``daskgmm --help`` answers at once. Every argument is checked (types,
ranges, paths, the cluster configuration, the data's shape) before a
cluster starts.
"""

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import tempfile
import textwrap
import time

from . import __version__
from ._covariance_types import COVARIANCE_TYPES

# Exit status of a command stopped by Ctrl-C: 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED = 130
# Exit status of a command that failed on its input or its cluster (argparse's own).
EXIT_ERROR = 2

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
NAN_POLICIES = ("raise", "omit", "marginalize")
CACHE_CHOICES = {"auto": "auto", "true": True, "false": False}
# scikit-learn's bound on an integer random_state (NumPy's legacy seeds).
MAX_SEED = 2**32 - 1

# Width of the wrapped lines of `daskgmm info` (a terminal's usual 100 columns).
INFO_WIDTH = 100

# Loggers silenced when Ctrl-C closes a cluster under running tasks.
_SHUTDOWN_LOGGERS = ("asyncio", "distributed")

PARQUET_SUFFIXES = (".parquet", ".pq")
# Files that make a directory a zarr store (v3, then v2 array and group).
ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


# -- argument types: each raises argparse.ArgumentTypeError naming the problem --


def _number(kind, minimum, maximum=math.inf, *, above=False):
    """An argparse type: ``kind(text)`` within ``[minimum, maximum]`` (``above``: > minimum)."""
    noun = "an integer" if kind is int else "a number"

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (above and value == minimum):
            bound = f"above {minimum}" if above else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {text}")
        return value

    return convert


def _existing(text):
    """An argparse type: a path that exists."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def _columns(text):
    """An argparse type: comma-separated, distinct, non-empty column names."""
    names = [name.strip() for name in text.split(",")]
    if "" in names:
        raise argparse.ArgumentTypeError(f"empty column name in {text!r}")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"a column is named twice in {text!r}")
    return names


# -- data -------------------------------------------------------------------


def _is_parquet(path):
    """Whether ``path`` is a Parquet file, or a folder of them that is not a zarr store."""
    if os.path.isfile(path):
        return path.endswith(PARQUET_SUFFIXES)
    if not os.path.isdir(path) or any(
        os.path.exists(os.path.join(path, marker)) for marker in ZARR_MARKERS
    ):
        return False
    return any(
        name.endswith(PARQUET_SUFFIXES) for _, _, names in os.walk(path) for name in names
    )


def _open_parquet(path, columns):
    """A Dask DataFrame of the numeric ``columns`` of a Parquet dataset (nothing read)."""
    import dask.dataframe as dd
    from pandas.api.types import is_numeric_dtype

    frame = dd.read_parquet(path)
    if columns is not None:
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise ValueError(f"{path} has no column(s) {', '.join(missing)}; "
                             f"its columns are {', '.join(map(str, frame.columns))}")
        frame = frame[columns]
    text = [str(name) for name, dtype in frame.dtypes.items() if not is_numeric_dtype(dtype)]
    if text:
        raise ValueError(f"{path}: column(s) {', '.join(text)} are not numeric; "
                         "choose the features with --columns")
    return frame


def open_data(path, columns=None):
    """Open DATA lazily and check it, reading no rows.

    Parameters
    ----------
    path : str
        A zarr array store, a ``.npy`` file, or a Parquet file or folder.
    columns : list of str, optional
        The Parquet columns to use as features (all by default).

    Returns
    -------
    dask.array.Array or dask.dataframe.DataFrame
        A Dask array (zarr, ``.npy``), or a Dask DataFrame (Parquet) that
        `rows` turns into one on the cluster.

    Raises
    ------
    ValueError
        If ``path`` is none of these, ``columns`` are missing or not
        numeric, or ``columns`` is given for data that is not Parquet.
    """
    if _is_parquet(path):
        return _open_parquet(path, columns)
    if columns is not None:
        raise ValueError(f"--columns applies to Parquet data; {path} is not Parquet")
    import dask.array as da
    import numpy as np
    import zarr

    if path.endswith(".npy"):
        return da.from_array(np.load(path, mmap_mode="r"))
    try:
        return da.from_zarr(zarr.open_array(path, mode="r"))
    except Exception as error:  # zarr raises several types for a bad store
        raise ValueError(
            f"{path} is not a zarr array, .npy file or Parquet data: {error}") from None


def _n_features(data):
    return len(data.columns) if hasattr(data, "columns") else data.shape[1]


def _row_count(block):
    import numpy as np

    return np.array([block.shape[0]])


def rows(data):
    """The Dask array of ``data`` (from `open_data`) with known row-chunk lengths.

    A DataFrame's partitions become row chunks; their lengths are counted
    by the workers (only the counts come to the client), in float64.
    """
    import dask.array as da
    import numpy as np

    from ._graph import compute

    if isinstance(data, da.Array):
        return data
    X = data.to_dask_array().astype(np.float64)
    counts = X.map_blocks(_row_count, drop_axis=1, chunks=(1,), dtype=np.int64)
    (lengths,) = compute(counts)
    return da.Array(X.dask, X.name, (tuple(int(n) for n in lengths), X.chunks[1]), meta=X)


# -- checks run before any cluster starts -------------------------------------


def _check_cluster(args):
    """Read and validate ``--cluster`` (a file or a shipped name)."""
    if args.cluster is not None:
        from ._cluster import read_config

        read_config(args.cluster)


def _check_distinct(**paths):
    """Refuse to write over an input: ``paths`` maps option names to paths."""
    seen = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = os.path.abspath(path)
        if key in seen:
            raise ValueError(f"{option} and {seen[key]} are the same path: {path}")
        seen[key] = option


def _check_parent(option, path):
    """Require the folder that will hold ``path`` to exist."""
    if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError(f"{option}: the folder of {path} does not exist")


def _checked_model_and_data(args):
    """Load MODEL and open DATA, checking that their feature counts agree."""
    from ._io import load

    gm = load(args.model)
    data = open_data(args.data, args.columns)
    if _n_features(data) != gm.n_features_in_:
        raise ValueError(f"{args.data} has {_n_features(data)} features, but the model was "
                         f"fitted on {gm.n_features_in_}")
    return gm, data


@contextlib.contextmanager
def _connect(args):
    """Connect to the cluster of ``--cluster``; the workers it starts ignore Ctrl-C.

    Ctrl-C on a terminal interrupts the whole process group. Worker
    processes started while SIGINT is ignored keep ignoring it, so only this
    process stops, and it closes them.
    """
    from ._cluster import connect

    with contextlib.ExitStack() as stack:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            client = stack.enter_context(connect(args.cluster))
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            yield client
        except KeyboardInterrupt:
            # The cluster closes under running tasks: what asyncio and distributed would
            # log about them ("Task exception was never retrieved", ...) is expected.
            for name in _SHUTDOWN_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
            raise


# -- commands ---------------------------------------------------------------


def _make_data(args):
    import dask.array as da

    from ._graph import compute
    from .datasets import make_mixture

    _check_distinct(OUTPUT=args.output, **{"--labels": args.labels})
    X, labels, _ = make_mixture(args.n_samples, args.n_features, args.n_components,
                                chunk_rows=args.chunk_rows, seed=args.seed, return_labels=True)
    stores = [da.to_zarr(X, args.output, overwrite=True, compute=False)]
    if args.labels:
        stores.append(da.to_zarr(labels, args.labels, overwrite=True, compute=False))
    compute(*stores)
    print(f"wrote {args.output}: {X.shape[0]} rows x {X.shape[1]} features, "
          f"{X.numblocks[0]} chunk(s) of up to {X.chunks[0][0]} rows"
          + (f"; true labels to {args.labels}" if args.labels else ""))


def _select(text):
    """An argparse type: ``MIN:MAX``, two positive integers, MIN <= MAX."""
    try:
        low, high = (int(side) for side in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX (two integers), got {text!r}") from None
    if not 1 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 1 <= MIN <= MAX, got {text!r}")
    return low, high


def _covariance_types(text):
    """An argparse type: one covariance type, ``all``, or a comma-separated list of types."""
    types = list(COVARIANCE_TYPES) if text == "all" else text.split(",")
    unknown = [name for name in types if name not in COVARIANCE_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(
            f"unknown covariance type(s) {unknown}; choose from {', '.join(COVARIANCE_TYPES)}, "
            "'all', or a comma-separated list")
    return types


# `info` counts a Bayesian mixture's components of weight above this / n_components
# as effective: the prior drives the weights of unneeded ones towards 0.
EFFECTIVE_WEIGHT = 1e-2

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def _weight_prior(text):
    """``TYPE[:VALUE]`` of --weight-concentration-prior: the prior type and its value or None."""
    kind, _, value = text.partition(":")
    if kind not in WEIGHT_PRIOR_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {' or '.join(WEIGHT_PRIOR_TYPES)}, optionally :VALUE")
    return kind, _number(float, 0, above=True)(value) if value else None


def _fitted_table(results):
    """The lines of a search's results table."""
    names = ("n_components", "covariance_type", "bic", "aic", "n_iter", "converged")
    lines = ["n_components covariance_type          bic          aic  n_iter converged"]
    for row in zip(*(results[name] for name in names)):
        lines.append("{:12d} {:15s} {:12.2f} {:12.2f} {:7d} {}".format(*row))
    return lines


def _fit(args):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ._bayesian_mixture import BayesianGaussianMixture
    from ._classifier import GaussianMixtureClassifier
    from ._gaussian_mixture import GaussianMixture
    from ._ic import GaussianMixtureIC

    _check_distinct(DATA=args.data, **{"--output": args.output, "--checkpoint": args.checkpoint,
                                       "--labels": args.labels})
    _check_parent("--checkpoint", args.checkpoint)
    if args.labels is not None and (args.select is not None or args.bayesian):
        raise ValueError("--labels fits a classifier; not with --select or --bayesian")
    if args.labels is not None and args.n_components is None:
        args.n_components = 1
    if (args.n_components is None) == (args.select is None):
        raise ValueError(
            "fit takes --n-components K, or --select MIN:MAX for a search: one of them")
    if args.select is None and len(args.covariance_type) > 1:
        raise ValueError("several covariance types need --select MIN:MAX")
    if args.bayesian and args.select is not None:
        raise ValueError("--bayesian fits one model of --n-components K; not with --select")
    if args.weight_concentration_prior is not None and not args.bayesian:
        raise ValueError("--weight-concentration-prior needs --bayesian")
    most, option = ((args.n_components, "--n-components") if args.select is None
                    else (args.select[1], "--select's MAX"))
    data = open_data(args.data, args.columns)
    if not hasattr(data, "columns") and data.shape[0] < most:
        raise ValueError(f"{args.data} has {data.shape[0]} rows, fewer than {option} {most}")
    labels = None if args.labels is None else _open_labels(args.labels, data)
    common = dict(
        tol=args.tol, reg_covar=args.reg_covar, max_iter=args.max_iter, n_init=args.n_init,
        init_params=args.init_params, random_state=args.random_state,
        verbose=0 if args.quiet else args.verbose, verbose_interval=args.verbose_interval,
        split_every=args.split_every, checkpoint=args.checkpoint,
        cache=CACHE_CHOICES[args.cache], nan_policy=args.nan_policy,
    )
    if args.select is not None:
        model = GaussianMixtureIC(*args.select, covariance_type=args.covariance_type, **common)
    elif labels is not None:
        model = GaussianMixtureClassifier(args.n_components,
                                          covariance_type=args.covariance_type[0], **common)
    elif args.bayesian:
        kind, value = args.weight_concentration_prior or (WEIGHT_PRIOR_TYPES[0], None)
        model = BayesianGaussianMixture(
            n_components=args.n_components, covariance_type=args.covariance_type[0],
            weight_concentration_prior_type=kind, weight_concentration_prior=value, **common)
    else:
        model = GaussianMixture(args.n_components, covariance_type=args.covariance_type[0],
                                **common)
    with _connect(args):
        X = rows(data)
        tic = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, labels)
        seconds = time.perf_counter() - tic
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    model.save(args.output)
    if args.select is not None:
        print("\n".join(_fitted_table(model.results_)))
        print(f"best: {model.n_components_} {model.covariance_type_} components, "
              f"{model.criterion} {model.criterion_:.2f}")
    if labels is not None:
        print(f"fitted {len(model.classes_)} classes of {args.n_components} "
              f"{model.covariance_type} component(s) each in {model.n_iter_.max()} iterations "
              f"({seconds:.1f} s), converged: {bool(model.converged_.all())}; "
              f"saved to {args.output}")
        return model
    gm = model.best_estimator_ if args.select is not None else model
    print(f"fitted {gm.means_.shape[0]} {gm.covariance_type} components in {gm.n_iter_} "
          f"iterations ({seconds:.1f} s), converged: {gm.converged_}, "
          f"lower bound {gm.lower_bound_:.6f}; saved to {args.output}")
    return gm


def _open_labels(path, data):
    """The class labels of the rows of ``data``: a 1-D zarr array or ``.npy`` file, lazily."""
    if _is_parquet(path):
        raise ValueError(f"--labels: {path} is Parquet; give the labels as a zarr array or .npy")
    labels = open_data(path)
    if labels.ndim != 1:
        raise ValueError(f"--labels: {path} has shape {labels.shape}; it must be 1-dimensional")
    if not hasattr(data, "columns") and labels.shape[0] != data.shape[0]:
        raise ValueError(f"--labels: {path} has {labels.shape[0]} labels but DATA has "
                         f"{data.shape[0]} rows")
    return labels


def _predict(args):
    import dask.array as da

    from ._graph import compute

    _check_distinct(DATA=args.data, MODEL=args.model,
                    **{"--output": args.output, "--probabilities": args.probabilities})
    gm, data = _checked_model_and_data(args)
    with _connect(args):
        X = rows(data)
        stores = [da.to_zarr(gm.predict(X), args.output, overwrite=True, compute=False)]
        if args.probabilities:
            stores.append(da.to_zarr(gm.predict_proba(X), args.probabilities, overwrite=True,
                                     compute=False))
        compute(*stores)
    print(f"wrote labels of {X.shape[0]} rows to {args.output}"
          + (f" and probabilities to {args.probabilities}" if args.probabilities else ""))


def _score(args):
    import numpy as np

    gm, data = _checked_model_and_data(args)
    if hasattr(gm, "class_prior_"):
        raise ValueError(f"{args.model} is a classifier; score reports a mixture's "
                         "log-likelihood (use predict for the classes)")
    with _connect(args):
        score, n_samples = gm._mean_score(rows(data))  # the rows that count under nan_policy
    n_parameters = gm._n_parameters()
    bic = -2 * score * n_samples + n_parameters * np.log(n_samples)
    aic = -2 * score * n_samples + 2 * n_parameters
    print(f"mean log-likelihood {score:.6f}  BIC {bic:.2f}  AIC {aic:.2f}")


def _impute(args):
    import dask.array as da

    from ._graph import compute
    from ._imputer import fill

    _check_distinct(DATA=args.data, MODEL=args.model, **{"--output": args.output})
    gm, data = _checked_model_and_data(args)
    with _connect(args):
        X = rows(data)
        compute(da.to_zarr(fill(gm, X, args.sample, args.random_state), args.output,
                           overwrite=True, compute=False))
    how = "draws from the conditional mixture" if args.sample else "conditional expectations"
    print(f"wrote {X.shape[0]} rows with their NaN filled by {how} to {args.output}")



def _describe(value):
    """A hyperparameter value in one short piece of text (arrays by their shape)."""
    shape = getattr(value, "shape", None)
    return f"<array {shape}>" if shape is not None else repr(value)


def _info(args):
    import numpy as np

    from ._covariance import covariance_summary
    from ._io import load

    gm = load(args.model)
    if hasattr(gm, "class_prior_"):
        return _classifier_info(args.model, gm)
    n_components, n_features = gm.means_.shape
    print(f"daskgmm model {args.model}")
    print(f"  components {n_components}, features {n_features}, "
          f"covariance {gm.covariance_type}")
    print(f"  iterations {gm.n_iter_}, converged {gm.converged_}, "
          f"lower bound {gm.lower_bound_:.6f}")
    params = gm.get_params()
    print(textwrap.fill(", ".join(f"{name}={_describe(params[name])}" for name in sorted(params)),
                        width=INFO_WIDTH, initial_indent="  hyperparameters: ",
                        subsequent_indent="    ", break_on_hyphens=False))
    if hasattr(gm, "classes_"):
        print(f"  classes {list(gm.classes_)}")
    if hasattr(gm, "weight_concentration_"):
        effective = int(np.sum(gm.weights_ > EFFECTIVE_WEIGHT / n_components))
        print(f"  effective components {effective} (weight above {EFFECTIVE_WEIGHT:g} / "
              f"{n_components})")
    mean_variance, log_det = covariance_summary(gm.covariances_, gm.covariance_type,
                                                n_components, n_features)
    print("  component  weight  mean variance  log-det  mean")
    for k in range(n_components):
        print(f"  {k:>9}  {gm.weights_[k]:.4f}  {mean_variance[k]:13.6g}  {log_det[k]:7.3f}  "
              f"{np.array2string(gm.means_[k], precision=3)}")


def _classifier_info(path, classifier):
    """`daskgmm info` of a saved GaussianMixtureClassifier: per class, its prior and mixture."""
    import numpy as np

    from ._covariance import covariance_summary

    n_classes, n_components, n_features = classifier.means_.shape
    print(f"daskgmm classifier {path}")
    print(f"  classes {n_classes}, components per class {n_components}, features {n_features}, "
          f"covariance {classifier.covariance_type}")
    params = classifier.get_params()
    print(textwrap.fill(", ".join(f"{name}={_describe(params[name])}" for name in sorted(params)),
                        width=INFO_WIDTH, initial_indent="  hyperparameters: ",
                        subsequent_indent="    ", break_on_hyphens=False))
    for code, label in enumerate(classifier.classes_.tolist()):
        print(f"  class {label!r}: prior {classifier.class_prior_[code]:.4f}, iterations "
              f"{classifier.n_iter_[code]}, converged {bool(classifier.converged_[code])}")
        mean_variance, log_det = covariance_summary(
            classifier.covariances_[code], classifier.covariance_type, n_components, n_features)
        for k in range(n_components):
            print(f"    component {k}  weight {classifier.weights_[code, k]:.4f}  mean variance "
                  f"{mean_variance[k]:.6g}  log-det {log_det[k]:.3f}  "
                  f"mean {np.array2string(classifier.means_[code, k], precision=3)}")


def _cluster_config(args):
    from ._cluster import config_path

    with open(config_path(args.name), encoding="utf-8") as file:
        sys.stdout.write(file.read())


def _demo(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="daskgmm-demo-")
    data = os.path.join(workdir, "data.zarr")
    model = os.path.join(workdir, "model.zarr")
    print(f"daskgmm {__version__} demo in {workdir}")
    parser = _parser()
    _make_data(parser.parse_args([
        "make-data", data, "--n-samples", str(args.n_samples), "--n-features", "4",
        "--n-components", "4", "--chunk-rows", str(max(1, args.n_samples // 8)),
    ]))
    options = ["--cluster", args.cluster] if args.cluster else []
    gm = _fit(parser.parse_args([
        "fit", data, "--n-components", "4", "--random-state", "0", "--output", model,
        *options, *(["--quiet"] if args.quiet else []),
    ]))

    import numpy as np

    from .datasets import mixture_parameters

    weights, means, _ = mixture_parameters(4, 4, seed=0)
    order = [int(np.argmin(np.linalg.norm(gm.means_ - mean, axis=1))) for mean in means]
    error = np.abs(gm.means_[order] - means).max()
    print(f"largest error of a fitted mean against the true means: {error:.3f}")
    print(f"true weights {np.round(weights, 3)}, fitted {np.round(gm.weights_[order], 3)}")


# -- the parser ---------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except for required options (they have none)."""

    def _get_help_string(self, action):
        if action.required:
            return action.help
        return super()._get_help_string(action)


def _command(commands, name, run, help, parents=()):
    parser = commands.add_parser(name, help=help, description=help, parents=list(parents),
                                 formatter_class=_HelpFormatter)
    parser.set_defaults(run=run)
    return parser


def _option_groups():
    """Parent parsers of the options that several commands share.

    Returns
    -------
    quiet, cluster, columns : argparse.ArgumentParser
    """
    quiet, cluster, columns = (argparse.ArgumentParser(add_help=False) for _ in range(3))
    quiet.add_argument("--quiet", action="store_true",
                       help="no progress bar and no per-iteration lines (bars are shown only "
                            "on a terminal anyway)")
    cluster.add_argument("--cluster", default=None, metavar="CONFIG",
                         help="cluster configuration: a YAML file, or the name of a shipped "
                              "one (local, scheduler, slurm, pbs, kubernetes; see `daskgmm "
                              "cluster-config`); without it, a LocalCluster sized to this machine")
    columns.add_argument("--columns", type=_columns, default=None, metavar="A,B,C",
                         help="features to use when DATA is Parquet (without it, every column)")
    return quiet, cluster, columns


def _parser():
    parser = argparse.ArgumentParser(prog="daskgmm", description=__doc__.splitlines()[0],
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"daskgmm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet, cluster, columns = _option_groups()
    data_options = [quiet, cluster, columns]
    data_help = "a zarr array store, a .npy file, or a Parquet file or folder"

    make = _command(commands, "make-data", _make_data,
                    "write a synthetic Gaussian mixture to a zarr store", [quiet])
    make.add_argument("output", metavar="OUTPUT", help="zarr store to write (replaced)")
    make.add_argument("--n-samples", type=_number(int, 1), default=1_000_000, help="rows")
    make.add_argument("--n-features", type=_number(int, 1), default=16, help="columns")
    make.add_argument("--n-components", type=_number(int, 1), default=8,
                      help="Gaussians in the mixture")
    make.add_argument("--chunk-rows", type=_number(int, 1), default=250_000,
                      help="rows per zarr chunk")
    make.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0,
                      help="seed of the parameters and the rows")
    make.add_argument("--labels", default=None, metavar="PATH",
                      help="also write each row's true component to this zarr store")

    fit = _command(commands, "fit", _fit, "fit a Gaussian mixture to DATA and save the model",
                   data_options)
    fit.add_argument("data", type=_existing, metavar="DATA", help=data_help)
    fit.add_argument("--n-components", type=_number(int, 1), default=None,
                     help="number of Gaussians (this or --select is required; with "
                          "--labels, per class, default 1)")
    fit.add_argument("--select", type=_select, default=None, metavar="MIN:MAX",
                     help="search the numbers of Gaussians MIN..MAX (and the covariance "
                          "types given) in the same passes; save the best by BIC")
    fit.add_argument("--output", required=True, metavar="MODEL",
                     help="model store to write, read by `daskgmm.load` (required)")
    fit.add_argument("--covariance-type", type=_covariance_types, default="full",
                     help="form of each component's covariance: full, tied, diag or "
                          "spherical; with --select also 'all' or several, comma separated")
    fit.add_argument("--labels", type=_existing, default=None, metavar="LABELS",
                     help="class labels of DATA's rows (a 1-D zarr array or .npy): fit a "
                          "GaussianMixtureClassifier, a mixture of --n-components (default 1: "
                          "quadratic discriminant analysis) per class")
    fit.add_argument("--bayesian", action="store_true",
                     help="fit a BayesianGaussianMixture: the prior switches unneeded "
                          "components of --n-components off")
    fit.add_argument("--weight-concentration-prior", type=_weight_prior, default=None,
                     metavar="TYPE[:VALUE]",
                     help="with --bayesian: dirichlet_process (default) or "
                          "dirichlet_distribution, and the prior's value (default 1 / K)")
    fit.add_argument("--max-iter", type=_number(int, 0), default=100,
                     help="most EM iterations (passes over DATA)")
    fit.add_argument("--tol", type=_number(float, 0), default=1e-3,
                     help="stop when the mean log-likelihood changes by less")
    fit.add_argument("--reg-covar", type=_number(float, 0), default=1e-6,
                     help="added to every covariance diagonal")
    fit.add_argument("--n-init", type=_number(int, 1), default=1,
                     help="initialisations, all advanced in the same passes; the best is kept")
    fit.add_argument("--init-params", default="kmeans", choices=INIT_PARAMS,
                     help="how the initial parameters are chosen")
    fit.add_argument("--random-state", type=_number(int, 0, MAX_SEED), default=None,
                     help="seed of the initialisation (without it, each run starts differently)")
    fit.add_argument("--checkpoint", default=None, metavar="PATH",
                     help="save the state after every iteration; a later fit with the same "
                          "path resumes from it")
    fit.add_argument("--cache", default="auto", choices=list(CACHE_CHOICES),
                     help="persist DATA on the workers: auto (when it fits in half their "
                          "memory), true, or false (stream it every iteration)")
    fit.add_argument("--split-every", type=_number(int, 2), default=None,
                     help="fan-in of the tree reduction (without it, dask's default)")
    fit.add_argument("--verbose", type=_number(int, 0, 2), default=2,
                     help="0: silent, 1: initialisation and convergence, 2: also every "
                          "--verbose-interval iterations")
    fit.add_argument("--verbose-interval", type=_number(int, 1), default=1,
                     help="iterations between two progress lines at --verbose 2")
    fit.add_argument("--nan-policy", default="raise", choices=NAN_POLICIES,
                     help="NaN in DATA: an error, rows left out, or values missing at random "
                          "(EM on the observed entries; not with --bayesian)")

    predict = _command(commands, "predict", _predict,
                       "write the component of every row of DATA (and probabilities) to zarr",
                       data_options)
    predict.add_argument("model", type=_existing, metavar="MODEL", help="a saved model")
    predict.add_argument("data", type=_existing, metavar="DATA", help=data_help)
    predict.add_argument("--output", required=True, metavar="PATH",
                         help="zarr store for the labels (required)")
    predict.add_argument("--probabilities", default=None, metavar="PATH",
                         help="zarr store for the per-component probabilities")

    score = _command(commands, "score", _score, "mean log-likelihood, BIC and AIC of DATA",
                     data_options)
    score.add_argument("model", type=_existing, metavar="MODEL", help="a saved model")
    score.add_argument("data", type=_existing, metavar="DATA", help=data_help)

    impute = _command(commands, "impute", _impute,
                      "fill the NaN of DATA from a saved model, chunk by chunk, into zarr",
                      data_options)
    impute.add_argument("model", type=_existing, metavar="MODEL", help="a saved model")
    impute.add_argument("data", type=_existing, metavar="DATA", help=data_help)
    impute.add_argument("--output", required=True, metavar="OUT.zarr",
                        help="zarr store for the filled rows (required; replaced)")
    impute.add_argument("--sample", action="store_true",
                        help="draw each row's missing values from the conditional mixture "
                             "instead of taking its mean")
    impute.add_argument("--random-state", type=_number(int, 0, MAX_SEED), default=None,
                        help="seed of --sample's draws")

    info = _command(commands, "info", _info,
                    "describe a saved model: hyperparameters, convergence, components")
    info.add_argument("model", type=_existing, metavar="MODEL", help="a saved model")

    config = _command(commands, "cluster-config", _cluster_config,
                      "print a shipped cluster configuration (to copy and edit)")
    config.add_argument("name", metavar="NAME",
                        help="a shipped configuration (an unknown name lists them)")

    demo = _command(commands, "demo", _demo,
                    "make data, fit it on a local Dask cluster, compare with the truth",
                    [quiet, cluster])
    demo.add_argument("--n-samples", type=_number(int, 8), default=200_000, help="rows")
    demo.add_argument("--workdir", default=None,
                      help="folder for the data and the model (without it, a new temporary one)")
    return parser


def _run(args):
    """Run the parsed command; a progress bar is shown on a terminal unless --quiet."""
    if hasattr(args, "cluster"):
        _check_cluster(args)
    if not hasattr(args, "quiet"):
        return args.run(args)
    from ._progress import show_progress

    with show_progress(not args.quiet and sys.stderr.isatty()):
        return args.run(args)


def main(argv=None):
    """Entry point of the ``daskgmm`` command.

    Returns
    -------
    int
        0 on success, 2 on an error (reported in one line on stderr), 130
        when interrupted by Ctrl-C.
    """
    command = "daskgmm"
    try:
        args = _parser().parse_args(argv)
        command = f"daskgmm {args.command}"
        _run(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout left (`daskgmm info MODEL | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (ValueError, OSError, RuntimeError, ImportError) as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
