"""The kernels for rows with NaN (``_pattern_kernels``) against naive formulas.

The references below are written in the test, row by row, from the formulas of
``_missing``'s docstring (the observed marginal, and for ``diag`` the
component's mean and variance in place of a missing entry); they share no code
with the kernels.
"""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

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
