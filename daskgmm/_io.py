"""``daskgmm.load``: a saved estimator back, of whichever class saved it.

Importing the estimator modules registers their classes with `_persist`
(`_persist.register`); the store names its class.
"""

from . import _bayesian_mixture, _classifier, _gaussian_mixture  # noqa: F401 (they register)
from . import _persist


def load(path):
    """Load a model saved by the ``save`` of a daskgmm estimator.

    A :class:`GaussianMixtureIC` saves its best :class:`GaussianMixture`.

    Parameters
    ----------
    path : str or os.PathLike
        Local directory of the model store.

    Returns
    -------
    GaussianMixture, BayesianGaussianMixture or GaussianMixtureClassifier
        A fitted estimator of the class saved, with the saved
        hyperparameters and fitted attributes, bit for bit.

    Raises
    ------
    ValueError
        If ``path`` is missing, corrupt, foreign, of another format version,
        or not a consistent model.
    """
    return _persist.load(path)
