"""The compiled per-block kernels against naive formulas written out here.

The references: log-densities from scipy.stats, responsibilities by an explicit
softmax, and the statistics as plain two-pass sums in float64 on the rows
*before* they are moved far from the origin (moving by 1e6 and back is exact for
these values), so that any digits a kernel loses there show.
"""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from daskgmm import _kernels
from daskgmm._covariance import covariances_from_precision_cholesky, precision_cholesky

from .conftest import COVARIANCE_TYPES

# float32 rows' E-step (whitening, log-densities, responsibilities) runs in
# float32, as scikit-learn's does: distances to 6e-8 relative change the
# responsibilities by about 1e-6 where components overlap, so statistics of
# float32 rows hold to this, whatever the type; float64 rows to rounding.
SINGLE_RTOL = 1e-5


def _covariance_matrices(covariances, covariance_type, n_components, n_features):
    """(K, D, D) covariance matrices of every component."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def _random_parameters(rng, n_components, n_features, covariance_type, spread=1.0,
                       separation=4.0):
    """Weights, means (about 0) and prec_chol of a random mixture."""
    weights = rng.uniform(0.5, 1.5, n_components)
    weights /= weights.sum()
    means = rng.normal(scale=separation * spread, size=(n_components, n_features))
    if covariance_type == "full":
        a = rng.normal(size=(n_components, n_features, n_features))
        cov = (a @ a.transpose(0, 2, 1) / n_features + np.eye(n_features)) * spread**2
    elif covariance_type == "tied":
        a = rng.normal(size=(n_features, n_features))
        cov = (a @ a.T / n_features + np.eye(n_features)) * spread**2
    elif covariance_type == "diag":
        cov = rng.uniform(0.5, 2.0, (n_components, n_features)) * spread**2
    else:
        cov = rng.uniform(0.5, 2.0, n_components) * spread**2
    return weights, means, precision_cholesky(cov, covariance_type)


def _sample(rng, n_rows, weights, means, prec_chol, covariance_type):
    """Rows drawn from the mixture (about the origin)."""
    n_components, n_features = means.shape
    cov = _covariance_matrices(covariances_from_precision_cholesky(prec_chol, covariance_type),
                               covariance_type, n_components, n_features)
    labels = rng.choice(n_components, n_rows, p=weights)
    rows = np.array([rng.multivariate_normal(means[k], cov[k]) for k in labels]).reshape(
        n_rows, n_features)
    return _on_grid(rows)


def _on_grid(values):
    """``values`` rounded to multiples of 2^-20: then adding and removing 1e6 is exact."""
    return np.round(values * 2.0**20) / 2.0**20


def _naive_log_prob(X, weights, means, prec_chol, covariance_type, log_weights=None):
    n_components, n_features = means.shape
    cov = _covariance_matrices(covariances_from_precision_cholesky(prec_chol, covariance_type),
                               covariance_type, n_components, n_features)
    constants = np.log(weights) if log_weights is None else log_weights
    return np.stack([multivariate_normal(means[k], cov[k]).logpdf(X).reshape(-1) + constants[k]
                     for k in range(n_components)], axis=1)


def _naive_statistics(X, sample_weight, resp, covariance_type):
    """nk, block means and moments about them, by explicit two-pass sums."""
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    r = resp * w[:, None]
    nk = r.sum(axis=0)
    means = (r.T @ X) / np.where(nk > 0, nk, 1)[:, None]
    n_components, n_features = means.shape
    full = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        d = X - means[k]
        full[k] = (r[:, k, None] * d).T @ d
    m2 = {"full": full, "tied": full.sum(axis=0),
          "diag": np.diagonal(full, axis1=1, axis2=2),
          "spherical": np.trace(full, axis1=1, axis2=2)}[covariance_type]
    return nk, means, m2


def _naive_em(X, sample_weight, weights, means, prec_chol, covariance_type, log_weights=None):
    log_prob = _naive_log_prob(X, weights, means, prec_chol, covariance_type, log_weights)
    norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - norm[:, None])
    w = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        r_log_r = np.where(resp > 0, resp * np.log(resp), 0.0).sum(axis=1)
    return (*_naive_statistics(X, sample_weight, resp, covariance_type),
            np.dot(norm, w), w.sum(), np.dot(r_log_r, w))


def _assert_stats(stats, reference, shift, means_ref, rtol, atol_m2=0.0, atol_nk=1e-300):
    nk, means, m2, loglik, weight, entropy = reference
    np.testing.assert_allclose(stats.nk, nk, rtol=rtol, atol=atol_nk)
    # The kernel's means are relative to means_ref, shifted far from the origin. A mean is a
    # ratio of first moment to weight: where the weight is below atol_nk, both sides are
    # scaled by nk / atol_nk (its first moment, compared as closely as its weight).
    has_weight = nk > 0
    scale = np.minimum(1.0, nk / atol_nk)[:, None]
    np.testing.assert_allclose((scale * ((means_ref - shift) + stats.mean))[has_weight],
                               (scale * means)[has_weight], rtol=rtol,
                               atol=rtol * np.abs(means).max())
    assert (stats.mean[~has_weight] == 0).all()
    scale = np.abs(m2).max()
    np.testing.assert_allclose(stats.m2, m2, rtol=rtol, atol=rtol * scale + atol_m2)
    assert stats.loglik == pytest.approx(loglik, rel=rtol)
    assert stats.weight == pytest.approx(weight, rel=1e-13)
    if entropy is not None:
        assert stats.entropy == pytest.approx(entropy, rel=rtol, abs=rtol * nk.sum())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shift", [0.0, 1e6])
@pytest.mark.parametrize("weighted", [False, True])
def test_em_statistics_equal_the_naive_formulas(covariance_type, shift, weighted):
    rng = np.random.default_rng(1)
    weights, means, prec_chol = _random_parameters(rng, 4, 5, covariance_type)
    _check_em_statistics(rng, 3000, weighted, weights, _on_grid(means), prec_chol,
                         covariance_type, shift, log_weight_step=0.3)


def _check_em_statistics(rng, n_rows, weighted, weights, means, prec_chol, covariance_type,
                         shift, log_weight_step):
    """em_statistics of rows drawn from the mixture, moved by ``shift``, against the naive
    formulas (to 1e-9), with log weights decreasing by ``log_weight_step``."""
    X = _sample(rng, n_rows, weights, means, prec_chol, covariance_type)
    sample_weight = rng.uniform(0, 3, len(X)) if weighted else None
    log_weights = np.log(weights) - log_weight_step * np.arange(len(weights))
    reference = _naive_em(X, sample_weight, weights, means, prec_chol, covariance_type,
                          log_weights)
    stats = _kernels.em_statistics(X + shift, sample_weight, weights, means + shift, prec_chol,
                                   covariance_type, log_weights, with_entropy=True)
    _assert_stats(stats, reference, shift,
                  _kernels.reference_means(weights, means + shift), rtol=1e-9)
    return X


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_clusters_far_apart_far_from_the_origin_are_exact(covariance_type):
    """Components 1e4 spreads apart at an offset of 1e6: moments to 1e-12."""
    rng = np.random.default_rng(2)
    weights, means, prec_chol = _random_parameters(rng, 3, 4, covariance_type,
                                                   separation=1e4)
    X = _sample(rng, 2000, weights, means, prec_chol, covariance_type)
    # Means a little off the data's, so that the statistics' offsets are not zero.
    start = _on_grid(means + rng.normal(scale=0.1, size=means.shape))
    reference = _naive_em(X, None, weights, start, prec_chol, covariance_type)
    stats = _kernels.em_statistics(X + 1e6, None, weights, start + 1e6, prec_chol,
                                   covariance_type)
    _assert_stats(stats, reference[:5] + (None,), 1e6,
                  _kernels.reference_means(weights, start + 1e6), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_rows_equal_the_float64_rows(covariance_type):
    """float32 rows give the statistics of the same rows in float64, to float32's precision
    (their E-step is float32, the centring and the moments float64)."""
    rng = np.random.default_rng(3)
    weights, means, prec_chol = _random_parameters(rng, 3, 6, covariance_type, spread=1e-2)
    X32 = (_sample(rng, 2000, weights, means, prec_chol, covariance_type) + 1e4).astype(
        np.float32)
    X64 = X32.astype(np.float64)
    single = _kernels.em_statistics(X32, None, weights, means + 1e4, prec_chol, covariance_type)
    double = _kernels.em_statistics(X64, None, weights, means + 1e4, prec_chol, covariance_type)
    for name in ("nk", "mean", "m2", "loglik"):
        np.testing.assert_allclose(getattr(single, name), getattr(double, name),
                                   rtol=SINGLE_RTOL,
                                   atol=SINGLE_RTOL * np.abs(getattr(double, name)).max(),
                                   err_msg=name)
    variances = (np.diagonal(single.m2, axis1=-2, axis2=-1)
                 if covariance_type in ("full", "tied") else single.m2)
    assert (variances > 0).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("separation", [4.0, 1e3])
def test_float32_rows_far_from_the_origin_equal_the_naive_formulas(covariance_type, separation):
    """float32 rows at an offset of 1e4 (a float32 spacing of 1e-3 there), weighted, with
    overlapping or far-apart components: the statistics, log-likelihood and entropy of
    their float32 E-step equal the naive float64 formulas on the same (rounded) rows to
    float32's precision, and no variance is zero or negative."""
    rng = np.random.default_rng(9)
    weights, means, prec_chol = _random_parameters(rng, 4, 5, covariance_type,
                                                   separation=separation)
    means = _on_grid(means)
    X = _sample(rng, 3000, weights, means, prec_chol, covariance_type)
    X32 = (X + 1e4).astype(np.float32)
    X = X32.astype(np.float64) - 1e4  # exact: the rows as float32 holds them
    sample_weight = rng.uniform(0, 3, len(X))
    reference = _naive_em(X, sample_weight, weights, means, prec_chol, covariance_type)
    stats = _kernels.em_statistics(X32, sample_weight, weights, means + 1e4, prec_chol,
                                   covariance_type, with_entropy=True)
    _assert_stats(stats, reference, 1e4, _kernels.reference_means(weights, means + 1e4),
                  rtol=SINGLE_RTOL)
    variances = (np.diagonal(stats.m2, axis1=-2, axis2=-1)
                 if covariance_type in ("full", "tied") else stats.m2)
    assert (variances > 0).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_estimate_weighted_log_prob_equals_scipy(covariance_type, dtype):
    rng = np.random.default_rng(4)
    weights, means, prec_chol = _random_parameters(rng, 5, 3, covariance_type)
    X = (_sample(rng, 700, weights, means, prec_chol, covariance_type) + 100).astype(dtype)
    ours = _kernels.estimate_weighted_log_prob(X, weights, means + 100, prec_chol,
                                               covariance_type)
    expected = _naive_log_prob(X.astype(np.float64) - 100, weights, means, prec_chol,
                               covariance_type)
    np.testing.assert_allclose(ours, expected, rtol=SINGLE_RTOL if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", [0.0, 1e6])
def test_resp_statistics_equal_the_naive_formulas(covariance_type, dtype, shift):
    if dtype == np.float32 and shift:
        pytest.skip("float32 has no digits left for these rows at 1e6")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 4)).astype(dtype).astype(np.float64)
    resp = rng.random((500, 3))
    resp /= resp.sum(axis=1, keepdims=True)
    sample_weight = rng.uniform(0, 2, 500)
    nk, means, m2 = _naive_statistics(X, sample_weight, resp, covariance_type)
    stats = _kernels.resp_statistics((X + shift).astype(dtype), sample_weight, resp,
                                     covariance_type)
    np.testing.assert_allclose(stats.nk, nk, rtol=1e-12)
    np.testing.assert_allclose(stats.mean - shift, means, atol=1e-9)
    np.testing.assert_allclose(stats.m2, m2, rtol=1e-9)
    assert stats.weight == pytest.approx(sample_weight.sum())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_empty_blocks_and_blocks_of_one_row(covariance_type, dtype):
    rng = np.random.default_rng(6)
    weights, means, prec_chol = _random_parameters(rng, 3, 2, covariance_type)
    empty = _kernels.em_statistics(np.empty((0, 2), dtype), None, weights, means, prec_chol,
                                   covariance_type)
    assert (empty.nk == 0).all() and empty.loglik == 0 and empty.weight == 0
    assert (empty.m2 == 0).all() and (empty.mean == 0).all()
    assert _kernels.estimate_weighted_log_prob(np.empty((0, 2), dtype), weights, means,
                                               prec_chol, covariance_type).shape == (0, 3)
    row = np.array([[0.3, -1.2]], dtype)
    one = _kernels.em_statistics(row, np.array([2.0]), weights, means, prec_chol,
                                 covariance_type)
    reference = _naive_em(row.astype(np.float64), np.array([2.0]), weights, means, prec_chol,
                          covariance_type)
    rtol = SINGLE_RTOL if dtype == np.float32 else 1e-12
    _assert_stats(one, reference[:5] + (None,), 0.0, _kernels.reference_means(weights, means),
                  rtol=rtol, atol_m2=1e-12)
    resp = _kernels.resp_statistics(row, None, np.array([[0.25, 0.75, 0.0]]), covariance_type)
    np.testing.assert_allclose(resp.nk, [0.25, 0.75, 0.0])
    np.testing.assert_allclose(resp.mean[:2], np.repeat(row, 2, axis=0), rtol=1e-7)
    assert (resp.m2 == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_responsibilities_below_the_floor_are_zero(dtype):
    """A row 1e3 spreads from a component gets exactly 0 there, not a subnormal."""
    weights = np.array([0.5, 0.5])
    means = np.array([[0.0], [1e3]])
    prec_chol = np.ones(2)
    stats = _kernels.em_statistics(np.array([[0.0], [1e3]], dtype), None, weights, means,
                                   prec_chol, "spherical")
    np.testing.assert_array_equal(stats.nk, [1.0, 1.0])
    np.testing.assert_array_equal(stats.m2, [0.0, 0.0])


def test_non_finite_rows_raise():
    weights, means, prec_chol = np.array([1.0]), np.zeros((1, 2)), np.ones((1, 2))
    with pytest.raises(ValueError, match="NaN"):
        _kernels.em_statistics(np.array([[0.0, np.nan]]), None, weights, means, prec_chol,
                               "diag")


@settings(max_examples=25, deadline=None)
@given(covariance_type=st.sampled_from(COVARIANCE_TYPES),
       n_rows=st.integers(0, 70), n_features=st.integers(1, 7), n_components=st.integers(1, 5),
       log_shift=st.integers(0, 7), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float64, np.float32]))
# Components with almost no weight (nk 8e-36, 4e-37) whose float32 weight and mean were 2e-4
# and 8e-4 apart from the float64 reference's, relative: see the tolerance below.
@example(covariance_type="diag", n_rows=8, n_features=5, n_components=4, log_shift=0, seed=2322,
         dtype=np.float32)
@example(covariance_type="spherical", n_rows=4, n_features=4, n_components=3, log_shift=0,
         seed=658, dtype=np.float32)
def test_random_shapes_and_offsets(covariance_type, n_rows, n_features, n_components,
                                   log_shift, seed, dtype):
    rng = np.random.default_rng(seed)
    weights, means, prec_chol = _random_parameters(rng, n_components, n_features,
                                                   covariance_type)
    means = _on_grid(means)
    X = _sample(rng, n_rows, weights, means, prec_chol, covariance_type)
    shift = dtype(10.0**log_shift) if dtype == np.float64 else dtype(0)
    X = X.astype(dtype).astype(np.float64)
    stats = _kernels.em_statistics((X + shift).astype(dtype), None, weights, means + shift,
                                   prec_chol, covariance_type, np.log(weights), with_entropy=True)
    reference = _naive_em(X, None, weights, means, prec_chol, covariance_type, np.log(weights))
    rtol = 10 * SINGLE_RTOL if dtype == np.float32 else 1e-8
    # float32 log-densities carry an absolute error of about eps32 |log p|, so a responsibility
    # far below 1 (e^-80) has a relative error of that size (2e-4 and 8e-4 in the examples
    # above), not rtol: float32 weights (and first moments) are compared relative to the total
    # weight, as the entropy is; float64 ones relative to themselves.
    atol_nk = rtol * max(1, n_rows) if dtype == np.float32 else 1e-300
    _assert_stats(stats, reference, shift, _kernels.reference_means(weights, means + shift),
                  rtol=rtol, atol_m2=1e-9 * max(1, n_rows), atol_nk=atol_nk)


def test_exp_is_within_an_ulp_of_numpys():
    from daskgmm import _fused

    s = np.concatenate([-np.linspace(0, -_fused.LOG_RESP_FLOOR, 100001), [-1e-300, -0.0]])
    e = np.array([_fused._exp(value) for value in s])
    assert (np.abs(e - np.exp(s)) <= np.spacing(np.exp(s))).all()


def test_single_exp_is_within_an_ulp_of_the_rounded_exp():
    """float32 rows' exp: within one float32 spacing of the exact exp rounded to float32,
    down to its floor, where it is still a normal number."""
    from daskgmm import _fused

    floor = float(_fused.LOG_RESP_FLOOR_SINGLE)
    s = np.concatenate([-np.linspace(0, -floor, 100001), [-1e-30, -0.0]]).astype(np.float32)
    e = np.array([_fused._exp_single(value) for value in s], dtype=np.float32)
    exact = np.exp(s.astype(np.float64)).astype(np.float32)
    assert (np.abs(e - exact) <= np.spacing(exact)).all()
    assert e.min() >= np.finfo(np.float32).tiny


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_component_emptied_by_the_float32_floor_takes_the_float64_sweep(dtype):
    """A component 13-31 spreads from every row (log ratio -87 to -500): float32's exp
    floor would give it no weight where float64's keeps some, so the chunk is swept again
    in float64 and keeps it, and a float32 fit does not empty it where a float64 fit
    does not."""
    weights = np.array([0.5, 0.5])
    means = np.array([[0.0], [20.0]])
    prec_chol = np.ones(2)
    X = np.array([[0.0], [1.0], [-1.0]], dtype)
    stats = _kernels.em_statistics(X, None, weights, means, prec_chol, "spherical")
    reference = _naive_em(X.astype(np.float64), None, weights, means, prec_chol, "spherical")
    assert 0 < reference[0][1] < 1e-40
    np.testing.assert_allclose(stats.nk, reference[0], rtol=SINGLE_RTOL)


def test_numba_is_imported_on_the_first_fit_only():
    code = ("import sys, numpy as np, daskgmm\n"
            "assert 'numba' not in sys.modules\n"
            "daskgmm.GaussianMixture(2, max_iter=1).fit(np.arange(20.0).reshape(10, 2))\n"
            "assert 'numba' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _products_dtype(weights, means, prec_chol, covariance_type, dtype=np.float64):
    """The precision of the E-step's BLAS products of ``diag`` / ``spherical`` statistics of
    these parameters for rows of ``dtype``, or None where the exact sweep runs."""
    from daskgmm import _fused

    centred = means - (weights @ means) / weights.sum()
    products = _fused.KERNELS[covariance_type].parameters(centred, prec_chol, dtype)[2]
    return products.dtype if products.size else None


# K and D at which ``diag`` and ``spherical`` take the BLAS products.
PRODUCT_SHAPES = {"diag": (16, 64), "spherical": (32, 64)}


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("shift", [0.0, 1e6])
def test_blas_products_equal_the_naive_formulas(covariance_type, shift):
    """Many components of many features, a few spreads apart: the E-step and the moments
    are BLAS products about the centre, and equal the naive two-pass sums."""
    rng = np.random.default_rng(7)
    n_components, n_features = PRODUCT_SHAPES[covariance_type]
    weights, means, prec_chol = _random_parameters(rng, n_components, n_features,
                                                   covariance_type, separation=0.5)
    means = _on_grid(means)
    assert _products_dtype(weights, means + shift, prec_chol, covariance_type) == np.float64
    X = _check_em_statistics(rng, 600, True, weights, means, prec_chol, covariance_type,
                             shift, log_weight_step=0.01)
    ours = _kernels.estimate_weighted_log_prob(X + shift, weights, means + shift, prec_chol,
                                               covariance_type)
    np.testing.assert_allclose(ours, _naive_log_prob(X, weights, means, prec_chol,
                                                     covariance_type), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_far_apart_clusters_take_the_exact_sweep(covariance_type):
    """The same shapes with components 1e4 spreads apart at an offset of 1e6: expanding
    the squares would lose 8 digits, so the exact sweep runs, and the moments hold to
    1e-12."""
    rng = np.random.default_rng(8)
    n_components, n_features = PRODUCT_SHAPES[covariance_type]
    weights, means, prec_chol = _random_parameters(rng, n_components, n_features,
                                                   covariance_type, separation=1e4)
    X = _sample(rng, 600, weights, means, prec_chol, covariance_type)
    start = _on_grid(means + rng.normal(scale=0.1, size=means.shape))
    assert _products_dtype(weights, start + 1e6, prec_chol, covariance_type) is None
    reference = _naive_em(X, None, weights, start, prec_chol, covariance_type)
    stats = _kernels.em_statistics(X + 1e6, None, weights, start + 1e6, prec_chol,
                                   covariance_type)
    _assert_stats(stats, reference[:5] + (None,), 1e6,
                  _kernels.reference_means(weights, start + 1e6), rtol=1e-12)


def _check_float32_products(rng, n_components, n_features, covariance_type, separation,
                            shift):
    """float32 rows of a mixture with spread 100 moved by ``shift`` (float32's spacing
    there is below 0.07), weighted: statistics, log-likelihood, entropy and
    log-densities equal the naive float64 formulas on the same (rounded) rows to
    float32's precision, with the E-step's products in float32."""
    weights, means, prec_chol = _random_parameters(rng, n_components, n_features,
                                                   covariance_type, spread=100.0,
                                                   separation=separation)
    means = _on_grid(means)
    assert _products_dtype(weights, means + shift, prec_chol, covariance_type,
                           np.float32) == np.float32
    X32 = (_sample(rng, 600, weights, means, prec_chol, covariance_type) + shift).astype(
        np.float32)
    X = X32.astype(np.float64) - shift  # exact: the rows as float32 holds them
    sample_weight = rng.uniform(0, 3, len(X))
    reference = _naive_em(X, sample_weight, weights, means, prec_chol, covariance_type)
    stats = _kernels.em_statistics(X32, sample_weight, weights, means + shift, prec_chol,
                                   covariance_type, with_entropy=True)
    _assert_stats(stats, reference, shift, _kernels.reference_means(weights, means + shift),
                  rtol=SINGLE_RTOL)
    ours = _kernels.estimate_weighted_log_prob(X32, weights, means + shift, prec_chol,
                                               covariance_type)
    np.testing.assert_allclose(ours, _naive_log_prob(X, weights, means, prec_chol,
                                                     covariance_type), rtol=SINGLE_RTOL)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("shift", [1e4, 1e6])
def test_float32_blas_products_equal_the_naive_formulas(covariance_type, shift):
    """float32 rows with means a few spreads from the centre: the E-step is a float32 BLAS
    product about it (the moments float64 products), to float32's precision."""
    n_components, n_features = PRODUCT_SHAPES[covariance_type]
    _check_float32_products(np.random.default_rng(10), n_components, n_features,
                            covariance_type, 1.0, shift)


@pytest.mark.parametrize("dtype, shift", [(np.float64, 0.0), (np.float64, 1e6),
                                          (np.float32, 1e4)])
def test_far_components_take_the_exact_sums_beside_the_products(dtype, shift):
    """Two of 16 components with a feature of a hundredth of the others' spread, so that
    their means lie hundreds of their standard deviations from the centre: they take the
    exact sums, the others the BLAS products, and the statistics equal the naive formulas
    (float64 to 1e-9, float32 to float32's precision)."""
    rng = np.random.default_rng(11)
    n_components, n_features = PRODUCT_SHAPES["diag"]
    weights, means, prec_chol = _random_parameters(rng, n_components, n_features, "diag",
                                                   separation=0.5)
    prec_chol[:2, 0] *= 100.0
    means = _on_grid(means)
    from daskgmm import _fused

    centred = means - (weights @ means) / weights.sum()
    *_, products, far = _fused.KERNELS["diag"].parameters(centred, prec_chol, dtype)
    assert products.dtype == dtype and products.size and list(far) == [0, 1]
    X = _sample(rng, 600, weights, means, prec_chol, "diag")
    rows = (X + shift).astype(dtype)
    X = rows.astype(np.float64) - shift  # exact: the rows as ``dtype`` holds them
    sample_weight = rng.uniform(0, 3, len(X))
    reference = _naive_em(X, sample_weight, weights, means, prec_chol, "diag")
    stats = _kernels.em_statistics(rows, sample_weight, weights, means + shift, prec_chol,
                                   "diag", with_entropy=True)
    rtol = SINGLE_RTOL if dtype == np.float32 else 1e-9
    _assert_stats(stats, reference, shift, _kernels.reference_means(weights, means + shift),
                  rtol=rtol)
    ours = _kernels.estimate_weighted_log_prob(rows, weights, means + shift, prec_chol, "diag")
    np.testing.assert_allclose(ours, _naive_log_prob(X, weights, means, prec_chol, "diag"),
                               rtol=rtol)


@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5, 7, 8, 9, 16, 19])
def test_upper_products_equal_the_naive_sums(n_features):
    """The tiled sums of a b^T: every entry on and above the diagonal equals the plain
    sum over the first n_rows columns (rows far from the origin), the strict lower
    triangle and the columns past n_rows untouched."""
    from daskgmm import _fused

    rng = np.random.default_rng(12)
    n_rows = 37
    a = rng.normal(size=(n_features, n_rows + 5)) + 1e6
    b = rng.normal(size=(n_features, n_rows + 5)) - 1e6
    out = rng.normal(size=(n_features, n_features))
    expected = out.copy()
    for i in range(n_features):
        for j in range(i, n_features):
            expected[i, j] += sum(a[i, n] * b[j, n] for n in range(n_rows))
    _fused._add_upper_products(a, b, n_rows, out)
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=0)


def test_full_split_whitening_equals_the_naive_formulas():
    """``full`` at 33 features whitens in three products that skip the zero block of its
    triangular factors: statistics at an offset of 1e6 to 1e-9, and log-densities of
    float64 and float32 rows (offset 100) as scipy's."""
    from daskgmm import _fused

    rng = np.random.default_rng(13)
    weights, means, prec_chol = _random_parameters(rng, 3, 33, "full")
    leading, _, trailing = _fused.KERNELS["full"].parameters(means, prec_chol, np.float64)
    assert leading.shape[1:] == (16, 16) and trailing.shape[1:] == (17, 17)
    _check_em_statistics(rng, 700, True, weights, _on_grid(means), prec_chol, "full", 1e6,
                         log_weight_step=0.3)
    X = _sample(rng, 300, weights, means, prec_chol, "full")
    for dtype, rtol in [(np.float64, 1e-9), (np.float32, SINGLE_RTOL)]:
        rows = (X + 100).astype(dtype)
        expected = _naive_log_prob(rows.astype(np.float64) - 100, weights, means, prec_chol,
                                   "full")
        ours = _kernels.estimate_weighted_log_prob(rows, weights, means + 100, prec_chol, "full")
        np.testing.assert_allclose(ours, expected, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_full_split_whitening_far_apart_far_from_the_origin(dtype):
    """Split whitening (36 features), components 1e3 spreads apart: float64 rows at an
    offset of 1e6 hold the moments to 1e-12, float32 rows at 1e4 to float32's precision."""
    rng = np.random.default_rng(14)
    weights, means, prec_chol = _random_parameters(rng, 3, 36, "full", separation=1e3)
    shift = 1e6 if dtype == np.float64 else 1e4
    X = _sample(rng, 900, weights, means, prec_chol, "full")
    start = _on_grid(means + rng.normal(scale=0.1, size=means.shape))
    rows = (X + shift).astype(dtype)
    X = rows.astype(np.float64) - shift  # exact: the rows as their type holds them
    reference = _naive_em(X, None, weights, start, prec_chol, "full")
    stats = _kernels.em_statistics(rows, None, weights, start + shift, prec_chol, "full")
    _assert_stats(stats, reference[:5] + (None,), shift,
                  _kernels.reference_means(weights, start + shift),
                  rtol=1e-12 if dtype == np.float64 else SINGLE_RTOL)


def test_padded_block_rows_avoid_aliased_strides():
    """No shape gets blocks whose padded rows are a multiple of 1 KiB of float64, and
    blocks stay within their bounds."""
    from daskgmm import _fused

    for n_components in range(1, 300):
        for n_features in (1, 16, 64, 66, 136):
            rows = _fused._block_rows(n_components, n_features)
            assert _fused._BLOCK_ROWS[0] <= rows <= _fused._BLOCK_ROWS[1]
            assert (rows + _fused._PAD) % 128


def test_full_moments_of_a_block_equal_the_naive_sums():
    """``full``'s moments of one block (rows far from the origin, centred in float64)
    against explicit sums, to rounding, with responsibilities from 1 down to 1e-45, a
    component whose largest is 1e-30 and one with none."""
    from daskgmm import _fused

    rng = np.random.default_rng(15)
    n_components, n_features, n_rows = 4, 7, 300
    centre = 1e4 + rng.normal(size=n_features)
    rows = 1e4 + rng.normal(size=(n_rows, n_features))
    means = rng.normal(scale=0.5, size=(n_components, n_features))  # about the centre
    resp = 10.0 ** rng.uniform(-45, 0, size=(n_components, n_rows))
    resp[1] *= 1e-30
    resp[2] = 0.0
    resp[3, ::3] = 1.0
    xt = np.zeros((n_features, n_rows + 9))
    xt[:, :n_rows] = (rows - centre).T
    rt = np.zeros((n_components, n_rows + 9))
    rt[:, :n_rows] = resp
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features, n_features))
    buffers = [np.empty((n_features, n_rows + 9)) for _ in range(2)]
    _fused._full_moments_block(xt, n_rows, means, rt, first, m2, *buffers)
    for k in range(n_components):
        d = (rows - centre) - means[k]
        np.testing.assert_allclose(first[k], resp[k] @ d, rtol=1e-12,
                                   atol=1e-12 * np.abs(resp[k]).sum())
        expected = np.triu((resp[k, :, None] * d).T @ d)
        np.testing.assert_allclose(m2[k], expected, rtol=1e-12,
                                   atol=1e-12 * np.abs(expected).max())
        assert (np.tril(m2[k], -1) == 0).all()
    assert (m2[2] == 0).all() and (first[2] == 0).all()
