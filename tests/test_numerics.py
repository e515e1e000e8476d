"""Numbers that must hold on any machine: float32 input, degenerate fits, far-apart data."""

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from daskgmm import GaussianMixture

from .conftest import COVARIANCE_TYPES, make_mixture

PARAMETERS = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


def _fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


def _variances(fit):
    """Every variance of a fit: the covariance diagonals, or the variances themselves."""
    if fit.covariance_type in ("full", "tied"):
        return np.diagonal(fit.covariances_, axis1=-2, axis2=-1)
    return fit.covariances_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_two_far_rows_keep_the_regularisation(covariance_type):
    """scikit-learn's issue #30382: two float32 rows 9999 apart. Each component holds one
    row, so every variance is reg_covar; raw float32 moments give about -1 there."""
    X = np.array([[9999.0], [0.0]], dtype=np.float32)
    fit = _fit(GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.1,
                               random_state=0), X)
    np.testing.assert_allclose(_variances(fit), 0.1, rtol=1e-6)
    fit_dask = _fit(GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.1,
                                    random_state=0, init_params="random_from_data"),
                    da.from_array(X, chunks=1))
    assert (_variances(fit_dask) > 0).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_far_from_origin_equals_the_float64_fit(covariance_type):
    """float32 rows at an offset of 1e4 with a spread of 1e-2 (a float32 spacing of 1e-3
    there: the data themselves are coarse). The fit equals the float64 fit of the same
    (rounded) rows to one float32 rounding of the attributes (1.2e-7) where all arithmetic
    is float64, and to 1e-5 for ``full``, whose whitening runs in float32 (distances to
    6e-8 relative, changing responsibilities by about 1e-6 where components overlap). No
    variance is ever negative, zero or non-finite."""
    X, _ = make_mixture(n_samples=3000, n_features=3, n_components=3, seed=4)
    X32 = (X * 1e-2 + 1e4).astype(np.float32)
    X64 = X32.astype(np.float64)
    start = _fit(GaussianMixture(3, covariance_type=covariance_type, max_iter=1,
                                 random_state=0), X64)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=20, tol=0,
                  weights_init=start.weights_, means_init=start.means_,
                  precisions_init=start.precisions_)
    single = _fit(GaussianMixture(**kwargs), X32)
    double = _fit(GaussianMixture(**kwargs), X64)
    one_rounding = np.finfo(np.float32).eps
    rtol = 1e-5 if covariance_type == "full" else one_rounding
    for name in PARAMETERS:
        np.testing.assert_allclose(np.asarray(getattr(single, name), np.float64),
                                   getattr(double, name), rtol=rtol, atol=0, err_msg=name)
    variances = _variances(single)
    assert np.isfinite(variances).all() and (variances > 0).all()
    chunked = _fit(GaussianMixture(**kwargs), da.from_array(X32, chunks=700))
    for name in PARAMETERS:
        np.testing.assert_allclose(getattr(chunked, name), getattr(single, name),
                                   rtol=one_rounding, err_msg=name)


def test_a_component_collapsed_on_one_row_completes_as_in_scikit_learn():
    """scikit-learn's test for its issue #18216: reg_covar=0 and two components started
    with precision 1e6 collapse on one row each in the first iteration. Their exact
    scatter is 0, below the spacing of floats at the mean, which is what daskgmm's variance
    becomes; the fit completes, not converged, with its parameters set."""
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                                204.78596008931834, 15.867423501783637, 85.4595728389735])
    weights_init = np.array([1, 1, 2, 2, 21, 3]) / 30
    kwargs = dict(n_components=6, covariance_type="spherical", reg_covar=0,
                  means_init=means_init, weights_init=weights_init,
                  precisions_init=precisions_init, max_iter=1)
    for X_in in (X, da.from_array(X, chunks=7)):
        fit = _fit(GaussianMixture(**kwargs), X_in)
        assert not fit.converged_
        for name in PARAMETERS + ["n_iter_", "lower_bound_", "lower_bounds_"]:
            assert hasattr(fit, name)
        assert np.isfinite(fit.covariances_).all() and (fit.covariances_ > 0).all()
    theirs = _fit(SklearnGaussianMixture(**kwargs), X)
    # The components that did not collapse agree with scikit-learn's.
    np.testing.assert_allclose(fit.covariances_[2:], theirs.covariances_[2:], rtol=1e-6)
    np.testing.assert_allclose(fit.means_, theirs.means_, rtol=1e-6)


def test_well_separated_components_give_scikit_learns_fit():
    """Components hundreds of spreads apart: responsibilities below exp(-500) are set to 0
    without calling exp (no subnormals); the fit still equals scikit-learn's."""
    X, _ = make_mixture(n_samples=3000, n_features=4, n_components=4, seed=6, separation=400.0)
    start = _fit(SklearnGaussianMixture(4, max_iter=1, random_state=0), X)
    kwargs = dict(n_components=4, max_iter=10, tol=0, weights_init=start.weights_,
                  means_init=start.means_, precisions_init=start.precisions_)
    ours, theirs = _fit(GaussianMixture(**kwargs), X), _fit(SklearnGaussianMixture(**kwargs), X)
    for name in PARAMETERS:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-9,
                                   err_msg=name)
    np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_gives_float32_attributes_as_scikit_learn(covariance_type):
    """scikit-learn keeps float32: its fitted parameters, lower bound, scores and
    probabilities are float32 for float32 input (and float32 starts: float64 ones turn its
    arithmetic float64). So are daskgmm's, whatever the starts, on NumPy and Dask input, and
    they agree with scikit-learn's float32 fit from the same start to its precision."""
    X, _ = make_mixture(n_samples=2000, n_features=3, n_components=3, seed=8)
    X32 = X.astype(np.float32)
    start = _fit(SklearnGaussianMixture(3, covariance_type=covariance_type, max_iter=1,
                                        random_state=0), X)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=5, tol=0,
                  weights_init=start.weights_.astype(np.float32),
                  means_init=start.means_.astype(np.float32),
                  precisions_init=start.precisions_.astype(np.float32))
    theirs = _fit(SklearnGaussianMixture(**kwargs), X32)
    for X_in in (X32, da.from_array(X32, chunks=500)):
        ours = _fit(GaussianMixture(**kwargs), X_in)
        for name in PARAMETERS + ["precisions_"]:
            assert getattr(ours, name).dtype == getattr(theirs, name).dtype == np.float32, name
            # scikit-learn's float32 arithmetic is good to about 1e-4 here.
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-3,
                                       err_msg=name)
        assert isinstance(ours.lower_bound_, np.float32)
        assert ours.score_samples(X_in).dtype == np.float32
        assert ours.predict_proba(X_in).dtype == np.float32
    assert ours.score_samples(X).dtype == np.float64
