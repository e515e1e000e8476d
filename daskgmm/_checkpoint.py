"""EM state between iterations, and its checkpoint files.

A checkpoint is a store written by ``_persist.write_group`` (atomically)
after every iteration (and every block of incremental EM): the state of
every model of the fit (``_em.EMState``: each model's Gaussian parameters
and the arrays its family adds, ``_family.Family.checkpoint_arrays``; its
statistics of every block for incremental EM, and their last computed ones
where they were over-relaxed), and a fingerprint of the data shape and the
hyperparameters, so that a fit resumes only from its own checkpoint.
"""

import inspect

import numpy as np

from ._em import EMState, Model
from ._family import MAXIMUM_LIKELIHOOD
from ._mstep import Parameters
from ._persist import decode_json, encode_json, read_group, stored, write_group
from ._stats import Layout

_PARAMETER_NAMES = ("weights", "means", "covariances", "prec_chol")

# Version of the state record in a checkpoint; version 1 (per-initialisation
# lists, before the engine) is refused.
STATE_VERSION = 2


# Parameters that do not change the fit's result, or may change on resume.
_NOT_IDENTIFYING = ("max_iter", "verbose", "verbose_interval", "checkpoint", "cache",
                    "split_every", "random_state", "learning_decay", "learning_offset")
_USER_INIT = ("weights_init", "means_init", "precisions_init")


def fingerprint(estimator, n_samples, n_features, classes, weighted):
    """What a checkpoint must share with a fit to be resumed by it (JSON).

    ``estimator`` is any daskgmm estimator: its parameters, except those in
    ``_NOT_IDENTIFYING``, must match (a random_state that is not an int by
    its type).
    """
    params = estimator.get_params(deep=False)
    random_state = params["random_state"]
    identity = {
        "estimator": type(estimator).__name__,
        "n_samples": n_samples,
        "n_features": n_features,
        "sample_weight": weighted,
        "classes": None if classes is None else np.asarray(classes).astype(str),
        "random_state": random_state if random_state is None or isinstance(random_state, int)
        else type(random_state).__name__,
    }
    for name, value in params.items():
        if name not in _NOT_IDENTIFYING:
            identity[name] = (np.asarray(value, dtype=np.float64)
                              if name in _USER_INIT and value is not None else value)
    return {name: encode_json(value) for name, value in identity.items()}


def defaults(estimator):
    """The estimator's parameters at their defaults, encoded as in `fingerprint`.

    A checkpoint written before a parameter existed lacks it in its
    fingerprint; that daskgmm fitted as the parameter's default does.
    """
    signature = inspect.signature(type(estimator).__init__)
    return {name: encode_json(parameter.default)
            for name, parameter in signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def save(path, state, identity, family=MAXIMUM_LIKELIHOOD):
    """Write ``state`` (an ``EMState``) to the checkpoint at ``path``, atomically.

    ``family`` (a ``_family.Family``, EM's by default) gives the arrays its
    models hold beyond the Gaussian parameters.
    """
    arrays = {}
    for i, model in enumerate(state.models):
        for name in _PARAMETER_NAMES:
            arrays[f"{name}_{i}"] = np.asarray(getattr(model.parameters, name), dtype=np.float64)
        for name, array in family.checkpoint_arrays(model.parameters).items():
            arrays[f"{name}_{i}"] = array
        layout = _layout(model, arrays[f"means_{i}"].shape[1])
        for name in ("block_stats", "block_fresh"):
            if any(stats is not None for stats in getattr(model, name)):
                arrays[f"{name}_{i}"] = np.stack([
                    np.full(layout.size, np.nan) if stats is None else layout.pack(stats)
                    for stats in getattr(model, name)])
    attrs = {
        "kind": "checkpoint",
        "state_version": STATE_VERSION,
        "fingerprint": identity,
        "iteration": state.iteration,
        "blocks": None if state.blocks is None else [list(bounds) for bounds in state.blocks],
        "block": state.block,
        "models": [
            {
                "label": model.label,
                "covariance_type": model.covariance_type,
                "lower_bound": encode_json(model.lower_bound),
                "history": encode_json(model.history),
                "n_iter": model.n_iter,
                "converged": model.converged,
                "error": model.error,
                "class_code": model.class_code,
            }
            for model in state.models
        ],
    }
    write_group(path, arrays, attrs)


def load(path, identity, family=MAXIMUM_LIKELIHOOD, defaults=None):
    """The state saved at ``path``, or None when there is no checkpoint yet.

    ``family`` (a ``_family.Family``, EM's by default) puts back what its
    models hold beyond the Gaussian parameters. A parameter the checkpoint's
    fingerprint lacks matches when it is at its value in ``defaults``
    (`defaults`: the checkpoint was written before it existed).

    Raises ValueError when the checkpoint was written for other data or
    parameters, naming what differs, or by an older daskgmm.
    """
    if stored(path) is None:
        return None
    arrays, attrs = read_group(path, "checkpoint")
    if attrs.get("state_version") != STATE_VERSION:
        raise ValueError(
            f"The checkpoint {path} was written by an older daskgmm, in a format this one "
            "does not resume. Remove it or choose another checkpoint path."
        )
    saved = attrs["fingerprint"]
    differences = [
        f"{name} is {saved.get(name)!r} there and {identity.get(name)!r} here"
        for name in sorted(set(saved) | set(identity))
        if saved.get(name) != identity.get(name)
        and not (name not in saved and identity[name] == (defaults or {}).get(name))
    ]
    if differences:
        raise ValueError(
            f"The checkpoint {path} was written for other data or parameters: "
            + "; ".join(differences)
            + ". Remove it or choose another checkpoint path."
        )
    models = [
        Model(
            label=record["label"],
            parameters=family.restored(
                Parameters(record["covariance_type"],
                           *(arrays[f"{name}_{i}"] for name in _PARAMETER_NAMES)),
                {name[:-len(f"_{i}")]: array for name, array in arrays.items()
                 if name.endswith(f"_{i}")}),
            lower_bound=decode_json(record["lower_bound"]),
            history=decode_json(record["history"]),
            n_iter=record["n_iter"],
            converged=record["converged"],
            error=record["error"],
            class_code=record.get("class_code"),
        )
        for i, record in enumerate(attrs["models"])
    ]
    for i, model in enumerate(models):
        layout = _layout(model, model.parameters.means.shape[1])
        for name in ("block_stats", "block_fresh"):
            if f"{name}_{i}" in arrays:
                setattr(model, name, [None if np.isnan(row).all() else layout.unpack(row)
                                      for row in arrays[f"{name}_{i}"]])
    blocks = attrs.get("blocks")
    return EMState(models, iteration=int(attrs["iteration"]),
                   blocks=None if blocks is None else tuple(map(tuple, blocks)),
                   block=int(attrs.get("block", 0)))


def _layout(model, n_features):
    """How a model's block statistics (absolute means) lie in a row of the checkpoint."""
    return Layout(model.n_components, n_features, model.covariance_type)
