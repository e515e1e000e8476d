"""EM state between iterations, and its checkpoint files.

A checkpoint is a store written by ``_persist.write_group`` (atomically)
after every iteration: the parameters of every initialisation still in the
batch, their lower bounds, and a fingerprint of the data shape and the
hyperparameters, so that a fit resumes only from its own checkpoint.
"""

import os
from dataclasses import dataclass

import numpy as np

from ._persist import decode_json, encode_json, read_group, recover, write_group

_PARAMETER_NAMES = ("weights", "means", "covariances", "prec_chol")


@dataclass
class EMState:
    """Where EM stands for each initialisation after ``iteration`` iterations."""

    params: list
    lower_bounds: list
    history: list
    converged: list
    n_iter: list
    iteration: int = 0

    @classmethod
    def start(cls, starts, lower_bound):
        """State before the first iteration."""
        n_init = len(starts)
        return cls(
            params=list(starts),
            lower_bounds=[lower_bound] * n_init,
            history=[[] for _ in range(n_init)],
            converged=[False] * n_init,
            n_iter=[0] * n_init,
        )

    @property
    def active(self):
        """Initialisations that still iterate."""
        return [i for i, done in enumerate(self.converged) if not done]


def fingerprint(estimator, n_samples, n_features, classes, weighted):
    """What a checkpoint must share with a fit to be resumed by it (JSON)."""
    params = estimator.get_params()
    random_state = params["random_state"]
    identity = {
        "n_samples": n_samples,
        "n_features": n_features,
        "sample_weight": weighted,
        "classes": None if classes is None else np.asarray(classes).astype(str),
        "random_state": random_state if random_state is None or isinstance(random_state, int)
        else type(random_state).__name__,
    }
    for name in ("n_components", "covariance_type", "tol", "reg_covar", "n_init",
                 "init_params", "params", "weights_init", "means_init", "precisions_init",
                 "warm_start"):
        value = params[name]
        identity[name] = None if value is None else (
            np.asarray(value, dtype=np.float64) if name.endswith("_init") else value)
    return {name: encode_json(value) for name, value in identity.items()}


def save(path, state, identity):
    """Write ``state`` to the checkpoint at ``path``, atomically."""
    arrays = {}
    for i, params in enumerate(state.params):
        for name, value in zip(_PARAMETER_NAMES, params):
            arrays[f"{name}_{i}"] = np.asarray(value, dtype=np.float64)
    attrs = {
        "kind": "checkpoint",
        "fingerprint": identity,
        "iteration": state.iteration,
        "lower_bounds": encode_json(state.lower_bounds),
        "history": encode_json(state.history),
        "converged": state.converged,
        "n_iter": state.n_iter,
    }
    write_group(path, arrays, attrs)


def load(path, identity):
    """The state saved at ``path``, or None when there is no checkpoint yet.

    Raises ValueError when the checkpoint was written for other data or
    parameters, naming what differs.
    """
    recover(path)
    if not os.path.exists(path):
        return None
    arrays, attrs = read_group(path, "checkpoint")
    saved = attrs["fingerprint"]
    differences = [
        f"{name} is {saved.get(name)!r} there and {identity.get(name)!r} here"
        for name in sorted(set(saved) | set(identity))
        if saved.get(name) != identity.get(name)
    ]
    if differences:
        raise ValueError(
            f"The checkpoint {path} was written for other data or parameters: "
            + "; ".join(differences)
            + ". Remove it or choose another checkpoint path."
        )
    n_init = len(attrs["converged"])
    return EMState(
        params=[tuple(arrays[f"{name}_{i}"] for name in _PARAMETER_NAMES) for i in range(n_init)],
        lower_bounds=decode_json(attrs["lower_bounds"]),
        history=decode_json(attrs["history"]),
        converged=list(attrs["converged"]),
        n_iter=list(attrs["n_iter"]),
        iteration=int(attrs["iteration"]),
    )
