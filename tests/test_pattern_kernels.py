"""The kernels for rows with NaN (``_pattern_kernels``) against naive formulas.

The references below are written in the test, row by row, from the formulas of
``_missing``'s docstring (the observed marginal, and for ``diag`` the
component's mean and variance in place of a missing entry); they share no code
with the kernels.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from daskgmm import GaussianMixture, _missing, _pattern_kernels

OFFSET = 1e6  # data and means far from the origin, to which the kernels centre


def _gapped_rows(n_rows, n_features, fraction, seed):
    """Rows of 3 clusters with ``fraction`` of the entries NaN at random, a few rows
    all NaN, a few complete, about the centre OFFSET."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3, size=(3, n_features))
    x = OFFSET + centres[rng.integers(3, size=n_rows)] + rng.normal(size=(n_rows, n_features))
    x[rng.random(x.shape) < fraction] = np.nan
    x[[4, n_rows // 3, n_rows - 2]] = np.nan
    return x


def _naive_diag_statistics(xc, sample_weight, means, variances, log_weights):
    """Row by row: r from the observed entries' log-density; a missing entry enters
    as mu_kd with variance sigma_kd^2; entropy sum r log r - r H_k."""
    n_components, n_features = means.shape
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features))
    loglik = weight = entropy = 0.0
    for x, w in zip(xc, sample_weight):
        observed = ~np.isnan(x)
        if not observed.any():
            continue
        log_p = np.array([log_weights[k] + norm.logpdf(
            x[observed], means[k, observed], np.sqrt(variances[k, observed])).sum()
            for k in range(n_components)])
        total = logsumexp(log_p)
        resp = np.exp(log_p - total)
        loglik += w * total
        weight += w
        for k in range(n_components):
            dev = np.where(observed, x - means[k], 0.0)
            nk[k] += w * resp[k]
            first[k] += w * resp[k] * dev
            m2[k] += w * resp[k] * np.where(observed, dev**2, variances[k])
            h = 0.5 * np.log(2 * np.pi * np.e * variances[k, ~observed]).sum()
            entropy += w * resp[k] * (log_p[k] - total - h)
    return nk, first, m2, loglik, weight, entropy


@pytest.mark.parametrize("fraction", [0.05, 0.4])
def test_diag_statistics_equal_the_naive_formula(fraction):
    """Several blocks of rows, sample weights, complete rows and rows with nothing
    observed (no part), far from the origin."""
    rng = np.random.default_rng(1)
    x = _gapped_rows(2500, 5, fraction, seed=2)
    x[10:20] = OFFSET + rng.normal(size=(10, 5))  # complete rows
    centre = np.full(5, OFFSET)
    means = rng.normal(scale=3, size=(3, 5))
    variances = rng.uniform(0.5, 2.0, size=(3, 5))
    log_weights = np.log([0.2, 0.3, 0.5])
    sample_weight = rng.uniform(0.5, 2.0, size=len(x))
    got = _pattern_kernels.diag_statistics(x, sample_weight, centre, means, variances,
                                           log_weights, True)
    want = _naive_diag_statistics(x - centre, sample_weight, means, variances, log_weights)
    for value, expected in zip(got, want):
        np.testing.assert_allclose(value, expected, rtol=1e-11, atol=1e-9)
    unweighted = _pattern_kernels.diag_statistics(x, np.empty(0), centre, means, variances,
                                                  log_weights, False)
    expected = _naive_diag_statistics(x - centre, np.ones(len(x)), means, variances,
                                      log_weights)
    for value, reference in zip(unweighted[:5], expected[:5]):
        np.testing.assert_allclose(value, reference, rtol=1e-11, atol=1e-9)
    assert unweighted[5] == 0.0


def test_diag_log_prob_is_the_observed_marginal():
    rng = np.random.default_rng(3)
    x = _gapped_rows(1500, 4, 0.3, seed=4)
    centre = np.full(4, OFFSET)
    means = rng.normal(scale=3, size=(3, 4))
    variances = rng.uniform(0.5, 2.0, size=(3, 4))
    log_weights = np.log([0.2, 0.3, 0.5])
    got = _pattern_kernels.diag_log_prob(x, centre, means, variances, log_weights)
    xc = x - centre
    observed = ~np.isnan(xc)
    want = np.stack([log_weights[k] + np.where(
        observed, norm.logpdf(np.where(observed, xc, 0.0), means[k], np.sqrt(variances[k])),
        0.0).sum(axis=1) for k in range(3)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)


def _groups(x):
    """`group_rows` of the rows ``x`` from their `missing_bits`."""
    return _pattern_kernels.group_rows(_pattern_kernels.missing_bits(x)[0], x.shape[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_features", [6, 64, 70, 130])
def test_missing_bits_are_the_nan_entries(n_features, dtype):
    """Bit d % 64 of word d // 64 is the entry's NaN test; infinity is flagged."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, n_features)).astype(dtype)
    x[rng.random(x.shape) < 0.3] = np.nan
    bits, infinite = _pattern_kernels.missing_bits(x)
    assert bits.shape == (50, -(-n_features // 64)) and not infinite
    for d in range(n_features):
        np.testing.assert_array_equal((bits[:, d // 64] >> np.uint64(d % 64)) & np.uint64(1),
                                      np.isnan(x[:, d]))
    for value in (np.inf, -np.inf):
        x[7, n_features - 1] = value
        assert _pattern_kernels.missing_bits(x)[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_nan_is_a_nan_anywhere(dtype):
    """Any single NaN (first row, last row, past the first blocks) is found; finite
    rows and a single infinity are not NaN, both infinities in one block are."""
    x = np.random.default_rng(7).normal(size=(1000, 5)).astype(dtype)
    assert not _pattern_kernels.any_nan(x) and not _pattern_kernels.any_nan(x[:0])
    for row, feature in [(0, 0), (999, 4), (517, 2)]:
        gapped = x.copy()
        gapped[row, feature] = np.nan
        assert _pattern_kernels.any_nan(gapped)
    x[300, 1] = np.inf
    assert not _pattern_kernels.any_nan(x)
    x[301, 3] = -np.inf
    assert _pattern_kernels.any_nan(x)


@pytest.mark.parametrize("n_features", [6, 70])
def test_group_rows_partitions_the_rows_by_pattern(n_features):
    """Every row holding NaN once, the rows of a group share its pattern, no two
    groups the same pattern; complete rows left out; past 64 features, patterns
    that differ only in features d and d + 64 apart."""
    rng = np.random.default_rng(5)
    missing = rng.random((3000, n_features)) < 0.1
    missing[::7] = missing[0]  # a frequent pattern
    missing[2::11] = False  # complete rows
    if n_features > 64:  # patterns that differ only in features d and d + 64
        missing[1::7] = missing[0]
        missing[1::7, [0, 64]] = ~missing[0, [0, 64]]
    order, observed, starts = _groups(np.where(missing, np.nan, 1.0))
    np.testing.assert_array_equal(np.sort(order), np.flatnonzero(missing.any(axis=1)))
    missing = missing[missing.any(axis=1)]
    order = np.searchsorted(np.sort(order), order)  # among the rows holding NaN
    assert starts[0] == 0 and starts[-1] == len(missing) and (np.diff(starts) > 0).all()
    for p in range(len(observed)):
        rows = order[starts[p]:starts[p + 1]]
        np.testing.assert_array_equal(missing[rows], np.broadcast_to(~observed[p],
                                                                     missing[rows].shape))
        assert (np.diff(rows) > 0).all()
    assert len(np.unique(observed, axis=0)) == len(observed)
    assert len(observed) == len(np.unique(missing, axis=0))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_infinity_in_a_block_with_nan_is_an_error(covariance_type):
    x = _gapped_rows(300, 3, 0.2, seed=6) - OFFSET
    for row in (np.flatnonzero(np.isnan(x).any(axis=1))[5],
                np.flatnonzero(~np.isnan(x).any(axis=1))[5]):
        infinite = x.copy()
        infinite[row, np.flatnonzero(~np.isnan(x[row]))[0]] = np.inf
        with pytest.raises(ValueError, match="infinity"):
            GaussianMixture(2, covariance_type=covariance_type, nan_policy="marginalize",
                            random_state=0).fit(infinite)


def _naive_pattern_statistics(xc, sample_weight, means, covariances, log_weights):
    """Row by row (Ghahramani & Jordan eq. 11-12): r from the observed marginal,
    x_hat_m = mu_m + S_mo S_oo^-1 (x_o - mu_o), C = S_mm - S_mo S_oo^-1 S_om;
    entropy sum r log r - r H, H = (|m| log(2 pi e) + log |C|) / 2."""
    n_components, n_features = means.shape
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features, n_features))
    loglik = weight = entropy = 0.0
    for x, w in zip(xc, sample_weight):
        o = ~np.isnan(x)
        m = ~o
        if not o.any():
            continue
        log_p = np.array([log_weights[k] + multivariate_normal.logpdf(
            x[o], means[k, o], covariances[k][np.ix_(o, o)]) for k in range(n_components)])
        total = logsumexp(log_p)
        resp = np.exp(log_p - total)
        loglik += w * total
        weight += w
        for k, sigma in enumerate(covariances):
            regression = sigma[np.ix_(m, o)] @ np.linalg.inv(sigma[np.ix_(o, o)])
            dev = np.where(o, x - means[k], 0.0)
            dev[m] = regression @ dev[o]
            cond = np.zeros((n_features, n_features))
            cond[np.ix_(m, m)] = sigma[np.ix_(m, m)] - regression @ sigma[np.ix_(o, m)]
            h = 0.5 * (m.sum() * np.log(2 * np.pi * np.e)
                       + (np.linalg.slogdet(cond[np.ix_(m, m)])[1] if m.any() else 0.0))
            nk[k] += w * resp[k]
            first[k] += w * resp[k] * dev
            m2[k] += w * resp[k] * (np.outer(dev, dev) + cond)
            entropy += w * resp[k] * (log_p[k] - total - h)
    return nk, first, m2, loglik, weight, entropy


def _precision_factors(n_factors, n_features, rng):
    """Random covariances (F, D, D) and the upper factors U of their precisions
    (Lambda = U U^T, scikit-learn's ``precisions_cholesky_``)."""
    factors = rng.normal(size=(n_factors, n_features, n_features)) / np.sqrt(n_features)
    covariances = factors @ np.swapaxes(factors, 1, 2) + np.eye(n_features)
    prec_chols = np.linalg.cholesky(np.linalg.inv(covariances[:, ::-1, ::-1]))[:, ::-1, ::-1]
    np.testing.assert_allclose(prec_chols @ np.swapaxes(prec_chols, 1, 2) @ covariances,
                               np.broadcast_to(np.eye(n_features), covariances.shape),
                               atol=1e-10)  # U upper triangular, U U^T
    return covariances, np.ascontiguousarray(np.triu(prec_chols))


@pytest.mark.parametrize("n_features, fraction, shared, dtype", [
    (5, 0.3, False, np.float64), (5, 0.3, True, np.float64), (30, 0.5, False, np.float64),
    (5, 0.3, False, np.float32), (16, 0.2, False, np.float32)])
def test_pattern_statistics_equal_the_naive_formula(n_features, fraction, shared, dtype):
    """Patterns completed in columns (one over several tiles) and row by row, rows with
    nothing observed among them, sample weights, rows far from the origin
    (centred by the kernel, in float64 also for float32 rows); at D 30 with
    half the entries missing the patterns' conditional covariances fill a
    tile's room (SLOT_CONDS) before its rows do. ``shared``: one precision
    (``tied``)."""
    rng = np.random.default_rng(7)
    n_rows = 250 if n_features > 20 else 700
    x = _gapped_rows(n_rows, n_features, fraction, seed=8)
    x[100:400] = np.where(np.arange(n_features) % 3 == 0, np.nan,
                          np.nan_to_num(x[100:400], nan=OFFSET))  # one pattern, many rows
    x = x.astype(dtype)
    covariances, prec_chols = _precision_factors(1 if shared else 3, n_features, rng)
    centre = np.full(n_features, OFFSET) + rng.normal(size=n_features)
    means = rng.normal(scale=2, size=(3, n_features))  # relative to the centre
    log_weights = np.log([0.2, 0.3, 0.5])
    sample_weight = rng.uniform(0.5, 2.0, size=n_rows)
    order, observed, starts = _groups(x)
    if n_features > 20:
        assert (3 * np.sum(~observed, axis=1) ** 2).sum() > _pattern_kernels.SLOT_CONDS
    else:  # patterns completed in columns (one over several tiles) and row by row
        rows = np.diff(starts)
        assert rows.max() > _pattern_kernels.TILE_ROWS
        assert (rows < _pattern_kernels.TILE_MIN_ROWS).sum() > 5
    got = _pattern_kernels.pattern_statistics(x, order, observed, starts, sample_weight, centre,
                                              means, prec_chols, log_weights, True)
    holds_nan = np.isnan(x).any(axis=1)  # the rows grouped; complete rows left out
    want = _naive_pattern_statistics(x[holds_nan].astype(np.float64) - centre,
                                     sample_weight[holds_nan], means,
                                     np.broadcast_to(covariances, (3,) + covariances.shape[1:]),
                                     log_weights)
    for value, expected in zip(got, want):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-9)
    unweighted = _pattern_kernels.pattern_statistics(
        x, order, observed, starts, np.empty(0), centre, means, prec_chols, log_weights, False)
    assert unweighted[4] == np.sum(holds_nan & ~np.isnan(x).all(axis=1))
    assert unweighted[5] == 0.0


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_patterns_equal_the_naive_formula(covariance_type, dtype, monkeypatch):
    """Patterns of at least LARGE_PATTERN_ROWS rows (through the complete rows'
    kernel on their observed features), beside patterns through the pattern
    kernels: `_missing._incomplete_stats` against the naive formula, rows far
    from the origin, sample weights, the entropy (4)."""
    monkeypatch.setattr(_missing, "LARGE_PATTERN_ROWS", 100)
    large = []
    monkeypatch.setattr(_missing, "_large_pattern_sums", lambda *args: large.append(
        args[2]) or _LARGE_PATTERN_SUMS(*args))
    rng = np.random.default_rng(13)
    n_features = 6
    x = _gapped_rows(800, n_features, 0.2, seed=14)
    x[100:400, [0, 3]] = np.nan  # two missing features (plus any drawn: a few patterns)
    x[400:600] = np.where(np.arange(n_features) == 5, np.nan, np.nan_to_num(x[400:600],
                                                                            nan=OFFSET))
    x = x.astype(dtype)
    shared = covariance_type == "tied"
    covariances, prec_chols = _precision_factors(1 if shared else 3, n_features, rng)
    weights = np.array([0.2, 0.3, 0.5])
    means = OFFSET + rng.normal(scale=2, size=(3, n_features))
    log_weights = np.log(weights) + 0.1
    sample_weight = rng.uniform(0.5, 2.0, size=len(x))
    got = _missing._incomplete_stats(x, sample_weight, weights, means,
                                     prec_chols[0] if shared else prec_chols, covariance_type,
                                     log_weights, True)
    assert len(large) >= 2  # the 200 rows missing feature 5, the largest of 100:400
    centre = weights @ means / weights.sum()
    means_c = _missing._kernels.reference_means(weights, means) - centre
    holds_nan = np.isnan(x).any(axis=1)  # the rows taken; complete rows are left out
    nk, first, m2, loglik, weight, entropy = _naive_pattern_statistics(
        x[holds_nan].astype(np.float64) - centre, sample_weight[holds_nan], means_c,
        np.broadcast_to(covariances, (3,) + covariances.shape[1:]), log_weights)
    offset = first / nk[:, None]
    m2 = m2 - nk[:, None, None] * offset[:, :, None] * offset[:, None, :]
    for value, expected in zip(got, (nk, offset, m2.sum(axis=0) if shared else m2, loglik,
                                     weight, entropy)):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-9)


_LARGE_PATTERN_SUMS = _missing._large_pattern_sums


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pattern_log_prob_is_the_observed_marginal(dtype):
    """log w_k + log N(x_o; mu_o, Sigma_oo) by scipy on Sigma_oo itself, rows far
    from the origin; a row with nothing observed gets log w_k; complete rows are
    not grouped and get NaN."""
    rng = np.random.default_rng(9)
    x = _gapped_rows(900, 6, 0.35, seed=10).astype(dtype)
    covariances, prec_chols = _precision_factors(3, 6, rng)
    centre = np.full(6, OFFSET)
    means = rng.normal(scale=2, size=(3, 6))
    log_weights = np.log([0.2, 0.3, 0.5])
    got = _pattern_kernels.pattern_log_prob(x, *_groups(x),
                                            centre, means, prec_chols, log_weights)
    xc = x.astype(np.float64) - centre
    holds_nan = np.isnan(xc).any(axis=1)
    assert np.isnan(got[~holds_nan]).all() and holds_nan.mean() < 0.99
    for row, values in zip(got[holds_nan], xc[holds_nan]):
        o = ~np.isnan(values)
        want = log_weights + np.array([multivariate_normal.logpdf(
            values[o], means[k, o], covariances[k][np.ix_(o, o)]) if o.any() else 0.0
            for k in range(3)])
        np.testing.assert_allclose(row, want, rtol=1e-11, atol=1e-10)


# The covariance condition number at which the precision route of `pattern_log_prob`
# was questioned (scipy on Sigma_oo differed from it by 3e-2, absolute, on a row
# far from the component). Any float64 route may lose this times the rounding unit
# (1.7e-7); measured on this test's rows: the kernel within 4e-10 relative of the
# exact value of its input, scipy within 1.4e-9 relative of the exact value of its
# own (Sigma): the discrepancy is rounding at this condition, on either side.
ILL_CONDITION = 7.7e8
ILL_CONDITION_TOLERANCE = ILL_CONDITION * np.finfo(np.float64).eps


def _exact_marginal_log_density(prec_chol, mean, x):
    """log N(x_o; mu_o, Sigma_oo) for Sigma = (U U^T)^-1 with U the float64 factor
    given, in exact rational arithmetic: the observed block's precision is the
    Schur complement Lambda_oo - Lambda_om Lambda_mm^-1 Lambda_mo and
    log |Sigma_oo| = log |Lambda_mm| - log |Lambda|."""
    n_features = len(x)
    u = [[Fraction(float(value)) for value in row] for row in prec_chol]
    precision = [[sum(u[i][t] * u[j][t] for t in range(n_features)) for j in range(n_features)]
                 for i in range(n_features)]
    o = [i for i in range(n_features) if not np.isnan(x[i])]
    m = [i for i in range(n_features) if np.isnan(x[i])]
    dev = [Fraction(float(x[i])) - Fraction(float(mean[i])) for i in o]

    def solve(a, columns):
        """a^-1 columns and |a| by Gaussian elimination (a symmetric positive definite)."""
        n = len(a)
        rows = [list(a[i]) + [c[i] for c in columns] for i in range(n)]
        determinant = Fraction(1)
        for j in range(n):
            determinant *= rows[j][j]
            for i in range(j + 1, n):
                factor = rows[i][j] / rows[j][j]
                rows[i] = [v - factor * w for v, w in zip(rows[i], rows[j])]
        solution = [[Fraction(0)] * len(columns) for _ in range(n)]
        for i in reversed(range(n)):
            for c in range(len(columns)):
                solution[i][c] = (rows[i][n + c] - sum(
                    rows[i][j] * solution[j][c] for j in range(i + 1, n))) / rows[i][i]
        return solution, determinant

    schur = [[precision[i][j] for j in o] for i in o]
    log_det_mm = 0.0
    if m:
        coupling, det_mm = solve([[precision[a][b] for b in m] for a in m],
                                 [[precision[a][j] for a in m] for j in o])
        for p, i in enumerate(o):
            for q in range(len(o)):
                schur[p][q] -= sum(precision[i][a] * coupling[s][q] for s, a in enumerate(m))
        log_det_mm = math.log(det_mm.numerator) - math.log(det_mm.denominator)
    _, det = solve(precision, [])
    quadratic = sum(dev[p] * schur[p][q] * dev[q] for p in range(len(o)) for q in range(len(o)))
    log_det_sigma_oo = log_det_mm - (math.log(det.numerator) - math.log(det.denominator))
    return -0.5 * (len(o) * math.log(2 * math.pi) + log_det_sigma_oo + float(quadratic))


def test_pattern_log_prob_at_an_ill_conditioned_covariance():
    """At a covariance condition of `ILL_CONDITION`, rows near and far from the
    component, 0 to 5 of 6 entries missing: the kernel's log-densities (through
    Lambda_mm's Cholesky factor) hold the exact observed marginal of the
    precision U U^T they are given, and scipy's on Sigma_oo, to
    `ILL_CONDITION_TOLERANCE` (relative, or absolute near 0)."""
    rng = np.random.default_rng(12)
    n_features = 6
    rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    covariance = rotation @ np.diag(np.geomspace(4, 4 / ILL_CONDITION, n_features)) @ rotation.T
    covariance = (covariance + covariance.T) / 2
    assert 0.5 * ILL_CONDITION < np.linalg.cond(covariance) < 2 * ILL_CONDITION
    lower = np.linalg.cholesky(covariance)  # scikit-learn's precisions_cholesky_
    prec_chol = solve_triangular(lower, np.eye(n_features), lower=True).T
    mean = rng.normal(size=n_features)
    near = rng.multivariate_normal(mean, covariance, size=6)
    far = mean + rng.normal(scale=3, size=(6, n_features))
    x = np.vstack([near, far])
    x[rng.random(x.shape) < 0.35] = np.nan
    x[:, 0] = np.where(np.isnan(x).all(axis=1), mean[0], x[:, 0])  # every row holds data
    x[[1, 7], 2:4] = np.nan
    x = x[np.isnan(x).any(axis=1)]  # the rows the kernel takes
    got = _pattern_kernels.pattern_log_prob(
        x, *_groups(x), np.zeros(n_features), mean[None],
        np.ascontiguousarray(prec_chol[None]), np.zeros(1))[:, 0]
    exact = [_exact_marginal_log_density(prec_chol, mean, row) for row in x]
    np.testing.assert_allclose(got, exact, rtol=ILL_CONDITION_TOLERANCE,
                               atol=ILL_CONDITION_TOLERANCE)
    observed = ~np.isnan(x)
    by_scipy = [multivariate_normal.logpdf(row[o], mean[o], covariance[np.ix_(o, o)])
                for row, o in zip(x, observed)]
    np.testing.assert_allclose(got, by_scipy, rtol=ILL_CONDITION_TOLERANCE,
                               atol=ILL_CONDITION_TOLERANCE)
