"""The covariance registry: one record per covariance type, consistent with itself."""

import numpy as np
import pytest

from daskgmm._covariance import REGISTRY, covariance_summary
from daskgmm._covariance_types import COVARIANCE_TYPES

from .conftest import COVARIANCE_TYPES as TEST_TYPES


def test_one_record_per_name_of_the_one_list():
    assert tuple(REGISTRY) == COVARIANCE_TYPES
    assert tuple(TEST_TYPES) == COVARIANCE_TYPES
    assert all(REGISTRY[name].name == name for name in COVARIANCE_TYPES)


def _random_covariances(kind, n_components, n_features, rng):
    scatter = kind.weighted_outer(rng.uniform(1, 2, n_components),
                                  rng.normal(size=(n_components, n_features)))
    for _ in range(n_features + 2):  # enough rows for a positive definite scatter
        scatter = scatter + kind.weighted_outer(np.ones(n_components),
                                                rng.normal(size=(n_components, n_features)))
    nk = rng.uniform(5, 10, n_components)
    return kind.covariances(nk, scatter, 1e-6, rng.normal(size=(n_components, n_features)))


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_a_record_agrees_with_itself(name):
    kind, rng = REGISTRY[name], np.random.default_rng(0)
    n_components, n_features = 3, 4
    covariances = _random_covariances(kind, n_components, n_features, rng)
    assert covariances.shape == kind.m2_shape(n_components, n_features)
    prec_chol = kind.precision_cholesky(covariances, None)
    assert prec_chol.shape == covariances.shape
    np.testing.assert_allclose(kind.covariances_from_precision_cholesky(prec_chol), covariances)
    mean_variance, log_det = covariance_summary(covariances, name, n_components, n_features)
    # log det of the covariance = -2 log det of the precision Cholesky factor
    np.testing.assert_allclose(
        np.broadcast_to(-2 * kind.log_det(prec_chol, n_features), (n_components,)), log_det)
    assert mean_variance.shape == (n_components,)


@pytest.mark.parametrize("name", COVARIANCE_TYPES)
def test_ill_defined_covariance_names_the_component(name):
    kind = REGISTRY[name]
    covariances = np.zeros(kind.m2_shape(2, 3))
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*iteration 7"):
        kind.precision_cholesky(covariances, 7)
