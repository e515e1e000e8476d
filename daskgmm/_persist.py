"""Model files: fitted estimators (and checkpoints) as small, checksummed zarr v3 groups.

A store is a zarr v3 group on the local file system. Its attributes carry
the format markers ``{"format": "daskgmm", "kind": ..., "format_version": 1}``,
the caller's attributes, a manifest ``"arrays"`` giving the dtype and shape of
every array, and a ``"checksum"`` (SHA-256 over the attributes and the array
bytes), so that any corruption is found on reading. Every array is one
uncompressed chunk; fixed-width strings are kept as their code points
(``uint32`` for unicode, ``uint8`` for bytes, along a trailing axis of the
string width), which zarr v3 specifies, where its string types are not.
Object arrays of labels are stored as strings (or numbers) and listed in the
``"object_arrays"`` attribute, so loading restores object dtype. Nothing is
ever unpickled.

A store is written into a sibling directory and renamed into place, so the
final name holds either the old store or the new one, never part of one.
"""

import glob
import hashlib
import json
import math
import numbers
import os
import re
import shutil
import uuid
from typing import NamedTuple

import numpy as np
import zarr
from sklearn.utils.validation import check_is_fitted
from zarr.storage import LocalStore

from ._covariance import m2_shape
from ._covariance_types import COVARIANCE_TYPES

FORMAT = "daskgmm"
FORMAT_VERSION = 1

# dtype kinds a store may hold: booleans, integers, floats, complex, bytes, unicode.
STORABLE_KINDS = "biufcSU"

# Fixed-width string kinds: the integer type of one code point.
_CODE_POINT = {"U": np.dtype("<u4"), "S": np.dtype("u1")}

# The estimator classes a model store may hold, by class name (see `register`).
ESTIMATORS = {}

# Names of arrays (directories inside the group).
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

MODEL_KIND = "model"
MODEL_PARAMETER_ARRAYS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
)
MODEL_OPTIONAL_ARRAYS = ("classes_", "feature_names_in_")


class SavedAttributes(NamedTuple):
    """The fitted attributes an estimator class saves (its ``_saved_attributes``).

    ``arrays`` bit for bit, ``lists`` (of floats) as float64 arrays,
    ``scalars`` (names in ``SCALAR_TYPES``) as typed JSON attributes;
    ``family``, what the model family adds (``_family.Family.fitted_arrays``),
    as arrays, a scalar as a 0-d array coming back as a scalar of its type,
    a tuple (a Dirichlet process's ``weight_concentration_``) as the array
    of its rows coming back as a tuple. Every estimator also saves ``n_features_in_``,
    ``classes_`` and ``feature_names_in_`` where it has them.
    """

    arrays: tuple
    lists: tuple = ()
    scalars: tuple = ()
    family: tuple = ()


# A fitted mixture's (GaussianMixture, BayesianGaussianMixture).
MIXTURE_ATTRIBUTES = SavedAttributes(MODEL_PARAMETER_ARRAYS, ("lower_bounds_",),
                                     ("converged_", "n_iter_", "lower_bound_"))
SCALAR_TYPES = {"converged_": bool, "n_iter_": int, "lower_bound_": float, "n_features_in_": int}


# ---------------------------------------------------------------- JSON values


def encode_json(value):
    """JSON form of a value, with non-finite floats and arrays made explicit.

    Parameters
    ----------
    value : None, bool, int, float, str, path, ndarray, or a list or tuple of them
        Non-finite floats become ``{"float": "inf"}`` (or ``"-inf"``,
        ``"nan"``), arrays ``{"ndarray": nested lists, "dtype": dtype string}``,
        tuples lists and paths strings.

    Returns
    -------
    object
        A value that ``json.dumps(..., allow_nan=False)`` accepts.

    Raises
    ------
    TypeError
        If the value (or an element of it) has no JSON form.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"cannot store an array of dtype {value.dtype} as JSON")
        return {"ndarray": encode_json(value.tolist()), "dtype": value.dtype.str}
    if isinstance(value, (list, tuple)):
        return [encode_json(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def decode_json(value):
    """Inverse of :func:`encode_json`.

    Parameters
    ----------
    value : object
        A value parsed from JSON.

    Returns
    -------
    object
        The value with ``{"float": ...}`` and ``{"ndarray": ...}`` forms restored.

    Raises
    ------
    ValueError
        If the value holds a mapping of neither form, or an array of a dtype
        that is not stored (object dtype included).
    """
    if isinstance(value, list):
        return [decode_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"float"} and value["float"] in ("inf", "-inf", "nan"):
        return float(value["float"])
    if set(value) == {"ndarray", "dtype"}:
        dtype = _storable_dtype(value["dtype"])
        return np.array(decode_json(value["ndarray"]), dtype=dtype)
    raise ValueError(f"unexpected JSON mapping {value!r}")


def _storable_dtype(declared):
    """The NumPy dtype a dtype string names, if a store may hold it."""
    try:
        dtype = np.dtype(declared)
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid dtype {declared!r}") from error
    if dtype.kind == "O":
        raise ValueError("object dtype is refused: daskgmm never unpickles")
    if dtype.kind not in STORABLE_KINDS:
        raise ValueError(f"dtype {dtype} cannot be stored (kinds {STORABLE_KINDS!r} only)")
    return dtype


def _canonical_json(attrs):
    return json.dumps(attrs, sort_keys=True, allow_nan=False, separators=(",", ":"))


# ------------------------------------------------------------- array layout


def _stored_layout(dtype, shape):
    """dtype and shape of an array on disk: strings become their code points."""
    if dtype.kind in _CODE_POINT:
        code_point = _CODE_POINT[dtype.kind]
        return code_point, (*shape, dtype.itemsize // code_point.itemsize)
    return dtype, tuple(shape)


def _chunk_shape(shape):
    """One chunk for the whole array (zarr needs chunk sides of at least 1)."""
    return tuple(max(1, side) for side in shape)


def _little_endian(array):
    array = np.asarray(array)
    # ascontiguousarray makes a 0-d array 1-d: keep the shape as given.
    contiguous = np.ascontiguousarray(array).reshape(array.shape)
    return contiguous.astype(array.dtype.newbyteorder("<"), copy=False)


def _to_stored(array):
    dtype, shape = _stored_layout(array.dtype, array.shape)
    return array.view(dtype).reshape(shape)


def _from_stored(stored, dtype, shape):
    return np.ascontiguousarray(stored).view(dtype).reshape(shape)


def _checksum(arrays, attrs):
    """SHA-256 over the canonical JSON of ``attrs`` and the bytes of every array."""
    digest = hashlib.sha256(_canonical_json(attrs).encode())
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


# -------------------------------------------------------------------- write


def write_group(path, arrays, attrs):
    """Write arrays and attributes as a zarr v3 group at ``path``, atomically.

    The group is written into a sibling directory ``{path}.tmp-{uuid}``, its
    files are synced to disk, and it is renamed to ``path``. An existing
    store at ``path`` is moved aside, replaced, and then deleted; if the
    rename fails it is moved back. ``path`` may be missing, an empty
    directory, or a daskgmm store; anything else is refused rather than
    deleted.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory of the store.
    arrays : dict of str to ndarray
        Arrays to store, by name. Dtypes of kinds ``b``, ``i``, ``u``, ``f``,
        ``c``, ``S`` and ``U`` only.
    attrs : dict
        JSON-serialisable attributes; must hold ``"kind"``. ``"format"``,
        ``"format_version"``, ``"arrays"`` (the manifest) and ``"checksum"``
        are set here.

    Raises
    ------
    ValueError
        If ``attrs`` has no ``"kind"`` or is not JSON-serialisable, an array
        name or dtype cannot be stored, or ``path`` holds something other
        than a daskgmm store.
    """
    path = _local_path(path)
    arrays = {name: _little_endian(array) for name, array in arrays.items()}
    stored_attrs = _stored_attributes(arrays, attrs)
    recover(path)
    _check_replaceable(path)
    staging = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        _write_store(staging, arrays, stored_attrs)
        _sync_tree(staging)
        _swap_in(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _local_path(path):
    """Absolute path without a trailing separator, so siblings are siblings."""
    return os.path.abspath(os.fspath(path))


def _stored_attributes(arrays, attrs):
    """The caller's attrs plus format markers, manifest and checksum, as JSON."""
    if "kind" not in attrs:
        raise ValueError("attrs must hold the store's 'kind'.")
    manifest = {}
    for name, array in arrays.items():
        if not isinstance(name, str) or not _ARRAY_NAME.fullmatch(name):
            raise ValueError(f"invalid array name {name!r}.")
        _storable_dtype(array.dtype)
        manifest[name] = {"dtype": array.dtype.str, "shape": list(array.shape)}
    stored = {**attrs, "format": FORMAT, "format_version": FORMAT_VERSION, "arrays": manifest}
    try:
        stored = json.loads(_canonical_json(stored))
    except (TypeError, ValueError) as error:
        raise ValueError(f"attrs are not JSON-serialisable: {error}") from error
    return {**stored, "checksum": _checksum(arrays, stored)}


def _check_replaceable(path):
    """Refuse to replace anything but nothing, an empty directory or a daskgmm store."""
    if not os.path.lexists(path) or (os.path.isdir(path) and not os.listdir(path)):
        return
    if not _is_daskgmm_store(path):
        raise ValueError(
            f"{path} exists and is not a daskgmm store; refusing to replace it. "
            "Remove it or choose another path."
        )


def _is_daskgmm_store(path):
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as file:
            metadata = json.load(file)
        return metadata["attributes"]["format"] == FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_store(directory, arrays, attrs):
    group = zarr.open_group(LocalStore(directory), mode="w-", zarr_format=3, attributes=attrs)
    for name, array in arrays.items():
        _write_array(group, name, array)


def _write_array(group, name, array):
    """One uncompressed single-chunk zarr array holding ``array``."""
    stored = _to_stored(array)
    group.create_array(name, data=stored, chunks=_chunk_shape(stored.shape), compressors=None)


def _sync_tree(directory):
    """fsync every file and directory under ``directory``, so the rename is durable."""
    for root, _, files in os.walk(directory):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def recover(path):
    """Put back the previous store if a crash came between the two renames of a save.

    A save moves the old store to ``{path}.old-*`` and then renames the new
    one in; killed in between, it leaves no store at ``path``. The newest
    ``.old-*`` sibling is then the last complete store. Only a writer
    recovers (`write_group`): a reader that moved stores could break a save
    running in another process.
    """
    path = _local_path(path)
    last = stored(path)
    if last is not None and last != path:
        os.replace(last, path)


def stored(path):
    """Where the last complete store saved at ``path`` lies, or None if nowhere.

    ``path`` itself, or, between the two renames of a save (or after a crash
    there), its newest ``.old-*`` sibling. Nothing is moved.
    """
    path = _local_path(path)
    if os.path.lexists(path):
        return path
    previous = glob.glob(glob.escape(path) + ".old-*")
    return max(previous, key=os.path.getmtime) if previous else None


def _swap_in(staging, path):
    """Rename ``staging`` to ``path``; an old store there is deleted only afterwards."""
    aside = None
    if os.path.lexists(path):
        aside = f"{path}.old-{uuid.uuid4().hex}"
        os.replace(path, aside)
    try:
        os.replace(staging, path)
    except BaseException:
        if aside is not None:
            os.replace(aside, path)
        raise
    _fsync(os.path.dirname(path))
    if aside is not None:
        shutil.rmtree(aside)


# --------------------------------------------------------------------- read


def read_group(path, expected_kind):
    """Read and verify a store written by :func:`write_group`.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory of the store.
    expected_kind : str
        The ``"kind"`` the store must declare (``"model"``, ...).

    Returns
    -------
    arrays : dict of str to ndarray
        Every array of the manifest, with its declared dtype and shape.
    attrs : dict
        The attributes as stored: the caller's, the format markers, the
        manifest ``"arrays"`` and the ``"checksum"``.

    Raises
    ------
    ValueError
        If ``path`` is missing, not a zarr v3 group, not a daskgmm store, of
        another kind or format version, declares an object or unsupported
        dtype, misses an array, or fails its checksum (truncated or altered
        files). The message names the problem and ``path``.
    """
    path = stored(path) or _local_path(path)
    group = _open_group(path)
    attrs = dict(group.attrs)
    _check_format(attrs, path, expected_kind)
    manifest = _manifest(attrs, path)
    arrays = {name: _read_array(group, name, *layout, path) for name, layout in manifest.items()}
    unchecked = {key: value for key, value in attrs.items() if key != "checksum"}
    if attrs.get("checksum") != _checksum(arrays, unchecked):
        raise ValueError(f"{path} is corrupt: its checksum does not match its contents.")
    return arrays, attrs


def _open_group(path):
    if not os.path.exists(path):
        raise ValueError(f"no daskgmm store at {path}: it does not exist.")
    if not os.path.isdir(path):
        raise ValueError(f"{path} is not a daskgmm store: it is not a directory.")
    try:
        return zarr.open_group(
            LocalStore(path, read_only=True), mode="r", zarr_format=3, use_consolidated=False
        )
    except Exception as error:  # zarr raises many types for unreadable metadata
        raise ValueError(f"{path} is not a readable zarr v3 group: {error}") from error


def _check_format(attrs, path, expected_kind):
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is a zarr group but not a daskgmm store.")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {attrs.get('format_version')!r}; "
            f"this daskgmm reads version {FORMAT_VERSION}."
        )
    if attrs.get("kind") != expected_kind:
        raise ValueError(f"{path} holds a daskgmm {attrs.get('kind')!r}, not a {expected_kind!r}.")


def _manifest(attrs, path):
    """``{name: (dtype, shape)}`` from the ``"arrays"`` attribute, validated."""
    declared = attrs.get("arrays")
    if not isinstance(declared, dict):
        raise ValueError(f"{path} has no valid array manifest.")
    manifest = {}
    for name, entry in declared.items():
        if not _ARRAY_NAME.fullmatch(name) or not isinstance(entry, dict):
            raise ValueError(f"{path} declares an invalid array {name!r}.")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in shape
        ):
            raise ValueError(f"{path} declares an invalid shape for array {name!r}.")
        try:
            dtype = _storable_dtype(entry.get("dtype"))
        except ValueError as error:
            raise ValueError(f"{path}, array {name!r}: {error}") from error
        manifest[name] = (dtype, tuple(shape))
    return manifest


def _read_array(group, name, dtype, shape, path):
    """The array ``name`` as declared, after checking its zarr metadata."""
    stored_dtype, stored_shape = _stored_layout(dtype, shape)
    try:
        node = group.get(name)
    except Exception as error:  # zarr raises many types for corrupt metadata
        raise ValueError(f"{path}, array {name!r} is unreadable: {error}") from error
    if not isinstance(node, zarr.Array):
        raise ValueError(f"{path} misses array {name!r}.")
    found = (node.dtype, node.shape, node.chunks)
    if found != (stored_dtype, stored_shape, _chunk_shape(stored_shape)):
        raise ValueError(
            f"{path}, array {name!r}: found dtype {node.dtype}, shape {node.shape}, "
            f"chunks {node.chunks}; expected {stored_dtype}, {stored_shape}, one chunk."
        )
    try:
        stored = np.asarray(node[...])
    except Exception as error:  # zarr raises many types for corrupt chunks
        raise ValueError(f"{path}, array {name!r} is unreadable: {error}") from error
    return _from_stored(stored, dtype, shape)


# -------------------------------------------------------------------- model


def save(estimator, path):
    """Save a fitted mixture as a model store at ``path`` (read it with `read_model`).

    Parameters
    ----------
    estimator : a registered daskgmm estimator
        A fitted estimator; its class's ``_saved_attributes`` say what is saved.
    path : str or os.PathLike
        Local directory; an existing model there is replaced atomically.

    Raises
    ------
    ValueError
        If the estimator is not fitted (``NotFittedError``) or ``path``
        holds something other than a daskgmm store.
    """
    from . import __version__

    check_is_fitted(estimator)
    saved = estimator._saved_attributes
    arrays = {name: np.asarray(getattr(estimator, name)) for name in saved.arrays}
    arrays.update({name: np.asarray(getattr(estimator, name), dtype=np.float64)
                   for name in saved.lists})
    family = {name: getattr(estimator, name) for name in saved.family}
    arrays.update({name: np.asarray(value) for name, value in family.items()})
    scalars = {name: value for name, value in family.items() if np.ndim(value) == 0}
    scalars.update({name: getattr(estimator, name) for name in saved.scalars
                    if SCALAR_TYPES[name] is float})
    labels = {
        name: np.asarray(getattr(estimator, name))
        for name in MODEL_OPTIONAL_ARRAYS
        if hasattr(estimator, name)
    }
    arrays.update({name: _label_array(name, array) for name, array in labels.items()})
    attrs = {
        "kind": MODEL_KIND,
        "estimator": type(estimator).__name__,
        "object_arrays": [name for name, array in labels.items() if array.dtype.kind == "O"],
        "daskgmm_version": __version__,
        "params": _encode_params(estimator.get_params(deep=False)),
        **{name: encode_json(SCALAR_TYPES[name](getattr(estimator, name)))
           for name in (*saved.scalars, "n_features_in_")},
        "scalar_types": {name: _scalar_type(value) for name, value in scalars.items()},
        "tuple_arrays": [name for name, value in family.items() if isinstance(value, tuple)],
    }
    write_group(path, arrays, attrs)


def _scalar_type(value):
    """The name of a scalar's type: ``"int"``, ``"float"``, or a NumPy dtype's name."""
    if type(value) in (int, float):
        return type(value).__name__
    dtype = np.asarray(value).dtype
    if dtype.kind not in "iuf":
        raise ValueError(f"cannot save a scalar of type {type(value).__name__}")
    return dtype.name


def _as_scalar(value, type_name):
    """``value`` (a number or 0-d array) as a scalar of the type `_scalar_type` named."""
    if type_name in ("int", "float"):
        return {"int": int, "float": float}[type_name](value)
    dtype = _storable_dtype(type_name)
    if dtype.kind not in "iuf":
        raise ValueError(f"invalid scalar type {type_name!r}")
    return dtype.type(value)


def _label_array(name, labels):
    """Labels as a storable array: an object array becomes the array of its items.

    Its items must all be strings or all numbers, so that ``astype(object)``
    gives them back.
    """
    if labels.dtype.kind != "O":
        return labels
    items = np.array(labels.tolist())
    if items.dtype.kind not in "biufU" or items.astype(object).tolist() != labels.tolist():
        raise ValueError(f"cannot save {name}: its items are not all strings or all numbers.")
    return items


def _encode_params(params):
    """Hyperparameters with a JSON form; a random_state that is not an int is None."""
    random_state = params.get("random_state")
    if not (random_state is None or isinstance(random_state, numbers.Integral)):
        params = {**params, "random_state": None}
    encoded = {}
    for name, value in params.items():
        try:
            encoded[name] = encode_json(value)
        except TypeError:
            continue  # no JSON form: the loaded model gets the default
    return encoded


def read_model(path):
    """Read and check a model saved by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory of the model store.

    Returns
    -------
    estimator : str
        The class name of the estimator saved (files before it was recorded:
        ``"GaussianMixture"``).
    params : dict
        The estimator's saved hyperparameters.
    fitted : dict
        Its fitted attributes, bit for bit, shapes checked.

    Raises
    ------
    ValueError
        If ``path`` is missing, corrupt, foreign, of another format version,
        or not a consistent model.
    """
    arrays, attrs = read_group(path, MODEL_KIND)
    try:
        return (attrs.get("estimator", "GaussianMixture"), *_model(arrays, attrs))
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise invalid_model(path, error) from error


def register(cls):
    """Class decorator: ``load`` rebuilds saved estimators of ``cls`` by its name."""
    ESTIMATORS[cls.__name__] = cls
    return cls


def load(path):
    """The fitted estimator saved at ``path``, of the registered class it names.

    See `daskgmm.load`; the classes must have been registered (imported).
    """
    name, params, fitted = read_model(path)
    try:
        estimator = ESTIMATORS[name]().set_params(**params)
        estimator._validate_params()
    except (KeyError, TypeError, ValueError) as error:
        raise invalid_model(path, error) from error
    vars(estimator).update(fitted)
    return estimator


def invalid_model(path, error):
    """The ValueError for a store that is not a consistent model."""
    return ValueError(f"{_local_path(path)} is not a valid daskgmm model: {error}")


def _model(arrays, attrs):
    """Hyperparameters and fitted attributes from a store's verified arrays and attributes."""
    saved = ESTIMATORS[attrs.get("estimator", "GaussianMixture")]._saved_attributes
    missing = [name for name in (*saved.arrays, *saved.lists, *saved.family)
               if name not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    params = {name: decode_json(value) for name, value in attrs["params"].items()}
    object_arrays = attrs["object_arrays"]
    fitted = {
        name: arrays[name].astype(object) if name in object_arrays else arrays[name]
        for name in (*saved.arrays, *MODEL_OPTIONAL_ARRAYS)
        if name in arrays
    }
    # Stores before "scalar_types" was recorded: 0-d arrays are floats.
    scalar_types = attrs.get("scalar_types", {})
    fitted.update({name: arrays[name] if arrays[name].ndim else
                   _as_scalar(arrays[name], scalar_types.get(name, "float"))
                   for name in saved.family})
    # Stores before "tuple_arrays" was recorded: a 2-d weight_concentration_ was a tuple.
    tuples = attrs.get("tuple_arrays", [name for name in ("weight_concentration_",)
                                        if np.ndim(fitted.get(name)) == 2])
    fitted.update({name: tuple(fitted[name]) for name in tuples})
    fitted.update({name: arrays[name].tolist() for name in saved.lists})
    fitted.update({name: _typed(decode_json(attrs[name]), SCALAR_TYPES[name], name)
                   for name in (*saved.scalars, "n_features_in_")})
    fitted.update({name: _as_scalar(fitted[name], scalar_types[name])
                   for name in saved.scalars if name in scalar_types})
    _check_shapes(fitted, params.get("covariance_type"), saved)
    return params, fitted


def _typed(value, expected_type, name):
    if type(value) is not expected_type:
        raise ValueError(f"{name} should be a {expected_type.__name__}, got {value!r}")
    return value


def _check_shapes(fitted, covariance_type, saved):
    """The fitted arrays agree with each other and with the covariance type.

    A classifier's arrays have a leading class axis (that of ``weights_``,
    one mixture per class); its other ``saved.arrays`` are one value per class.
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    weights = fitted["weights_"]
    if weights.ndim < 1:
        raise ValueError("weights_ has no component axis")
    leading, n_components = weights.shape[:-1], weights.shape[-1]
    n_features = fitted["n_features_in_"]
    covariance_shape = leading + m2_shape(n_components, n_features, covariance_type)
    expected = {
        **{name: leading for name in saved.arrays},
        "weights_": weights.shape,
        "means_": leading + (n_components, n_features),
        "covariances_": covariance_shape,
        "precisions_": covariance_shape,
        "precisions_cholesky_": covariance_shape,
        "classes_": weights.shape[:1],
        "feature_names_in_": (n_features,),
    }
    for name, shape in expected.items():
        if name in fitted and fitted[name].shape != shape:
            raise ValueError(f"{name} has shape {fitted[name].shape}, expected {shape}")
