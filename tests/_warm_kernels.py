"""Reach every numba kernel a fit can reach, for one dtype, so that it is compiled
into numba's disk cache (or loaded from it).

``python tests/_warm_kernels.py float32`` does it in a process of its own
(``conftest.py`` runs one beside the test process).
"""

import sys
import warnings

import numpy as np

from daskgmm._covariance_types import COVARIANCE_TYPES


def warm_kernels(dtype):
    """Fit, score and impute every covariance type on a small ``dtype`` array with
    complete rows and rows with NaN."""
    from daskgmm import GaussianMixture, GaussianMixtureImputer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(dtype)
    X[::4, 1] = np.nan
    X[1::4, 0] = np.nan
    for covariance_type in COVARIANCE_TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(2, covariance_type=covariance_type, max_iter=1,
                            random_state=0).fit(X[2::4]).score_samples(X[2::4])
            model = GaussianMixture(2, covariance_type=covariance_type, max_iter=1,
                                    random_state=0, nan_policy="marginalize").fit(X)
            model.score_samples(X)
            GaussianMixtureImputer(2, covariance_type=covariance_type, max_iter=1,
                                   random_state=0).fit_transform(X)


if __name__ == "__main__":
    warm_kernels(np.dtype(sys.argv[1]))
