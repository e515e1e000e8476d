"""The kernels for rows with NaN (``_pattern_kernels``) against naive formulas.

The references below are written in the test, row by row, from the formulas of
``_missing``'s docstring (the observed marginal, and for ``diag`` the
component's mean and variance in place of a missing entry); they share no code
with the kernels.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from daskgmm import GaussianMixture, _pattern_kernels

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


@pytest.mark.parametrize("n_features", [6, 70])
def test_group_rows_partitions_the_rows_by_pattern(n_features):
    """Every row once, the rows of a group share its pattern, no two groups the same
    pattern; past 64 features the hash folds features onto the same bits."""
    rng = np.random.default_rng(5)
    missing = rng.random((3000, n_features)) < 0.1
    missing[::7] = missing[0]  # a frequent pattern
    if n_features > 64:  # patterns that differ only in features d and d + 64
        missing[1::7] = missing[0]
        missing[1::7, [0, 64]] = ~missing[0, [0, 64]]
    order, observed, starts = _pattern_kernels.group_rows(missing)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(missing)))
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
    """Patterns with tiles of their own and patterns sharing tiles, rows with
    nothing observed among them, sample weights, rows far from the origin
    (centred by the kernel, in float64 also for float32 rows); at D 30 with
    half the entries missing the patterns' conditional covariances fill a
    tile's room (SLOT_CONDS) before its rows do. ``shared``: one precision
    (``tied``)."""
    rng = np.random.default_rng(7)
    n_rows = 700 if n_features < 10 else 250
    x = _gapped_rows(n_rows, n_features, fraction, seed=8)
    x[100:400] = np.where(np.arange(n_features) % 3 == 0, np.nan,
                          np.nan_to_num(x[100:400], nan=OFFSET))  # one pattern, many rows
    x = x.astype(dtype)
    covariances, prec_chols = _precision_factors(1 if shared else 3, n_features, rng)
    centre = np.full(n_features, OFFSET) + rng.normal(size=n_features)
    means = rng.normal(scale=2, size=(3, n_features))  # relative to the centre
    log_weights = np.log([0.2, 0.3, 0.5])
    sample_weight = rng.uniform(0.5, 2.0, size=n_rows)
    order, observed, starts = _pattern_kernels.group_rows(np.isnan(x))
    if n_features > 20:
        assert (3 * np.sum(~observed, axis=1) ** 2).sum() > _pattern_kernels.SLOT_CONDS
    else:  # patterns with tiles of their own (one over several) and sharing tiles
        rows = np.diff(starts)
        assert rows.max() > _pattern_kernels.TILE_ROWS
        assert (rows < _pattern_kernels.TILE_MIN_ROWS).sum() > 5
    got = _pattern_kernels.pattern_statistics(x, order, observed, starts, sample_weight, centre,
                                              means, prec_chols, log_weights, True)
    want = _naive_pattern_statistics(x.astype(np.float64) - centre, sample_weight, means,
                                     np.broadcast_to(covariances, (3,) + covariances.shape[1:]),
                                     log_weights)
    for value, expected in zip(got, want):
        np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-9)
    unweighted = _pattern_kernels.pattern_statistics(
        x, order, observed, starts, np.empty(0), centre, means, prec_chols, log_weights, False)
    assert unweighted[4] == np.sum(~np.isnan(x).all(axis=1)) and unweighted[5] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pattern_log_prob_is_the_observed_marginal(dtype):
    """log w_k + log N(x_o; mu_o, Sigma_oo) by scipy on Sigma_oo itself, rows far
    from the origin; a row with nothing observed gets log w_k."""
    rng = np.random.default_rng(9)
    x = _gapped_rows(900, 6, 0.35, seed=10).astype(dtype)
    covariances, prec_chols = _precision_factors(3, 6, rng)
    centre = np.full(6, OFFSET)
    means = rng.normal(scale=2, size=(3, 6))
    log_weights = np.log([0.2, 0.3, 0.5])
    got = _pattern_kernels.pattern_log_prob(x, *_pattern_kernels.group_rows(np.isnan(x)),
                                            centre, means, prec_chols, log_weights)
    xc = x.astype(np.float64) - centre
    for row, values in zip(got, xc):
        o = ~np.isnan(values)
        want = log_weights + np.array([multivariate_normal.logpdf(
            values[o], means[k, o], covariances[k][np.ix_(o, o)]) if o.any() else 0.0
            for k in range(3)])
        np.testing.assert_allclose(row, want, rtol=1e-11, atol=1e-10)
