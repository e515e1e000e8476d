"""``daskgmm.load``: a saved estimator back, of whichever class saved it.

Importing the modules of the package's public names (``daskgmm._EXPORTS``)
registers the estimator classes with `_persist` (`_persist.register`); the
store names its class.
"""

import importlib

from . import _EXPORTS, _persist


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
    for module in set(_EXPORTS.values()) - {"._io"}:
        importlib.import_module(module, __package__)
    return _persist.load(path)
