"""scikit-learn's private helpers, imported here only, so that a change of theirs has one home."""

import numpy as np
from sklearn.mixture._bayesian_mixture import _log_dirichlet_norm as log_dirichlet_norm
from sklearn.mixture._bayesian_mixture import _log_wishart_norm as log_wishart_norm
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions
from sklearn.utils._array_api import get_namespace
from sklearn.utils._param_validation import Interval, StrOptions

# scikit-learn's array-API namespace for NumPy, which its mixture helpers expect.
NUMPY = get_namespace(np.empty(0))[0]


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Cholesky factors of given precisions, as scikit-learn computes them."""
    return _compute_precision_cholesky_from_precisions(
        np.asarray(precisions, dtype=np.float64), covariance_type, xp=NUMPY
    )


__all__ = ["NUMPY", "Interval", "StrOptions", "log_dirichlet_norm", "log_wishart_norm",
           "precision_cholesky_from_precisions"]
