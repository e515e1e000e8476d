"""Property tests of the statistics merge: grouping and order do not matter, and the
merged statistics are those of the union, computed directly, far from the origin too."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daskgmm._stats import Layout, Layouts, Stats, merge, merge_all

from .conftest import COVARIANCE_TYPES


def direct(X, resp, loglik, entropy, covariance_type):
    """The statistics of rows ``X`` with responsibilities ``resp``, by definition
    (two passes: weighted means, then moments about them), in float64."""
    nk = resp.sum(axis=0)
    safe = np.where(nk > 0, nk, 1.0)
    mean = np.where(nk[:, None] > 0, resp.T @ X / safe[:, None], 0.0)
    centred = X[:, None, :] - mean[None, :, :]  # (n, K, D)
    if covariance_type == "full":
        m2 = np.einsum("nk,nki,nkj->kij", resp, centred, centred)
    elif covariance_type == "tied":
        m2 = np.einsum("nk,nki,nkj->ij", resp, centred, centred)
    elif covariance_type == "diag":
        m2 = np.einsum("nk,nki->ki", resp, centred**2)
    else:
        m2 = np.einsum("nk,nki->k", resp, centred**2)
    return Stats(nk, mean, m2, np.float64(loglik.sum()), np.float64(len(X)),
                 np.float64(entropy.sum()))


@st.composite
def datasets(draw):
    """Rows far from the origin or not, responsibilities with zeros, split into groups."""
    n_rows = draw(st.integers(1, 30), label="rows")
    n_features = draw(st.integers(1, 4), label="features")
    n_components = draw(st.integers(1, 3), label="components")
    offset = draw(st.sampled_from([0.0, 1.0, 1e3, 1e6]) | st.floats(-1e6, 1e6), label="offset")
    spread = draw(st.sampled_from([1e-3, 1.0, 1e2]), label="spread")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    X = offset + spread * rng.normal(size=(n_rows, n_features))
    # Responsibilities with exact zeros: whole components absent from some groups.
    resp = rng.uniform(size=(n_rows, n_components)) * (rng.uniform(
        size=(n_rows, n_components)) < 0.7)
    resp *= rng.uniform(0, 3, size=(n_rows, 1))  # sample weights
    loglik, entropy = rng.normal(size=n_rows), rng.normal(size=n_rows)
    n_groups = draw(st.integers(1, min(n_rows, 6)), label="groups")
    cuts = np.sort(rng.choice(np.arange(1, n_rows), size=n_groups - 1, replace=False)) \
        if n_groups > 1 else np.array([], dtype=int)
    order = rng.permutation(n_rows)  # groups of rows in any order, not only contiguous
    groups = np.split(order, cuts)
    return X, resp, loglik, entropy, groups, rng


def assert_same_stats(merged, expected, X):
    """Equal within rounding: float64 holds X to ``ulp`` (relative 2e-16 of its largest
    value), so means are known to about ``ulp`` and moments to ``ulp * spread * weight``."""
    ulp = np.finfo(np.float64).eps * float(np.abs(X).max())
    spread = float(np.ptp(X))
    weight = float(expected.nk.sum())
    np.testing.assert_allclose(merged.nk, expected.nk, rtol=1e-12, atol=1e-12 * len(X))
    present = expected.nk > 1e-9 * np.max(expected.nk, initial=0.0)
    np.testing.assert_allclose(merged.mean[present], expected.mean[present], rtol=0,
                               atol=1e-9 * spread + 64 * ulp)
    m2_scale = float(np.abs(expected.m2).max(initial=0.0))
    np.testing.assert_allclose(merged.m2, expected.m2, rtol=1e-9,
                               atol=1e-9 * m2_scale + 64 * ulp * (spread + ulp) * weight)
    for name in ("loglik", "weight", "entropy"):
        np.testing.assert_allclose(getattr(merged, name), getattr(expected, name), rtol=1e-9,
                                   atol=1e-9 * len(X), err_msg=name)


def _parts(data, covariance_type):
    X, resp, loglik, entropy, groups, rng = data
    parts = [direct(X[rows], resp[rows], loglik[rows], entropy[rows], covariance_type)
             for rows in groups]
    return parts, direct(X, resp, loglik, entropy, covariance_type), rng


def _tree_merge(parts, covariance_type, rng):
    """Merge in a random binary tree: random neighbours, until one is left."""
    parts = list(parts)
    while len(parts) > 1:
        i = int(rng.integers(len(parts) - 1))
        parts[i:i + 2] = [merge(parts[i], parts[i + 1], covariance_type)]
    return parts[0]


@settings(max_examples=60, deadline=None)
@given(data=datasets(), covariance_type=st.sampled_from(COVARIANCE_TYPES))
def test_merge_equals_the_statistics_of_the_union(data, covariance_type):
    parts, union, rng = _parts(data, covariance_type)
    X = data[0]
    assert_same_stats(merge_all(parts, covariance_type), union, X)
    shuffled = [parts[i] for i in rng.permutation(len(parts))]
    assert_same_stats(merge_all(shuffled, covariance_type), union, X)
    assert_same_stats(_tree_merge(parts, covariance_type, rng), union, X)
    assert_same_stats(_tree_merge(shuffled, covariance_type, rng), union, X)


@settings(max_examples=40, deadline=None)
@given(data=datasets(), types=st.lists(st.sampled_from(COVARIANCE_TYPES), min_size=1,
                                       max_size=3))
def test_layouts_merge_rows_merges_every_model(data, types):
    """Several models packed in one vector per group: merged model by model."""
    X, resp = data[0], data[1]
    per_model = [_parts(data, covariance_type)[:2] for covariance_type in types]
    layouts = Layouts(tuple(Layout(resp.shape[1], X.shape[1], covariance_type)
                            for covariance_type in types))
    rows = np.stack([layouts.pack([parts[group] for parts, _ in per_model])
                     for group in range(len(data[4]))])
    order = data[5].permutation(len(rows))
    for stacked in (rows, rows[order]):
        merged = layouts.unpack(layouts.merge_rows(stacked))
        for stats, (_, union) in zip(merged, per_model):
            assert_same_stats(stats, union, X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_clusters_far_apart_far_from_the_origin(covariance_type):
    """Two clusters 1e4 spreads apart at an offset of 1e6, merged one row at a time:
    the moments about each component's mean stay exact (raw moments would not)."""
    rng = np.random.default_rng(0)
    X = 1e6 + np.concatenate([rng.normal(size=(50, 3)), 1e4 + rng.normal(size=(50, 3))])
    resp = np.repeat(np.eye(2), 50, axis=0)
    zeros = np.zeros(len(X))
    rows = [direct(X[i:i + 1], resp[i:i + 1], zeros[:1], zeros[:1], covariance_type)
            for i in rng.permutation(len(X))]
    assert_same_stats(merge_all(rows, covariance_type),
                      direct(X, resp, zeros, zeros, covariance_type), X)
