"""GaussianMixtureClassifier: QDA with one component per class, MDA with more, in shared passes."""

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr
from sklearn.base import is_classifier
from sklearn.datasets import load_digits
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import daskgmm
from daskgmm import GaussianMixture, GaussianMixtureClassifier

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture

FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def labelled():
    """Three classes that overlap (so that probabilities are not all 0 or 1)."""
    return make_mixture(n_samples=3000, n_features=3, n_components=3, seed=0, separation=2)


def _precisions(prec_chol, covariance_type):
    """Precisions from their Cholesky factors, for ``precisions_init``."""
    if covariance_type in ("full", "tied"):
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)
    return prec_chol**2


def _assert_class_equals(classifier, code, mixture):
    for name in FITTED:
        np.testing.assert_allclose(getattr(classifier, name)[code], getattr(mixture, name),
                                   rtol=1e-9, atol=1e-12)
    assert classifier.n_iter_[code] == mixture.n_iter_
    assert classifier.lower_bound_[code] == pytest.approx(mixture.lower_bound_, rel=1e-9)


@pytest.mark.parametrize("as_dask", [False, True])
def test_one_component_per_class_is_qda(labelled, as_dask):
    X, y = labelled
    qda = QuadraticDiscriminantAnalysis(reg_param=0, store_covariance=True).fit(X, y)
    Xf = da.from_array(X, chunks=700) if as_dask else X
    fit = GaussianMixtureClassifier(reg_covar=1e-12).fit(Xf, y)
    np.testing.assert_array_equal(fit.classes_, qda.classes_)
    np.testing.assert_allclose(fit.class_prior_, qda.priors_, rtol=1e-12)
    np.testing.assert_allclose(fit.means_[:, 0], qda.means_, rtol=1e-9, atol=1e-12)
    n = np.bincount(y)[:, None, None]
    ours = fit.covariances_[:, 0]
    # scikit-learn's QDA stored unbiased covariances before 1.8, biased ones since.
    unbiased = ours * n / (n - 1)
    assert (np.allclose(qda.covariance_, ours, rtol=1e-9)
            or np.allclose(qda.covariance_, unbiased, rtol=1e-9))
    np.testing.assert_allclose(np.asarray(fit.predict_proba(Xf)), qda.predict_proba(X),
                               atol=1e-6)
    np.testing.assert_array_equal(np.asarray(fit.predict(Xf)), qda.predict(X))
    assert fit.n_iter_.tolist() == [1, 1, 1] and fit.converged_.all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_component_per_class_is_the_class_statistics(labelled, covariance_type):
    X, y = labelled
    fit = GaussianMixtureClassifier(covariance_type=covariance_type).fit(X, y)
    for code in range(3):
        alone = GaussianMixture(covariance_type=covariance_type, max_iter=0).fit(X[y == code])
        for name in FITTED:
            np.testing.assert_allclose(getattr(fit, name)[code], getattr(alone, name),
                                       rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_class_equals_its_standalone_mixture(labelled, covariance_type):
    X, y = labelled
    kwargs = dict(covariance_type=covariance_type, random_state=0)
    fit = GaussianMixtureClassifier(3, **kwargs).fit(X, y)
    assert fit.means_.shape == (3, 3, 3) and fit.weights_.shape == (3, 3)
    for code in range(3):
        _assert_class_equals(fit, code, GaussianMixture(3, **kwargs).fit(X[y == code]))


def test_each_class_keeps_its_best_start(labelled):
    """Starts that reach the same optimum tie to rounding, so only the optimum is compared."""
    X, y = labelled
    kwargs = dict(covariance_type="diag", n_init=3, random_state=1)
    fit = GaussianMixtureClassifier(3, **kwargs).fit(X, y)
    for code in range(3):
        alone = GaussianMixture(3, **kwargs).fit(X[y == code])
        assert fit.lower_bound_[code] == pytest.approx(alone.lower_bound_, rel=1e-9)
        np.testing.assert_allclose(np.sort(fit.weights_[code]), np.sort(alone.weights_),
                                   rtol=1e-9)


def _fit_from_start(Xd, yd, X, y, covariance_type, **kwargs):
    """A fit of Dask input, and each class's standalone mixture (NumPy, local threads)
    from the fit's start."""
    kwargs = dict(covariance_type=covariance_type, random_state=0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = GaussianMixtureClassifier(3, max_iter=0, **kwargs).fit(Xd, yd)
    fit = GaussianMixtureClassifier(3, **kwargs).fit(Xd, yd)
    alone = [GaussianMixture(
        3, covariance_type=covariance_type, weights_init=start.weights_[code],
        means_init=start.means_[code],
        precisions_init=_precisions(start.precisions_cholesky_[code], covariance_type),
    ).fit(X[y == code]) for code in range(len(fit.classes_))]
    return fit, alone


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_fit_equals_standalone_mixtures_from_its_start(labelled, covariance_type):
    X, y = labelled
    fit, alone = _fit_from_start(da.from_array(X, chunks=700), da.from_array(y, chunks=500),
                                 X, y, covariance_type)
    for code, mixture in enumerate(alone):
        _assert_class_equals(fit, code, mixture)


def test_all_classes_advance_in_the_same_passes(tmp_path, labelled):
    """k-means starts: one sample pass and one assignment pass for all classes, then
    one pass per iteration of the slowest class; with one component per class, one
    pass of class statistics and no EM."""
    X, y = labelled
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(500, 3), dtype="f8")[:] = X
    n_chunks = 6
    stored, reads = counted_array(path)
    fit = GaussianMixtureClassifier(3, random_state=0, cache=False).fit(stored, y)
    slowest = int(fit.n_iter_.max())
    assert reads["count"] == (2 + slowest) * n_chunks
    assert 0 < slowest < fit.n_iter_.sum()
    stored, reads = counted_array(path)
    GaussianMixtureClassifier(random_state=0, cache=False).fit(stored, y)
    assert reads["count"] == n_chunks


def test_cross_validation_scores_accuracy_and_mixtures_beat_one_gaussian():
    X, y = load_digits(return_X_y=True)

    def accuracies(n_components, cv=None):
        pipeline = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixtureClassifier(
            n_components, covariance_type="diag", random_state=0))])
        assert is_classifier(pipeline)
        return cross_val_score(pipeline, X, y, cv=cv)

    one, three = accuracies(1), accuracies(3)
    np.testing.assert_array_equal(one, accuracies(1, StratifiedKFold(5)))
    assert ((one > 0.75) & (one <= 1)).all()
    assert three.mean() > one.mean() + 0.02


def test_predict_on_dask_is_lazy_and_xarray_comes_back(labelled):
    X, y = labelled
    labels = np.array(["a", "b", "c"])[y]
    fit = GaussianMixtureClassifier(2, covariance_type="diag", random_state=0).fit(X, labels)
    Xd = da.from_array(X, chunks=400)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        lazy = getattr(fit, method)(Xd)
        assert isinstance(lazy, da.Array) and lazy.chunks[0] == Xd.chunks[0]
        np.testing.assert_allclose(lazy.compute(), getattr(fit, method)(X)) if method != \
            "predict" else np.testing.assert_array_equal(lazy.compute(), fit.predict(X))
    proba = fit.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(np.log(proba), fit.predict_log_proba(X), atol=1e-12)
    assert set(fit.predict(X)) <= {"a", "b", "c"} and fit.score(X, labels) > 0.8
    array = xr.DataArray(Xd, dims=("time", "band"), coords={"time": np.arange(len(X))})
    out = fit.predict(array)
    assert isinstance(out, xr.DataArray) and isinstance(out.data, da.Array)
    assert out.dims == ("time",)
    np.testing.assert_array_equal(out.values, fit.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repeated_rows(labelled, covariance_type):
    X, y = labelled
    weights = np.random.default_rng(0).integers(0, 4, size=len(X))
    weighted = GaussianMixtureClassifier(covariance_type=covariance_type).fit(
        da.from_array(X, chunks=700), y, sample_weight=da.from_array(weights, chunks=700))
    repeated = GaussianMixtureClassifier(covariance_type=covariance_type).fit(
        np.repeat(X, weights, axis=0), np.repeat(y, weights))
    for name in [*FITTED, "class_prior_"]:
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-9)


def test_priors_are_used(labelled):
    X, y = labelled
    fit = GaussianMixtureClassifier(priors=[0.8, 0.1, 0.1]).fit(X, y)
    even = GaussianMixtureClassifier().fit(X, y)
    np.testing.assert_array_equal(fit.class_prior_, [0.8, 0.1, 0.1])
    assert (fit.predict(X) == 0).sum() > (even.predict(X) == 0).sum()


@pytest.mark.parametrize("y, fit_kwargs, match", [
    (lambda y: y + 0.5, {}, "Unknown label type"),
    (lambda y: y[:-1], {}, "y has 2999 samples but X has 3000"),
    (lambda y: None, {}, "requires y to be passed"),
    (lambda y: np.where(np.arange(len(y)) < 2, 3, y), dict(n_components_per_class=3),
     "The class 3 has 2 row"),
    (lambda y: y, dict(priors=[0.5, 0.5]), "priors must hold 3 non-negative probabilities"),
])
def test_bad_input_is_a_value_error_and_keeps_the_fitted_model(labelled, y, fit_kwargs, match):
    X, labels = labelled
    fit = GaussianMixtureClassifier().fit(X, labels)
    before = {name: getattr(fit, name).copy() for name in [*FITTED, "classes_"]}
    with pytest.raises(ValueError, match=match):
        fit.set_params(**fit_kwargs).fit(X, y(labels))
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(fit, name), value)


def test_a_class_without_weight_is_a_value_error(labelled):
    X, y = labelled
    with pytest.raises(ValueError, match="The class 1 has a total sample_weight of zero"):
        GaussianMixtureClassifier().fit(X, y, sample_weight=(y != 1).astype(float))


@pytest.mark.slow
def test_fit_on_local_cluster_equals_standalone_mixtures(client, labelled):
    X, y = labelled
    # 10 chunks, merged by a tree of fan-in 2; the data persisted on the workers.
    Xd, yd = da.from_array(X, chunks=300), da.from_array(y, chunks=300)
    fit, alone = _fit_from_start(Xd, yd, X, y, "full", split_every=2, cache=True)
    assert len(client.cluster.workers) == 2
    for code, mixture in enumerate(alone):
        _assert_class_equals(fit, code, mixture)
    proba = fit.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), fit.predict_proba(X), atol=1e-12)


def _expected_failed_checks(estimator):
    if estimator.n_components_per_class == 1:
        return {}
    return {"check_sample_weight_equivalence_on_dense_data":
            "k-means starts do not use sample_weight, as scikit-learn's GaussianMixture's"}


@parametrize_with_checks([GaussianMixtureClassifier(), GaussianMixtureClassifier(
    2, covariance_type="diag", random_state=0)], expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------- save, load, checkpoint, incremental


CLASSIFIER_ATTRIBUTES = ("classes_", "class_prior_", "weights_", "means_", "covariances_",
                         "precisions_cholesky_", "converged_", "n_iter_", "lower_bound_")


@pytest.mark.parametrize("n_components_per_class, covariance_type, labels", [
    (1, "full", "int"), (2, "tied", "str"), (2, "diag", "object"), (1, "spherical", "str")])
def test_save_load_round_trip(tmp_path, labelled, n_components_per_class, covariance_type,
                              labels):
    X, y = labelled
    y = {"int": y * 10 - 5, "str": np.array(["a", "bb", "c"])[y],
         "object": np.array(["a", "bb", "c"], dtype=object)[y]}[labels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        original = GaussianMixtureClassifier(n_components_per_class,
                                             covariance_type=covariance_type, max_iter=5,
                                             random_state=0).fit(X, y)
    original.save(tmp_path / "model")
    loaded = daskgmm.load(tmp_path / "model")
    assert type(loaded) is GaussianMixtureClassifier
    assert loaded.get_params() == original.get_params()
    assert sorted(name for name in vars(loaded) if name.endswith("_")) == sorted(
        name for name in vars(original) if name.endswith("_"))
    for name in CLASSIFIER_ATTRIBUTES:
        value, expected = getattr(loaded, name), getattr(original, name)
        assert type(value) is np.ndarray and value.dtype == expected.dtype, name
        assert value.shape == expected.shape, name
        np.testing.assert_array_equal(value, expected, err_msg=name)
    assert type(loaded.n_features_in_) is int and loaded.n_features_in_ == 3
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


def test_save_of_an_unfitted_classifier_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixtureClassifier().save(tmp_path / "model")


def test_checkpoint_resumes_to_the_uninterrupted_fit(tmp_path, labelled):
    X, y = labelled
    checkpoint = str(tmp_path / "fit.ckpt")
    kwargs = dict(n_components_per_class=3, covariance_type="diag", tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixtureClassifier(max_iter=2, checkpoint=checkpoint, **kwargs).fit(X, y)
        resumed = GaussianMixtureClassifier(max_iter=5, checkpoint=checkpoint, **kwargs).fit(X, y)
        whole = GaussianMixtureClassifier(max_iter=5, **kwargs).fit(X, y)
    np.testing.assert_array_equal(resumed.n_iter_, [5, 5, 5])
    for name in FITTED:
        np.testing.assert_allclose(getattr(resumed, name), getattr(whole, name), rtol=1e-9)
    with pytest.raises(ValueError, match="written for other data or parameters"):
        GaussianMixtureClassifier(max_iter=5, checkpoint=checkpoint, **kwargs).fit(X, y + 1)


def test_incremental_em_fits_every_class_in_the_same_blocks(labelled):
    X, y = labelled
    kwargs = dict(n_components_per_class=2, covariance_type="full", random_state=0, tol=1e-4,
                  max_iter=200)
    batch = GaussianMixtureClassifier(**kwargs).fit(X, y)
    incremental = GaussianMixtureClassifier(algorithm="incremental", n_blocks=4,
                                            **kwargs).fit(X, y)
    assert incremental.converged_.all() and batch.converged_.all()
    assert incremental.n_iter_.max() < batch.n_iter_.max()  # fewer passes
    np.testing.assert_allclose(incremental.lower_bound_, batch.lower_bound_, rtol=1e-3)
    assert (incremental.predict(X) == batch.predict(X)).mean() > 0.99
