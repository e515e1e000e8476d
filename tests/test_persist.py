"""Model files: save/load round trips, atomic replacement, and refusal of bad stores."""

import copy
import json
import os
import pickle
import shutil
import uuid
import warnings
from functools import cache

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from daskgmm import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC, _persist
from daskgmm import load
from daskgmm._persist import read_group, save, write_group

from .conftest import COVARIANCE_TYPES, make_mixture

X, COMPONENT = make_mixture(n_samples=300, n_features=2, n_components=3, seed=3)
LABELS = {
    None: None,
    "int": COMPONENT * 10 - 5,
    "str": np.array(["setosa", "versicolor", "virginica"])[COMPONENT],
    "object": np.array(["a", "bb", "ccc"], dtype=object)[COMPONENT],
}
ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
OPTIONAL_ARRAYS = ("classes_", "feature_names_in_")


def fit_quietly(model, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def fit_quietly_on(model, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(data)


@cache
def fitted(covariance_type="full", labels=None):
    """A fitted model, shared between tests (they must not modify it)."""
    model = GaussianMixture(3, covariance_type=covariance_type, max_iter=20, random_state=0)
    return fit_quietly(model, LABELS[labels])


def assert_same_params(loaded, original):
    loaded_params, original_params = loaded.get_params(), original.get_params()
    assert loaded_params.keys() == original_params.keys()
    for name, value in original_params.items():
        assert type(loaded_params[name]) is type(value), name
        if isinstance(value, np.ndarray):
            assert loaded_params[name].dtype == value.dtype, name
        np.testing.assert_array_equal(loaded_params[name], value, err_msg=name)


def fitted_attributes(estimator):
    """Every fitted attribute of an estimator (public, trailing underscore)."""
    return {
        name: value
        for name, value in vars(estimator).items()
        if name.endswith("_") and not name.startswith("_")
    }


def assert_same_value(loaded, original, name):
    """Same type, and for arrays the same shape and dtype; same value, bit for bit."""
    assert type(loaded) is type(original), (name, type(loaded), type(original))
    if isinstance(original, (tuple, list)):
        assert len(loaded) == len(original), name
        for index, (item, original_item) in enumerate(zip(loaded, original)):
            assert_same_value(item, original_item, f"{name}[{index}]")
    elif isinstance(original, (np.ndarray, np.generic)):
        assert loaded.shape == original.shape, (name, loaded.shape, original.shape)
        assert loaded.dtype == original.dtype, (name, loaded.dtype, original.dtype)
        np.testing.assert_array_equal(loaded, original, err_msg=name)
    else:
        assert loaded == original, name


def assert_same_fitted_attributes(loaded, original):
    """Every fitted attribute comes back: type, shape, dtype and value."""
    loaded_attributes = fitted_attributes(loaded)
    original_attributes = fitted_attributes(original)
    assert loaded_attributes.keys() == original_attributes.keys()
    for name, value in original_attributes.items():
        assert_same_value(loaded_attributes[name], value, name)


def assert_same_model(loaded, original):
    """Same class, parameters and fitted attributes, bit for bit and dtype for dtype."""
    assert type(loaded) is type(original)
    assert_same_params(loaded, original)
    assert_same_fitted_attributes(loaded, original)
    for name in ARRAYS + OPTIONAL_ARRAYS:
        assert hasattr(loaded, name) == hasattr(original, name), name
        if hasattr(original, name):
            assert type(getattr(loaded, name)) is np.ndarray, name
            assert getattr(loaded, name).dtype == getattr(original, name).dtype, name
            np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name), name)
    assert type(loaded.lower_bounds_) is list
    assert all(type(bound) is float for bound in loaded.lower_bounds_)
    assert loaded.lower_bounds_ == original.lower_bounds_
    assert type(loaded.lower_bound_) is type(original.lower_bound_)
    assert loaded.lower_bound_ == original.lower_bound_
    assert type(loaded.converged_) is bool and loaded.converged_ == original.converged_
    assert type(loaded.n_iter_) is int and loaded.n_iter_ == original.n_iter_
    assert loaded.n_features_in_ == original.n_features_in_


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("labels", [None, "int", "str"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_round_trip(tmp_path, covariance_type, labels):
    original = fitted(covariance_type, labels)
    save(original, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert_same_model(loaded, original)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), original.score_samples(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("prior_type", ["dirichlet_process", "dirichlet_distribution"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bayesian_round_trip_keeps_every_attribute(tmp_path, covariance_type, prior_type, dtype):
    """Scalar priors stay Python scalars (3, not array([3.])), the tied
    degrees_of_freedom_ a NumPy scalar, weight_concentration_ a tuple or an
    array, float32 attributes float32."""
    original = fit_quietly_on(
        BayesianGaussianMixture(
            n_components=3,
            covariance_type=covariance_type,
            weight_concentration_prior_type=prior_type,
            max_iter=5,
            random_state=0,
        ),
        X.astype(dtype),
    )
    assert type(original.degrees_of_freedom_prior_) is int
    assert type(original.mean_precision_prior_) is float
    save(original, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert_same_model(loaded, original)
    assert type(loaded.degrees_of_freedom_prior_) is int
    Xt = X.astype(dtype)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), original.predict_proba(Xt))
    np.testing.assert_array_equal(loaded.score_samples(Xt), original.score_samples(Xt))


def test_bayesian_round_trip_of_given_priors(tmp_path):
    """Priors set by the user come back as they were given (types included)."""
    original = fit_quietly_on(
        BayesianGaussianMixture(
            n_components=2,
            covariance_type="spherical",
            weight_concentration_prior=2,
            mean_precision_prior=0.5,
            degrees_of_freedom_prior=4.5,
            covariance_prior=1.5,
            mean_prior=[0.5, -0.5],
            max_iter=3,
        ),
        X,
    )
    save(original, tmp_path / "model")
    assert_same_model(load(tmp_path / "model"), original)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_bayesian_round_trip_of_an_incremental_fit_with_holes(tmp_path, covariance_type):
    """algorithm='incremental' with nan_policy='marginalize': the same attributes back,
    predictions on rows with holes included."""
    holes = X.copy()
    holes[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    original = fit_quietly_on(
        BayesianGaussianMixture(n_components=3, covariance_type=covariance_type, max_iter=3,
                                random_state=0, algorithm="incremental", n_blocks=3,
                                nan_policy="marginalize"),
        holes,
    )
    save(original, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert_same_model(loaded, original)
    np.testing.assert_array_equal(loaded.predict_proba(holes), original.predict_proba(holes))


def test_bayesian_model_saved_before_tuples_were_named_loads(tmp_path):
    """A model file without the "tuple_arrays" attribute (written before it was
    recorded) gives a Dirichlet process's weight_concentration_ back as a tuple."""
    original = fit_quietly_on(BayesianGaussianMixture(n_components=3, max_iter=3,
                                                      random_state=0), X)
    assert type(original.weight_concentration_) is tuple
    save(original, tmp_path / "model")
    arrays, attrs = read_group(tmp_path / "model", "model")
    older = {name: value for name, value in attrs.items()
             if name not in ("tuple_arrays", "checksum")}
    zarr.open_group(tmp_path / "model", mode="r+").attrs.put(
        {**older, "checksum": _persist._checksum(arrays, older)})
    assert "tuple_arrays" not in read_group(tmp_path / "model", "model")[1]
    assert_same_model(load(tmp_path / "model"), original)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_search_round_trip_keeps_every_attribute(tmp_path, covariance_type, dtype):
    search = fit_quietly_on(
        GaussianMixtureIC(1, 3, covariance_type=covariance_type, max_iter=5, random_state=0),
        X.astype(dtype),
    )
    search.save(tmp_path / "model")
    assert_same_model(load(tmp_path / "model"), search.best_estimator_)


def test_round_trip_object_labels_and_feature_names(tmp_path):
    original = fit_quietly(GaussianMixture(3, covariance_type="diag"), LABELS["object"])
    assert original.classes_.dtype == object
    original.feature_names_in_ = np.array(["height", "width"], dtype=object)
    save(original, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert_same_model(loaded, original)
    assert all(type(label) is str for label in loaded.classes_)


def test_save_refuses_mixed_object_labels(tmp_path):
    model = copy.deepcopy(fitted("full", "str"))
    model.classes_ = np.array(["a", 1, "b"], dtype=object)
    with pytest.raises(ValueError, match="not all strings or all numbers"):
        save(model, tmp_path / "model")
    assert not os.listdir(tmp_path)


def test_round_trip_array_hyperparameters(tmp_path):
    means_init = np.array([[-4.0, 0.0], [0.0, 0.0], [4.0, 1.0]], dtype=np.float32)
    original = fit_quietly(
        GaussianMixture(
            3,
            covariance_type="tied",
            means_init=means_init,
            weights_init=[0.2, 0.3, 0.5],
            tol=1e-4,
            random_state=np.random.RandomState(0),
            n_init=2,
        )
    )
    save(original, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.random_state is None
    loaded.set_params(random_state=original.random_state)
    assert_same_model(loaded, original)


def test_round_trip_without_iterations(tmp_path):
    """max_iter=0 with y: lower_bound_ is -inf and lower_bounds_ is empty."""
    original = fit_quietly(GaussianMixture(max_iter=0, covariance_type="spherical"), LABELS["str"])
    assert original.lower_bound_ == -np.inf and original.lower_bounds_ == []
    save(original, tmp_path / "model")
    assert_same_model(load(tmp_path / "model"), original)


def test_save_unfitted_model_is_value_error(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save(GaussianMixture(), tmp_path / "model")
    assert not os.listdir(tmp_path)


def test_groups_hold_any_storable_array(tmp_path):
    arrays = {
        "flags": np.array([True, False]),
        "counts": np.arange(6, dtype=np.int32).reshape(2, 3),
        "big_endian": np.arange(3, dtype=">f8"),
        "single": np.array([1.5, -np.inf, np.nan], dtype=np.float32),
        "complex": np.array([1 + 2j]),
        "scalar": np.array(7.25),
        "empty": np.zeros((0, 4)),
        "words": np.array([["a", "héllo"], ["", "z"]]),
        "bytes": np.array([b"ab", b"c"]),
    }
    write_group(tmp_path / "group", arrays, {"kind": "test", "note": [1, "two"]})
    read, attrs = read_group(tmp_path / "group", "test")
    assert read.keys() == arrays.keys()
    for name, array in arrays.items():
        assert read[name].dtype == array.dtype.newbyteorder("<"), name
        np.testing.assert_array_equal(read[name], array, err_msg=name)
    assert attrs["note"] == [1, "two"] and attrs["format"] == "daskgmm"
    with pytest.raises(ValueError, match="'test', not a 'model'"):
        load(tmp_path / "group")


@pytest.mark.parametrize(
    "arrays, attrs, message",
    [
        ({}, {}, "kind"),
        ({}, {"kind": "test", "when": object()}, "JSON"),
        ({}, {"kind": "test", "nan": float("nan")}, "JSON"),
        ({"labels": np.array(["a", 1], dtype=object)}, {"kind": "test"}, "object dtype"),
        ({"../escape": np.zeros(1)}, {"kind": "test"}, "array name"),
    ],
)
def test_write_group_refuses_what_it_cannot_store(tmp_path, arrays, attrs, message):
    with pytest.raises(ValueError, match=message):
        write_group(tmp_path / "group", arrays, attrs)
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------- replacement


def test_saving_over_a_model_replaces_it(tmp_path):
    save(fitted("full"), tmp_path / "model")
    save(fitted("diag", "str"), tmp_path / "model")
    assert_same_model(load(tmp_path / "model"), fitted("diag", "str"))
    assert os.listdir(tmp_path) == ["model"]


def test_saving_into_an_empty_directory(tmp_path):
    (tmp_path / "model").mkdir()
    save(fitted("full"), tmp_path / "model")
    assert_same_model(load(tmp_path / "model"), fitted("full"))


@pytest.mark.parametrize("occupant", ["file", "directory"])
def test_saving_never_replaces_something_else(tmp_path, occupant):
    target = tmp_path / "precious"
    if occupant == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a daskgmm store; refusing"):
        save(fitted("full"), target)
    assert sorted(os.listdir(tmp_path)) == ["precious"]
    assert (target if occupant == "file" else target / "notes.txt").read_text() == "keep me"


def test_failed_array_write_leaves_previous_model(tmp_path, monkeypatch):
    save(fitted("full"), tmp_path / "model")
    write_array, calls = _persist._write_array, []

    def failing_write_array(group, name, array):
        calls.append(name)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        write_array(group, name, array)

    monkeypatch.setattr(_persist, "_write_array", failing_write_array)
    with pytest.raises(RuntimeError, match="disk full"):
        save(fitted("tied", "int"), tmp_path / "model")
    assert os.listdir(tmp_path) == ["model"]
    assert_same_model(load(tmp_path / "model"), fitted("full"))


def test_failed_rename_leaves_previous_model(tmp_path, monkeypatch):
    save(fitted("full"), tmp_path / "model")
    replace = os.replace

    def failing_replace(source, destination):
        if ".tmp-" in os.fspath(source):
            raise OSError("rename failed")
        replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        save(fitted("tied", "int"), tmp_path / "model")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model"]
    assert_same_model(load(tmp_path / "model"), fitted("full"))


# --------------------------------------------------------------- bad stores


def saved_model(path):
    save(fitted("full", "str"), path)
    return path


def chunk_files(path):
    return [
        os.path.join(root, name)
        for root, _, names in os.walk(path)
        for name in names
        if name != "zarr.json"
    ]


def set_attribute(path, name, value):
    zarr.open_group(path, mode="r+").attrs[name] = value


def foreign_group(path):
    group = zarr.open_group(path, mode="w", attributes={"title": "someone else's"})
    group.create_array("weights_", data=np.ones(3))


def delete_array(path):
    shutil.rmtree(saved_model(path) / "means_")


def truncate_chunks(path):
    for file in chunk_files(saved_model(path)):
        os.truncate(file, os.path.getsize(file) // 2)


def scramble_metadata(path, file="zarr.json"):
    metadata = saved_model(path) / file
    content = bytearray(metadata.read_bytes())
    middle = len(content) // 2
    content[middle : middle + 16] = np.random.default_rng(0).bytes(16)
    metadata.write_bytes(bytes(content))


BAD_STORES = {
    "missing": (lambda path: None, "does not exist"),
    "empty directory": (lambda path: path.mkdir(), "not a readable zarr"),
    "plain file": (lambda path: path.write_bytes(b"not a model"), "not a directory"),
    "foreign zarr group": (foreign_group, "not a daskgmm store"),
    "future format version": (
        lambda path: set_attribute(saved_model(path), "format_version", 99),
        "format version 99",
    ),
    "checkpoint, not model": (
        lambda path: set_attribute(saved_model(path), "kind", "checkpoint"),
        "not a 'model'",
    ),
    "array deleted": (delete_array, "misses array 'means_'"),
    "chunks truncated": (truncate_chunks, "unreadable|corrupt"),
    "chunk deleted": (lambda path: os.remove(chunk_files(saved_model(path))[0]), "corrupt"),
    "group metadata scrambled": (scramble_metadata, "not a readable zarr|corrupt"),
    "array metadata scrambled": (
        lambda path: scramble_metadata(path, "weights_/zarr.json"),
        "unreadable|corrupt",
    ),
    "value changed": (
        lambda path: set_attribute(saved_model(path), "n_iter_", 1),
        "checksum does not match",
    ),
}


@pytest.mark.parametrize("damage", BAD_STORES.keys())
def test_load_of_bad_store_is_value_error(tmp_path, damage):
    path = tmp_path / "model"
    make_bad_store, message = BAD_STORES[damage]
    make_bad_store(path)
    with pytest.raises(ValueError, match=message) as error:
        load(path)
    assert str(path) in str(error.value)


def test_load_never_unpickles(tmp_path, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("load unpickled something")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    path = saved_model(tmp_path / "model")
    manifest = json.loads((path / "zarr.json").read_text())["attributes"]["arrays"]
    manifest["classes_"]["dtype"] = "|O"
    set_attribute(path, "arrays", manifest)
    with pytest.raises(ValueError, match="object dtype is refused"):
        load(path)


# --------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def pristine_store(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("pristine") / "model")


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_corrupted_store_loads_the_same_model_or_is_value_error(
    pristine_store, tmp_path_factory, data
):
    store = tmp_path_factory.getbasetemp() / f"fuzz-{uuid.uuid4().hex}"
    shutil.copytree(pristine_store, store)
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(store) for name in names)
    file = data.draw(st.sampled_from(files), label="file")
    size = os.path.getsize(file)
    if data.draw(st.booleans(), label="truncate"):
        os.truncate(file, data.draw(st.integers(0, size - 1), label="length"))
    else:
        offset = data.draw(st.integers(0, size - 1), label="offset")
        noise = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        with open(file, "r+b") as handle:
            handle.seek(offset)
            handle.write(noise)
    try:
        loaded = load(store)
    except ValueError:
        return
    finally:
        shutil.rmtree(store)
    assert_same_model(loaded, fitted("full", "str"))
