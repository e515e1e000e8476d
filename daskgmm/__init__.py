"""Gaussian mixture models fitted by EM on Dask (one pass over the data per iteration),
with scikit-learn's interface."""

import importlib

__version__ = "0.1.0"

# Public names and the modules that define them. They are imported on first
# use, so that ``import daskgmm.cli`` (and ``daskgmm --help``) does not pay
# for Dask, scikit-learn and zarr.
_EXPORTS = {
    "BayesianGaussianMixture": "._bayesian_mixture",
    "GaussianMixture": "._gaussian_mixture",
    "GaussianMixtureClassifier": "._classifier",
    "GaussianMixtureIC": "._ic",
    "GaussianMixtureImputer": "._imputer",
    "load": "._io",
    "show_progress": "._progress",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'daskgmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
