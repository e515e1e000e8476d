"""Gaussian mixture models fitted by single-pass EM on Dask, with scikit-learn's interface."""

__version__ = "0.1.0"

from ._gaussian_mixture import GaussianMixture, load  # noqa: E402
from ._ic import GaussianMixtureIC  # noqa: E402

__all__ = ["GaussianMixture", "GaussianMixtureIC", "load", "__version__"]
