"""Input types: pandas and Dask DataFrames, xarray DataArrays, and what is refused."""

import pathlib
import re
import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from dask.callbacks import Callback
from dask.sizeof import sizeof
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from daskgmm import GaussianMixture

from .conftest import make_mixture

COLUMNS = ["a", "b", "c"]
FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def X():
    return make_mixture(n_samples=1200, n_features=3, n_components=3, seed=5)[0]


@pytest.fixture
def frame(X):
    return pd.DataFrame(X, columns=COLUMNS)


def _fit(X, sample_weight=None):
    """A fit of 5 EM iterations from rows picked as scikit-learn picks them."""
    params = dict(n_components=3, init_params="random_from_data", random_state=0,
                  max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**params).fit(X, sample_weight=sample_weight)


def assert_same_fit(fit, expected):
    for name in FITTED:
        np.testing.assert_allclose(getattr(fit, name), getattr(expected, name), rtol=1e-9)
    assert fit.lower_bounds_ == pytest.approx(expected.lower_bounds_, rel=1e-9)


def assert_unchanged(gm, before):
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(gm, name), value)


def _fitted_state(gm):
    return {name: np.copy(value) for name, value in vars(gm).items() if name.endswith("_")}


class LargestTaskResult(Callback):
    """Records the size of the largest value any task of the local scheduler returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.largest = max(self.largest, sizeof(result))


# ------------------------------------------------------------------ pandas


def test_pandas_fit_sets_feature_names_and_equals_numpy(X, frame):
    fit, reference = _fit(frame), _fit(X)
    assert_same_fit(fit, reference)
    np.testing.assert_array_equal(fit.feature_names_in_, COLUMNS)
    assert isinstance(fit.predict(frame), np.ndarray)
    np.testing.assert_array_equal(fit.predict(frame), reference.predict(X))
    assert not hasattr(reference, "feature_names_in_")


def _outcome(estimator, X):
    """What predict(X) does as to feature names: the error or warning message, or None."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.predict(X)
        except ValueError as error:
            return "error", str(error)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return ("warning", messages[0]) if messages else None


@pytest.mark.parametrize("fit_on, predict_on", [
    ("frame", "renamed"), ("frame", "reordered"), ("frame", "array"), ("array", "frame"),
])
@pytest.mark.parametrize("lazy", [False, True])
def test_feature_name_checks_are_scikit_learns(X, frame, fit_on, predict_on, lazy):
    """Errors and warnings on mismatched names, word for word scikit-learn's (pandas'),
    for pandas and for Dask DataFrames."""
    inputs = {"frame": frame, "array": X, "renamed": frame.rename(columns={"c": "z"}),
              "reordered": frame[["c", "a", "b"]]}
    ours = _fit(inputs[fit_on])
    theirs = SklearnGaussianMixture(3, random_state=0, max_iter=5).fit(inputs[fit_on])
    expected = _outcome(theirs, inputs[predict_on])
    assert expected is not None
    X_ours = inputs[predict_on]
    if lazy:
        X_ours = (dd.from_pandas(X_ours, npartitions=3) if predict_on != "array"
                  else da.from_array(X_ours, chunks=500))
    assert _outcome(ours, X_ours) == expected


# ------------------------------------------------------------- Dask DataFrame


def test_dask_dataframe_partitions_become_row_chunks(X, frame):
    ddf = dd.from_pandas(frame, npartitions=4)
    fit, reference = _fit(ddf), _fit(X)
    assert_same_fit(fit, reference)
    np.testing.assert_array_equal(fit.feature_names_in_, COLUMNS)
    lengths = tuple(len(part) for part in ddf.partitions)
    labels, proba, scores = fit.predict(ddf), fit.predict_proba(ddf), fit.score_samples(ddf)
    for lazy in (labels, proba, scores):
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[0] == lengths
    np.testing.assert_array_equal(labels.compute(), reference.predict(X))
    np.testing.assert_allclose(proba.compute(), reference.predict_proba(X), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(scores.compute(), reference.score_samples(X), rtol=1e-9)
    for method in ("score", "bic", "aic"):
        value = getattr(fit, method)(ddf)
        assert isinstance(value, float)
        assert value == pytest.approx(getattr(reference, method)(X), rel=1e-9)


def test_dask_dataframe_is_never_computed_whole(X, frame):
    ddf = dd.from_pandas(frame, npartitions=8)
    with LargestTaskResult() as largest:
        fit = _fit(ddf)
        fit.score(ddf)
        (n_labels,) = dask.compute(fit.predict(ddf).sum())
    # Every task returned at most about one partition (a pass over the data ran).
    assert 0 < largest.largest < 2 * sizeof(frame) / 8
    assert n_labels == fit.predict(frame).sum()


def test_dask_dataframe_read_from_parquet(X, frame, tmp_path):
    dd.from_pandas(frame, npartitions=3).to_parquet(tmp_path / "data.parquet")
    ddf = dd.read_parquet(tmp_path / "data.parquet")
    assert not ddf.known_divisions
    fit = _fit(ddf)
    assert_same_fit(fit, _fit(X))
    np.testing.assert_array_equal(fit.feature_names_in_, COLUMNS)
    assert fit.predict(ddf).numblocks == (3,)


def test_dask_dataframe_with_unknown_partition_lengths(X, frame):
    ddf = dd.from_pandas(frame, npartitions=5).clear_divisions()
    kept = ddf[ddf["a"] > 0]  # partition lengths known only once computed
    fit = _fit(kept)
    assert_same_fit(fit, _fit(X[X[:, 0] > 0]))
    labels = fit.predict(kept)
    assert not any(np.isnan(n) for n in labels.chunks[0])
    np.testing.assert_array_equal(labels.compute(), fit.predict(frame[frame["a"] > 0]))


def _masked(X, chunks=250):
    """``X[mask]`` as a Dask array: row chunks of unknown size, and the mask in NumPy."""
    dX = da.from_array(X, chunks=(chunks, X.shape[1]))
    kept = dX[dX[:, 0] > 0]
    assert all(np.isnan(n) for n in kept.chunks[0])
    return kept, X[:, 0] > 0


def test_dask_array_with_unknown_chunk_sizes(X):
    """Counted on the workers, no error: the fit equals the known-chunk array's and
    NumPy's (scikit-learn's start); the user's array keeps its unknown sizes."""
    kept, mask = _masked(X)
    weights = np.random.default_rng(2).uniform(0.5, 2, size=len(X))
    kept_weights = da.from_array(weights, chunks=250)[da.from_array(mask, chunks=250)]
    with LargestTaskResult() as largest:
        fit = _fit(kept)
    assert 0 < largest.largest <= sizeof(X) / 4  # no task returned much more than a chunk
    assert all(np.isnan(n) for n in kept.chunks[0])
    known = _masked(X)[0].compute_chunk_sizes()
    assert_same_fit(fit, _fit(known))
    assert_same_fit(fit, _fit(X[mask]))
    labels = fit.predict(kept)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), fit.predict(X[mask]))
    np.testing.assert_allclose(fit.score_samples(kept).compute(), fit.score_samples(X[mask]),
                               rtol=1e-12)
    assert_same_fit(_fit(kept, sample_weight=kept_weights),
                    _fit(X[mask], sample_weight=weights[mask]))


def test_dask_array_with_unknown_chunk_sizes_on_a_local_cluster(client, X):
    kept, mask = _masked(X, chunks=300)
    fit = _fit(kept)
    assert_same_fit(fit, _fit(X[mask]))
    np.testing.assert_array_equal(client.compute(fit.predict(kept)).result(),
                                  fit.predict(X[mask]))


def test_dask_dataframe_with_weights_and_integer_and_float32_columns(X, frame):
    weights = np.random.default_rng(0).uniform(0.5, 2, size=len(X))
    mixed = frame.assign(c=np.arange(len(X)) % 7, d=X[:, 2].astype(np.float32))
    expected = _fit(mixed.to_numpy(np.float64), sample_weight=weights)
    assert_same_fit(_fit(dd.from_pandas(mixed, npartitions=3), sample_weight=weights), expected)
    float32 = dd.from_pandas(frame.astype(np.float32), npartitions=3)
    # NumPy float32 starts from scikit-learn's float32 start; a Dask float32 array does not.
    assert_same_fit(_fit(float32), _fit(da.from_array(X.astype(np.float32), chunks=500)))


def test_dask_series_as_labels_and_weights(X, frame):
    """y and sample_weight as Dask Series, partitioned unlike X, each read by partitions."""
    labels = make_mixture(n_samples=1200, n_features=3, n_components=3, seed=5)[1]
    weights = np.random.default_rng(1).uniform(0.5, 2, size=len(X))
    columns = frame.assign(label=np.array(["x", "y", "z"])[labels], weight=weights)
    ddf = dd.from_pandas(columns, npartitions=4)
    other = dd.from_pandas(columns, npartitions=3)
    params = dict(n_components=2, max_iter=3, tol=0)
    with warnings.catch_warnings(), LargestTaskResult() as largest:
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = GaussianMixture(**params).fit(ddf[COLUMNS], ddf["label"], other["weight"])
    # No task returned the whole of y or of the weights.
    assert 0 < largest.largest < min(sizeof(columns["label"]), sizeof(columns["weight"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = GaussianMixture(**params).fit(X, columns["label"], weights)
    assert_same_fit(fit, expected)
    np.testing.assert_array_equal(fit.classes_, ["x", "y", "z"])
    np.testing.assert_array_equal(fit.predict(ddf[COLUMNS]).compute(), expected.predict(X))


def test_non_numeric_dask_dataframe_columns_are_named(X, frame):
    fit = _fit(X)
    before = _fitted_state(fit)
    bad = dd.from_pandas(frame.assign(site="x", day=pd.Timestamp("2026-01-01")), npartitions=2)
    with pytest.raises(ValueError, match=r"non-numeric columns .*'site'.*'day'"):
        fit.fit(bad)
    assert_unchanged(fit, before)
    with pytest.raises(ValueError, match="non-numeric columns .*'site'"):
        fit.predict(bad)


def test_dask_series_is_refused_not_loaded(frame):
    with pytest.raises(ValueError, match="Dask DataFrame of shape"):
        _fit(dd.from_pandas(frame, npartitions=2)["a"])


def test_dask_dataframe_on_a_local_cluster(client, X, frame):
    ddf = dd.from_pandas(frame, npartitions=4)
    fit = _fit(ddf)
    assert_same_fit(fit, _fit(X))
    labels = fit.predict(ddf)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(client.compute(labels).result(), fit.predict(frame))
    assert len(client.cluster.workers) == 2


# ---------------------------------------------------------------- DataArray


def _data_array(X):
    n = len(X)
    return xr.DataArray(
        X,
        dims=("time", "band"),
        coords={"time": pd.date_range("2026-01-01", periods=n, freq="h"),
                "station": ("time", np.arange(n) % 4), "band": COLUMNS,
                "gain": ("band", [1.0, 2.0, 3.0]), "mission": "test"},
    )


@pytest.mark.parametrize("backed_by", ["numpy", "dask"])
def test_data_array_results_over_the_sample_dimension(X, backed_by):
    array = _data_array(X)
    if backed_by == "dask":
        array = array.chunk({"time": 500})
    fit = _fit(array)
    assert_same_fit(fit, _fit(X))
    labels, proba, scores = fit.predict(array), fit.predict_proba(array), fit.score_samples(array)
    assert labels.dims == scores.dims == ("time",)
    assert proba.dims == ("time", "component")
    for result in (labels, proba, scores):
        assert isinstance(result, xr.DataArray)
        assert result.name is None
        assert set(result.coords) == {"time", "station", "mission"}
        xr.testing.assert_equal(result["time"], array["time"])
        xr.testing.assert_equal(result["station"], array["station"])
        assert (result.chunks is not None) == (backed_by == "dask")
        if backed_by == "dask":
            assert result.chunks[0] == array.chunks[0]
    np.testing.assert_array_equal(labels.values, fit.predict(X))
    np.testing.assert_allclose(proba.values, fit.predict_proba(X), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(scores.values, fit.score_samples(X), rtol=1e-10)
    assert fit.score(array) == pytest.approx(fit.score(X), rel=1e-12)
    assert fit.bic(array) == pytest.approx(fit.bic(X), rel=1e-12)


def test_dask_backed_data_array_is_never_computed_whole(X):
    array = _data_array(np.tile(X, (4, 1))).chunk({"time": 600})
    with LargestTaskResult() as largest:
        fit = _fit(array)
        fit.score(array)
    assert 0 < largest.largest < 2 * array.nbytes / 8


@pytest.mark.parametrize("dims", [("time",), ("time", "band", "level")])
def test_data_array_needs_two_dimensions(X, dims):
    fit = _fit(X)
    before = _fitted_state(fit)
    array = xr.DataArray(np.zeros((4,) * len(dims)), dims=dims)
    with pytest.raises(ValueError, match=re.escape(f"dimensions {dims}")):
        fit.fit(array)
    assert_unchanged(fit, before)
    with pytest.raises(ValueError, match="dimensions"):
        fit.predict(array.chunk())


# ---------------------------------------------------- what is not data


@pytest.mark.parametrize("path", ["data.zarr", pathlib.Path("data.zarr")])
def test_a_path_says_what_to_pass(X, path):
    fit = _fit(X)
    before = _fitted_state(fit)
    with pytest.raises(ValueError, match=r"X is a path \('data.zarr'\).*zarr.open_array"):
        fit.fit(path)
    assert_unchanged(fit, before)
    with pytest.raises(ValueError, match="da.from_zarr|dask.array.from_zarr"):
        fit.predict(path)


def test_a_zarr_group_lists_its_arrays(X, tmp_path):
    group = zarr.open_group(tmp_path / "data.zarr", mode="w")
    group.create_array("X", data=X)
    group.create_array("labels", data=np.zeros(len(X), dtype=np.int64))
    with pytest.raises(ValueError, match=r"zarr group.*\['X', 'labels'\].*group\['X'\]"):
        _fit(group)
    assert_same_fit(_fit(group["X"]), _fit(X))
    with pytest.raises(ValueError, match="holds no arrays"):
        _fit(zarr.open_group(tmp_path / "empty.zarr", mode="w"))
