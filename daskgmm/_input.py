"""Input types, at the edge: what ``X`` may be, and results given back in its form.

`validate` turns any accepted ``X`` into a NumPy array (data in memory) or a
Dask array (data that stays where it is), after scikit-learn's checks of
``n_features_in_`` and ``feature_names_in_``, and returns with it the
function that puts per-row results back in ``X``'s form:

- NumPy, pandas, lists: scikit-learn's ``validate_data``; results are NumPy.
- Dask and zarr arrays: checked without computing; results are lazy Dask arrays.
- Dask DataFrames: numeric columns only; partitions become row chunks (their
  lengths are counted on the workers); columns are feature names, as pandas';
  results are lazy Dask arrays chunked like the partitions.
- xarray DataArrays, (samples, features), NumPy- or Dask-backed: results are
  DataArrays over the sample dimension and its coordinates.
- Paths and zarr groups: a ValueError saying what to pass instead.

xarray and dask.dataframe are optional: an object of theirs exists only if
its module was imported, so they are looked up in ``sys.modules``.
"""

import os
import sys
from functools import partial

import dask
import dask.array as da
import numpy as np
import zarr
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_non_negative, column_or_1d, validate_data

from . import _graph, _missing

# The floating-point types kept as they are; other numbers become float64.
DTYPES = [np.float64, np.float32]


def validate(estimator, X, reset, known_rows=False):
    """``X`` checked as scikit-learn's ``validate_data`` would, whatever its type.

    Parameters
    ----------
    estimator : GaussianMixture
        Gets (``reset=True``) or is checked against (``reset=False``)
        ``n_features_in_`` and ``feature_names_in_``.
    X : array-like, Dask array, zarr array, Dask DataFrame or xarray DataArray
    reset : bool
        True at fit (at least 2 samples then), False at predict.
    known_rows : bool
        Count the rows of a Dask array's row chunks of unknown size (for
        example ``X[mask]``) on the workers; else they may stay unknown.

    Returns
    -------
    X : ndarray or dask.array.Array of shape (n_samples, n_features)
        Dask arrays have all their row chunk sizes known with ``known_rows``.
    wrap : callable
        Gives a result of shape (n_samples,) or (n_samples, k) back in the
        form of ``X`` (a DataArray for a DataArray, else as it is).
    """
    X, wrap = _unwrapped(X)
    frame = _dask_frame(X)
    if not isinstance(X, da.Array) and frame is None:
        if dask.is_dask_collection(X):
            raise ValueError(
                f"X is a {type(X).__module__}.{type(X).__name__}; pass a Dask array or a "
                "Dask DataFrame of shape (n_samples, n_features)."
            )
        X = validate_data(
            estimator, X, dtype=DTYPES, reset=reset, ensure_min_samples=2 if reset else 1,
            ensure_all_finite=False,
        )
        _missing.check_values(X, nan_policy(estimator))
        return X, wrap
    name = type(estimator).__name__
    if frame is not None:
        _check_numeric_columns(X)
        validate_data(estimator, X._meta, reset=reset, skip_check_array=True)
        X = _partitions_as_chunks(X)
        _check_dask_array(X, name)
    else:
        _check_dask_array(X, name)
        validate_data(estimator, np.empty((0, X.shape[1])), reset=reset, skip_check_array=True)
        if known_rows:
            X = _with_row_lengths(X)
    if reset and X.shape[0] < 2:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) "
            f"while a minimum of 2 is required by {name}."
        )
    return X, wrap


def nan_policy(estimator):
    """The estimator's ``nan_policy`` (``"raise"`` for estimators without one)."""
    return getattr(estimator, "nan_policy", "raise")


def _as_is(result):
    return result


def _unwrapped(X):
    """The array inside ``X`` and the function giving results back in X's form."""
    if isinstance(X, (str, os.PathLike)):
        raise ValueError(
            f"X is a path ({os.fspath(X)!r}), not data; open it first: "
            "zarr.open_array(path) or dask.array.from_zarr(path) for a zarr array, "
            "dask.dataframe.read_parquet(path) for Parquet, numpy.load(path) for .npy."
        )
    if isinstance(X, zarr.Group):
        arrays = sorted(X.array_keys())
        held = (f"it holds the arrays {arrays}: pass one, e.g. group[{arrays[0]!r}]"
                if arrays else "it holds no arrays: pass a zarr array")
        raise ValueError(f"X is a zarr group, not an array; {held}.")
    if isinstance(X, zarr.Array):
        return da.from_zarr(X), _as_is
    xarray = sys.modules.get("xarray")
    if xarray is not None and isinstance(X, xarray.DataArray):
        return _from_data_array(X, xarray)
    return X, _as_is


def _from_data_array(X, xarray):
    if X.ndim != 2:
        raise ValueError(
            f"X is a DataArray with dimensions {X.dims}; it must have two, "
            "(samples, features): select or stack the others, e.g. X.stack(...) or "
            "X.transpose(sample_dim, feature_dim)."
        )
    sample_dim = X.dims[0]
    coords = {
        name: coord.variable
        for name, coord in X.coords.items()
        if set(coord.dims) <= {sample_dim}
    }

    def wrap(result):
        dims = (sample_dim,) if result.ndim == 1 else (sample_dim, "component")
        # Through a Variable: a DataArray would take a Dask array's key as its name.
        return xarray.DataArray(xarray.Variable(dims, result), coords=coords)

    return (X.data if isinstance(X.data, da.Array) else X.values), wrap


def _dask_frame(X):
    """``X`` if it is a Dask DataFrame, else None."""
    dataframe = sys.modules.get("dask.dataframe")
    if dataframe is not None and isinstance(X, dataframe.DataFrame):
        return X
    return None


def _check_numeric_columns(frame):
    from pandas.api.types import is_numeric_dtype

    wrong = {str(column): str(dtype) for column, dtype in frame.dtypes.items()
             if not is_numeric_dtype(dtype)}
    if wrong:
        raise ValueError(
            f"X has non-numeric columns {wrong} (column: dtype); the features must be "
            "numbers: select the numeric columns or encode the others first."
        )


def vector(v):
    """``v`` (``y`` or ``sample_weight``) as it is, or a Dask Series as a Dask array.

    The array has one chunk per partition, of known size; a Dask array's
    unknown chunk sizes (``w[mask]``) are counted on the workers.
    """
    dataframe = sys.modules.get("dask.dataframe")
    if dataframe is not None and isinstance(v, dataframe.Series):
        return v.to_dask_array(lengths=_partition_lengths(v))
    if isinstance(v, da.Array) and v.ndim == 1 and any(np.isnan(n) for n in v.chunks[0]):
        return _with_row_lengths(v[:, None])[:, 0]
    return v


def _partition_lengths(collection):
    """The partitions' lengths, counted where they are (on the workers of a cluster);
    only the counts come to the client."""
    (lengths,) = _graph.compute(collection.map_partitions(len))
    return tuple(int(n) for n in lengths)


def _block_rows(block):
    return np.array([[block.shape[0]]])


def _with_row_lengths(X):
    """``X`` with its row chunks' lengths known: those unknown (``X[mask]``) are
    counted where the chunks are (on the workers of a cluster), and only the
    counts come to the client. ``X`` itself is not modified."""
    if not any(np.isnan(n) for n in X.chunks[0]):
        return X
    first_column = X.blocks[:, 0]
    counts = first_column.map_blocks(_block_rows, chunks=((1,) * first_column.numblocks[0], (1,)),
                                     dtype=np.int64, meta=np.empty((0, 0), np.int64))
    (lengths,) = _graph.compute(counts)
    return da.Array(X.dask, X.name, (tuple(int(n) for n in lengths[:, 0]), X.chunks[1]),
                    meta=X._meta)


def _partitions_as_chunks(frame):
    """The frame's rows as a Dask array with one row chunk per partition."""
    float32 = all(dtype == np.float32 for dtype in frame.dtypes)
    return frame.astype(np.float32 if float32 else np.float64).to_dask_array(
        lengths=_partition_lengths(frame)
    )


def _check_dask_array(X, estimator_name):
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead. {estimator_name} "
            "expects data of shape (n_samples, n_features)."
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers; got dtype {X.dtype}.")
    if X.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 "
            f"is required by {estimator_name}."
        )


def encode_labels(y, data):
    """``classes_`` and the (Dask) class index of every row of ``data``.

    ``y`` holds class labels, NumPy or Dask (see `vector`); anything else
    (continuous, wrong length, not 1-dimensional) is a ValueError.
    """
    if isinstance(y, da.Array):
        if y.ndim != 1:
            raise ValueError(f"y must be 1-dimensional; got shape {y.shape}.")
        (classes,) = _graph.compute(da.unique(y), scheduler=data.scheduler)
        target = type_of_target(classes, raise_unknown=True)
    else:
        y = column_or_1d(y, warn=True)
        classes = np.unique(y)
        target = type_of_target(y, raise_unknown=True)
    if y.shape[0] != data.n_samples:
        raise ValueError(
            f"y has {y.shape[0]} samples but X has {data.n_samples}; they must match."
        )
    if target not in ("binary", "multiclass"):
        raise ValueError(
            f"y must hold class labels (binary or multiclass); got a {target!r} target."
        )
    if isinstance(y, da.Array):
        return classes, y.map_blocks(partial(np.searchsorted, classes), dtype=np.intp)
    return classes, da.from_array(np.searchsorted(classes, y), chunks=(data.X.chunks[0],))


def _checked_weights(sample_weight):
    """``sample_weight``, after scikit-learn's checks: finite and non-negative."""
    assert_all_finite(sample_weight, input_name="sample_weight")
    check_non_negative(sample_weight, "`sample_weight`")
    return sample_weight


def check_sample_weight(sample_weight, n_samples):
    """Validate weights; in-memory weights are checked here, Dask ones per block.

    A Dask block is checked when it is computed: once if the data is cached,
    else in each pass, next to its read.
    """
    if isinstance(sample_weight, da.Array):
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected ({n_samples},)!"
            )
        return sample_weight.astype(np.float64).map_blocks(_checked_weights, dtype=np.float64)
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.ndim == 0:
        sample_weight = np.full(n_samples, float(sample_weight))
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {sample_weight.shape}, expected ({n_samples},)!"
        )
    _checked_weights(sample_weight)
    if not sample_weight.sum() > 0:
        raise ValueError("sample_weight must not sum to zero.")
    return sample_weight


def float_dtype(X):
    """The dtype of results for X, as scikit-learn's: float32 for float32 X, else float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def apply_rows(estimator, X, block_fn, n_columns=None, dtype=None, wrap=True):
    """Run ``block_fn`` on X (checked against the fitted ``estimator``): lazily per
    row chunk for Dask, at once for NumPy.

    ``dtype`` is that of the result (None: ``float_dtype(X)``). With ``wrap``, the
    result comes back in X's form (a DataArray for a DataArray).
    """
    X, wrapper = validate(estimator, X, reset=False)
    if isinstance(X, da.Array):
        dtype = float_dtype(X) if dtype is None else dtype
        result = _graph.map_rows(X.rechunk({1: -1}), block_fn, n_columns, dtype)
    else:
        result = block_fn(X)
    return wrapper(result) if wrap else result


def fit_data(estimator, X, sample_weight, n_blocks=None, reset=True):
    """``X`` (and weights) validated for fit: ``(RowData, X in memory or None)``.

    With ``n_blocks`` (incremental EM), in-memory input is cut into the row
    chunks of ``_graph.in_memory_chunks``; with ``reset=False`` (later
    ``partial_fit`` calls) X must have the fitted features.
    """
    X, _ = validate(estimator, X, reset=reset, known_rows=True)
    if sample_weight is not None:
        sample_weight = check_sample_weight(vector(sample_weight), X.shape[0])
    policy = nan_policy(estimator)
    if isinstance(X, da.Array):
        return _graph.from_dask(X, sample_weight)._replace(nan_policy=policy), None
    row_chunks = None if n_blocks is None else _graph.in_memory_chunks(len(X), n_blocks)
    return _graph.from_numpy(X, sample_weight, row_chunks)._replace(nan_policy=policy), X
