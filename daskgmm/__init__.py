"""Gaussian mixture models fitted by single-pass EM on Dask, with scikit-learn's interface."""

from ._gaussian_mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "__version__"]
