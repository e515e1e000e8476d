"""pomegranate 1.x and torchgmm behind one small estimator interface, for ``bench_em.py --peers``.

Neither is a dependency of daskgmm. Install them in a separate environment
(``benchmarks/requirements-peers.txt`` says how); this module imports them only
when a fit runs, and ``available`` says which of them import here.

Both run on CPU with PyTorch's default threads (one per core), on the NumPy
rows as a tensor of the same dtype (float64 or float32), from daskgmm's start:

- ``pomegranate``: ``GeneralMixtureModel`` of ``Normal`` distributions built from
  the start's weights, means and covariances, ``tol=-inf`` so that it runs
  exactly ``max_iter`` iterations (one E- and one M-step each). It has no
  ``tied`` covariances; its ``sphere`` is ``spherical``.
- ``torchgmm``: ``GaussianMixture`` (PyCave's maintained fork, on PyTorch
  Lightning) with ``init_means`` set to the start's means (it then estimates
  the first covariances from the data itself), ``convergence_tolerance=0``,
  ``max_epochs=max_iter``, the whole data as one batch. Each of its EM
  iterations takes two passes over the data.

Each wrapper has ``fit(X)``, ``n_iter_`` and ``means_`` (a NumPy array).
"""

import importlib.util
import logging
import warnings
from importlib import metadata

import numpy as np

# pomegranate's name of each covariance type it has (no tied).
POMEGRANATE_TYPES = {"full": "full", "diag": "diag", "spherical": "sphere"}
# The covariance types each peer has, by daskgmm's names.
COVARIANCE_TYPES = {
    "pomegranate": tuple(POMEGRANATE_TYPES),
    "torchgmm": ("full", "tied", "diag", "spherical"),
}
# Lightning's precision setting for each dtype.
LIGHTNING_PRECISION = {"float64": 64, "float32": 32}
# scikit-learn's (and daskgmm's) default reg_covar, for torchgmm's covariance_regularization.
REG_COVAR = 1e-6
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric")
# Lightning's own notices (a SLURM hint where srun exists, deprecations), silenced.
LIGHTNING_MODULES = r"(lightning_fabric|pytorch_lightning)\."


def available(names):
    """``(importable names, one line saying what runs and what was skipped, and why)``."""
    found, parts = [], []
    for name in names:
        if importlib.util.find_spec(name) is None:
            parts.append(f"{name} skipped, not installed (benchmarks/requirements-peers.txt)")
        else:
            found.append(name)
            parts.append(f"{name} {metadata.version(name)}")
    if found:
        import torch

        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    return found, "Peers: " + "; ".join(parts)


def start_covariances(kwargs):
    """The start's covariances, per component, from its precisions (full, diag, spherical)."""
    precisions = np.asarray(kwargs["precisions_init"])
    if kwargs["covariance_type"] == "full":
        return np.linalg.inv(precisions)
    return 1 / precisions


class PomegranateMixture:
    """pomegranate's GeneralMixtureModel from the start in ``kwargs``, ``max_iter`` iterations."""

    def __init__(self, kwargs, max_iter):
        self.kwargs = kwargs
        self.max_iter = max_iter

    def fit(self, X):
        import torch
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel

        covariance_type = POMEGRANATE_TYPES[self.kwargs["covariance_type"]]
        means = self.kwargs["means_init"].astype(X.dtype)
        covariances = start_covariances(self.kwargs).astype(X.dtype)
        if covariance_type == "sphere":
            # pomegranate takes a sphere's variance once per feature.
            covariances = np.repeat(covariances[:, np.newaxis], X.shape[1], axis=1)
        components = [
            Normal(torch.from_numpy(m), torch.tensor(c), covariance_type=covariance_type)
            for m, c in zip(means, covariances)
        ]
        weights = torch.from_numpy(self.kwargs["weights_init"].astype(X.dtype))
        model = GeneralMixtureModel(components, priors=weights, max_iter=self.max_iter, tol=-np.inf)
        model.fit(torch.from_numpy(X))
        self.n_iter_ = self.max_iter
        self.means_ = np.stack([c.means.detach().numpy() for c in model.distributions])
        return self


class TorchgmmMixture:
    """torchgmm's GaussianMixture from the start's means in ``kwargs``, ``max_iter`` iterations."""

    def __init__(self, kwargs, max_iter):
        self.kwargs = kwargs
        self.max_iter = max_iter

    def fit(self, X):
        import torch

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=LIGHTNING_MODULES)
            model = self._estimator(X.dtype).fit(torch.from_numpy(X))
        self.n_iter_ = model.num_iter_
        self.means_ = model.model_.means.detach().numpy()
        return self

    def _estimator(self, dtype):
        """torchgmm's estimator for data of the NumPy ``dtype``."""
        import torch
        from torchgmm.bayes import GaussianMixture

        # After the import: importing Lightning sets its loggers to INFO.
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        return GaussianMixture(
            self.kwargs["n_components"],
            covariance_type=self.kwargs["covariance_type"],
            init_means=torch.from_numpy(self.kwargs["means_init"].astype(dtype)),
            convergence_tolerance=0,
            covariance_regularization=self.kwargs.get("reg_covar", REG_COVAR),
            trainer_params=dict(
                max_epochs=self.max_iter,
                precision=LIGHTNING_PRECISION[dtype.name],
                accelerator="cpu",
                devices=1,
                enable_progress_bar=False,
                enable_model_summary=False,
                logger=False,
                enable_checkpointing=False,
            ),
        )


MAKERS = {"pomegranate": PomegranateMixture, "torchgmm": TorchgmmMixture}
