"""The scikit-learn estimator: checks, pipelines, labels, bad input, state."""

import pickle
import re
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from daskgmm import GaussianMixture

from .conftest import COVARIANCE_TYPES, make_mixture


@pytest.fixture(scope="module")
def blobs():
    return make_mixture(n_samples=1500, n_features=4, n_components=3, seed=5, separation=6)


@pytest.mark.slow
def test_check_estimator():
    failures = [r for r in check_estimator(GaussianMixture(), on_fail=None)
                if r["status"] == "failed"]
    assert failures == []


def test_pipeline_with_string_labels_scores_accuracy(blobs):
    X, labels = blobs
    y = np.array(["setosa", "versicolor", "virginica"])[labels]
    pipe = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture())])
    scores = cross_val_score(pipe, X, y, scoring="accuracy", cv=3)
    assert scores.min() >= 0.95
    fitted = pipe.fit(X, y)
    assert set(fitted.predict(X)) <= set(y)


def test_grid_search_clone_and_pickle(blobs):
    X, _ = blobs
    search = GridSearchCV(GaussianMixture(random_state=0),
                          {"n_components": [1, 3], "covariance_type": ["full", "diag"]}, cv=2)
    search.fit(X)
    assert search.best_params_["n_components"] == 3
    gm = search.best_estimator_
    copy = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(copy.predict(X), gm.predict(X))
    assert clone(gm).get_params() == gm.get_params()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_with_y_starts_from_class_statistics(blobs, covariance_type):
    X, labels = blobs
    y = labels * 10 + 1
    gm = GaussianMixture(n_components=7, covariance_type=covariance_type, max_iter=0)
    gm.fit(da.from_array(X, chunks=(400, 4)), da.from_array(y, chunks=300))
    assert gm.n_components == 7
    np.testing.assert_array_equal(gm.classes_, [1, 11, 21])
    # The class statistics are scikit-learn's estimates from one-hot responsibilities.
    reference = SklearnGaussianMixture(3, covariance_type=covariance_type, max_iter=0)
    resp = np.eye(3)[labels]
    reference._initialize(X, resp)
    np.testing.assert_allclose(gm.weights_, np.bincount(labels) / len(labels), rtol=1e-12)
    np.testing.assert_allclose(gm.means_, reference.means_, rtol=1e-12)
    np.testing.assert_allclose(gm.covariances_, reference.covariances_, rtol=1e-10)
    assert set(np.unique(gm.predict(X))) <= {1, 11, 21}
    lazy = gm.predict(da.from_array(X, chunks=(400, 4)))
    np.testing.assert_array_equal(lazy.compute(), gm.predict(X))


def test_fit_with_y_then_em(blobs):
    X, labels = blobs
    gm = GaussianMixture(max_iter=50).fit(X, labels)
    assert gm.converged_ and gm.n_iter_ >= 1
    assert np.mean(gm.predict(X) == labels) > 0.95
    assert np.array_equal(gm.fit_predict(X, labels), gm.predict(X))


@pytest.mark.parametrize("bad_y, match", [
    (lambda n: np.linspace(0, 1, n), "class labels"),
    (lambda n: np.zeros(n - 1, dtype=int), "y has"),
])
def test_bad_y(blobs, bad_y, match):
    X, _ = blobs
    with pytest.raises(ValueError, match=match):
        GaussianMixture().fit(X, bad_y(len(X)))


def test_fit_predict_equals_fit_then_predict(blobs):
    X, _ = blobs
    for max_iter in (1, 3, 100):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = GaussianMixture(3, random_state=1, max_iter=max_iter).fit_predict(X)
            b = GaussianMixture(3, random_state=1, max_iter=max_iter).fit(X).predict(X)
        np.testing.assert_array_equal(a, b)


def test_tol_zero_runs_every_iteration_and_warns(blobs):
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm = GaussianMixture(3, tol=0, max_iter=7, random_state=0).fit(X)
    assert gm.n_iter_ == 7 and not gm.converged_
    assert len(gm.lower_bounds_) == 7 and gm.lower_bounds_[-1] == gm.lower_bound_


def test_max_iter_zero_keeps_the_start(blobs):
    X, _ = blobs
    gm = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    sk = SklearnGaussianMixture(3, max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, sk.means_, rtol=1e-12)
    assert gm.n_iter_ == 0 and gm.lower_bounds_ == [] and gm.lower_bound_ == -np.inf


def test_warm_start_continues(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = GaussianMixture(3, random_state=0, max_iter=6, tol=0).fit(X)
        warm = GaussianMixture(3, random_state=0, max_iter=3, tol=0, warm_start=True).fit(X)
        warm.fit(X)
    np.testing.assert_allclose(warm.means_, full.means_, rtol=1e-10)


@pytest.mark.parametrize("params", ["", "w", "m", "c", "wm", "mc", "wc"])
def test_params_updates_only_the_named_parameters(blobs, params):
    X, _ = blobs
    start = GaussianMixture(3, init_params="random_from_data", random_state=0, max_iter=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, init_params="random_from_data", random_state=0, max_iter=3,
                             params=params).fit(X)
    for letter, name in [("w", "weights_"), ("m", "means_"), ("c", "covariances_")]:
        same = np.allclose(getattr(gm, name), getattr(start, name), rtol=1e-12)
        assert same != (letter in params), name


def test_params_without_means_centres_covariances_on_fixed_means(blobs):
    X, _ = blobs
    means = np.zeros((1, X.shape[1]))
    gm = GaussianMixture(1, means_init=means, params="wc", max_iter=1).fit(X)
    np.testing.assert_allclose(gm.covariances_[0], X.T @ X / len(X) + 1e-6 * np.eye(4),
                               rtol=1e-10)


def test_verbose_prints_iteration_bound_change_and_seconds(blobs, capsys):
    X, _ = blobs
    GaussianMixture(3, random_state=0, verbose=2, verbose_interval=1, max_iter=100).fit(X)
    lines = [line for line in capsys.readouterr().out.splitlines() if "iteration" in line]
    assert lines
    assert re.search(r"iteration 1: lower bound -?\d+\.\d+, change inf, \d+\.\d+ s", lines[0])


@pytest.mark.parametrize("verbose", [1, 2])
def test_verbose_reports_each_iteration_once(blobs, capsys, verbose):
    X, _ = blobs
    gm = GaussianMixture(3, random_state=0, verbose=verbose, verbose_interval=1, tol=0,
                         max_iter=4).fit(X)
    reported = re.findall(r"^\s*[Ii]teration (\d+)\b", capsys.readouterr().out, re.MULTILINE)
    assert reported == [str(iteration) for iteration in range(1, gm.n_iter_ + 1)]


def test_n_init_keeps_the_best(blobs):
    X, _ = blobs
    kwargs = dict(n_components=3, init_params="random_from_data", max_iter=30)
    best = GaussianMixture(n_init=5, random_state=3, **kwargs).fit(da.from_array(X, chunks=500))
    rng = np.random.RandomState(3)
    singles = []
    for _ in range(5):
        indices = rng.choice(len(X), 3, replace=False)
        singles.append(GaussianMixture(means_init=X[indices], **kwargs).fit(X).lower_bound_)
    assert best.lower_bound_ == pytest.approx(max(singles), rel=1e-6)


# ----------------------------------------------------------------- bad input

def assert_unchanged(gm, before):
    """Every fitted attribute of ``gm`` is what ``before`` recorded."""
    after = {k: v for k, v in vars(gm).items() if k.endswith("_")}
    assert before.keys() == after.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value)


def _fitted(X):
    return GaussianMixture(2, random_state=0).fit(X)


@pytest.mark.parametrize("make_bad, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), "NaN"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 7, np.inf, X), "infinity"),
    (lambda X: X[:, 0], "2D"),
    (lambda X: X[:1], "sample"),
    (lambda X: X.astype(str).astype(object) + "x", "numeric|could not convert|dtype"),
])
@pytest.mark.parametrize("as_dask", [False, True])
def test_bad_input_leaves_a_fitted_model_unchanged(blobs, make_bad, match, as_dask):
    X, _ = blobs
    gm = _fitted(X)
    before = {k: np.copy(v) for k, v in vars(gm).items() if k.endswith("_")}
    bad = make_bad(X)
    if as_dask:
        if bad.dtype == object:
            bad = bad.astype(str)
        bad = da.from_array(bad, chunks=200)
    with pytest.raises(ValueError, match=match):
        gm.fit(bad)
    assert_unchanged(gm, before)


def test_fewer_samples_than_components(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
        GaussianMixture(5).fit(da.from_array(X[:4], chunks=2))


def test_feature_count_at_predict(blobs):
    X, _ = blobs
    gm = _fitted(X)
    for bad in (X[:, :3], da.from_array(X[:, :3], chunks=100)):
        with pytest.raises(ValueError, match="3 features"):
            gm.predict(bad)


@pytest.mark.parametrize("kwargs", [
    dict(n_components=0), dict(covariance_type="banana"), dict(tol=-1.0),
    dict(reg_covar=-1.0), dict(max_iter=-1), dict(n_init=0), dict(init_params="x"),
    dict(params="wmz"), dict(split_every=1), dict(verbose_interval=0),
    dict(weights_init=[0.5, 0.6]), dict(means_init=np.zeros((3, 4))),
])
def test_invalid_parameters(blobs, kwargs):
    X, _ = blobs
    with pytest.raises(ValueError):
        GaussianMixture(**{"n_components": 2, **kwargs}).fit(X)


@pytest.mark.parametrize("nan_policy", ["bogus", None])
def test_partial_fit_rejects_an_invalid_nan_policy(blobs, nan_policy):
    """partial_fit validates its parameters before using nan_policy (scikit-learn's error)."""
    X, _ = blobs
    with pytest.raises(ValueError, match="'nan_policy' parameter"):
        GaussianMixture(2, nan_policy=nan_policy).partial_fit(X)


def test_predict_after_an_invalid_nan_policy_is_set_says_so(blobs):
    """A nan_policy set after the fit is checked when predictions use it: a ValueError
    naming the valid policies, the fitted model untouched."""
    X, _ = blobs
    model = GaussianMixture(2, random_state=0).fit(X)
    means = model.means_.copy()
    model.set_params(nan_policy="drop")
    with pytest.raises(ValueError, match="nan_policy must be one of"):
        model.predict(X)
    np.testing.assert_array_equal(model.means_, means)
    np.testing.assert_array_equal(model.set_params(nan_policy="raise").predict(X),
                                  GaussianMixture(2, random_state=0).fit(X).predict(X))


@pytest.mark.parametrize("weights, match", [
    (lambda n: -np.ones(n), "Negative"),
    (lambda n: np.full(n, np.nan), "NaN"),
    (lambda n: np.ones(n - 1), "shape"),
    (lambda n: np.zeros(n), "zero"),
])
def test_bad_sample_weight(blobs, weights, match):
    X, _ = blobs
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(X, sample_weight=weights(len(X)))


def test_negative_dask_sample_weight_is_found_in_the_pass(blobs):
    X, _ = blobs
    weights = np.ones(len(X))
    weights[1000] = -1
    with pytest.raises(ValueError, match="Negative"):
        GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=300),
                                                sample_weight=da.from_array(weights, chunks=300))


def test_ill_defined_covariance_names_component_and_iteration():
    # The second feature is 0 in every row: each component's scatter is exactly singular
    # there at the first M-step, whatever the machine's rounding (rows on the diagonal
    # x1 = x2 left the Cholesky factor's last pivot to rounding, 0 or 1e-17).
    X = np.column_stack([np.repeat([0.0, 1.0], 50), np.zeros(100)])
    start = dict(weights_init=[0.5, 0.5], means_init=[[0, 0], [1, 0]],
                 precisions_init=np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.* \(component 0, "
                                         r"iteration 1\)"):
        GaussianMixture(2, reg_covar=0, **start).fit(X)


@pytest.mark.parametrize("bad_fit", [
    lambda gm, X, y: gm.fit(X, np.linspace(0, 1, len(X))),
    lambda gm, X, y: gm.fit(X, y[:-1]),
    lambda gm, X, y: gm.fit(X, sample_weight=-np.ones(len(X))),
    lambda gm, X, y: gm.fit(da.from_array(X, chunks=300),
                            sample_weight=da.from_array(np.full(len(X), np.nan), chunks=300)),
    lambda gm, X, y: gm.set_params(covariance_type="banana").fit(X),
    lambda gm, X, y: gm.set_params(n_components=len(X) + 1).fit(da.from_array(X, chunks=300)),
    lambda gm, X, y: gm.fit(X[:0]),
    lambda gm, X, y: gm.fit(da.zeros((0, X.shape[1]), chunks=10)),
    lambda gm, X, y: gm.set_params(reg_covar=0, means_init=X[:2] * 0 + 1e9).fit(X[:, :1] * 0),
], ids=["continuous y", "y length", "negative weights", "NaN dask weights", "parameter",
        "too few samples", "empty numpy", "empty dask", "ill-defined covariance"])
def test_every_failed_fit_leaves_the_model_unchanged(blobs, bad_fit):
    X, labels = blobs
    gm = GaussianMixture(2, random_state=0).fit(X, labels % 2)
    before = {k: np.copy(v) for k, v in vars(gm).items() if k.endswith("_")}
    with pytest.raises(ValueError):
        bad_fit(gm, X, labels)
    assert_unchanged(gm, before)


def test_warm_start_with_y_after_a_fit_without_y(blobs):
    X, labels = blobs
    gm = GaussianMixture(3, warm_start=True, random_state=0).fit(X)
    with pytest.raises(ValueError, match="same classes"):
        gm.fit(X, labels)


def test_numpy_X_with_dask_sample_weight(blobs):
    X, _ = blobs
    weights = np.random.default_rng(0).integers(1, 3, len(X)).astype(float)
    kwargs = dict(n_components=3, random_state=0, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = GaussianMixture(**kwargs).fit(X, sample_weight=weights)
        fit = GaussianMixture(**kwargs).fit(X, sample_weight=da.from_array(weights, chunks=400))
    np.testing.assert_allclose(fit.means_, expected.means_, rtol=1e-9)


def test_dask_sample_weight_summing_to_zero(blobs):
    X, _ = blobs
    gm = GaussianMixture(3, random_state=0, init_params="random_from_data")
    with pytest.raises(ValueError, match="zero"):
        gm.fit(da.from_array(X, chunks=400), sample_weight=da.zeros(len(X), chunks=400))
