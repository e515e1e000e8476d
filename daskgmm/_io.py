"""``daskgmm.load``: a saved estimator back, of whichever class saved it.

Importing the estimator modules registers their classes with `_persist`
(`_persist.register`); the store names its class.
"""

from . import _bayesian_mixture, _gaussian_mixture  # noqa: F401 (they register their classes)
from . import _persist


def load(path):
    """Load a model saved by :meth:`GaussianMixture.save` (or a search's, or a
    :class:`BayesianGaussianMixture`'s ``save``).

    Parameters
    ----------
    path : str or os.PathLike
        Local directory of the model store.

    Returns
    -------
    GaussianMixture or BayesianGaussianMixture
        A fitted estimator of the class saved, with the saved
        hyperparameters and fitted attributes, bit for bit.

    Raises
    ------
    ValueError
        If ``path`` is missing, corrupt, foreign, of another format version,
        or not a consistent model.
    """
    return _persist.load(path)
