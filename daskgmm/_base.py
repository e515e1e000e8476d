"""The fit every daskgmm estimator shares, written once (after scikit-learn's ``BaseMixture``).

`DaskEstimatorMixin.fit` is the template: validate the parameters and the
data, read the targets, refuse statistics too large, find a checkpoint of
the same fit, persist the data for the fit, build the EM state (resumed or
from the starts), run EM on every model in the same passes, keep the
results. The hooks say what differs between the estimators:

``_check_fit_parameters()``
    Checks beyond ``_parameter_constraints`` (before the data is read).
``_fit_target(data, y)``
    What ``y`` gives the fit: ``(data, FitTarget or None)``.
``_statistics_layouts(data, target)``
    ``{model label: Layout}`` of the models to fit; checks the data's size.
``_model_family``
    The model family it fits (``_family``; EM's by default), which `_family`
    wraps in the family of its ``nan_policy``: the one place a fit's family
    is chosen.
``_em_options()``
    The estimator's own fields of ``_em.Settings`` (``params``,
    ``drop_failed``, ``relaxation``).
``_em_state(data, X_memory, target, blocks, settings)``
    The ``EMState`` to start from (starts, or the fitted model for a warm
    start) and the settings to run with (a variational fit's family gets its prior,
    ``_family(base)``).
    With a resumed checkpoint, ``_resumed_settings(data, settings)`` instead.
``_set_fitted(state, data, target)``
    The fitted attributes from the final models.

`DaskMixtureMixin` adds what a fitted mixture does (``predict``,
``score_samples``, ...) for `GaussianMixture` and `BayesianGaussianMixture`.
"""

import contextlib
import os
import warnings
from functools import partial
from numbers import Integral, Real
from typing import NamedTuple

import dask.array as da
import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _checkpoint, _em, _graph, _incremental, _input, _missing, _persist
from ._family import MAXIMUM_LIKELIHOOD
from ._mstep import Parameters
from ._sklearn import Interval, StrOptions
from ._stats import Layout

# daskgmm's own parameters, the same for every estimator that has them.
DASK_PARAMETER_CONSTRAINTS = {
    "split_every": [Interval(Integral, 2, None, closed="left"), None],
    "checkpoint": [str, os.PathLike, None],
    "cache": [StrOptions({"auto"}), "boolean"],
}
INCREMENTAL_PARAMETER_CONSTRAINTS = {
    "algorithm": [StrOptions({"batch", "incremental"})],
    "n_blocks": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "relaxation": [Interval(Real, 1, 2, closed="left"), StrOptions({"auto"})],
}


@contextlib.contextmanager
def restored_on_error(estimator):
    """Leave ``estimator`` as it was when the block raises: a failed fit changes nothing."""
    state = estimator.__dict__.copy()
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


class FitTarget(NamedTuple):
    """What ``y`` gives a fit: the class labels and the class index of every row."""

    classes: np.ndarray
    codes: da.Array


class DaskEstimatorMixin:
    """The fit skeleton of daskgmm's estimators (see the module docstring for its hooks).

    An estimator class has ``tol``, ``reg_covar``, ``max_iter``,
    ``verbose``, ``verbose_interval``, ``split_every``, ``checkpoint``,
    ``cache`` and ``nan_policy``; with ``algorithm``, also ``n_blocks``
    (incremental EM).
    """

    _model_family = MAXIMUM_LIKELIHOOD

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = False
        return tags

    def fit(self, X, y=None, sample_weight=None):
        """Fit by EM, one pass over ``X`` per iteration for every model.

        A fit that raises leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, pandas, Dask or zarr array, Dask DataFrame or xarray DataArray.
        y : array-like of shape (n_samples,), default=None
            Class labels, where the estimator uses them.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; integer weights equal repeated rows.

        Returns
        -------
        self
        """
        with restored_on_error(self):
            self._fit(X, y, sample_weight)
        return self

    def _is_incremental(self):
        return getattr(self, "algorithm", "batch") == "incremental"

    def _fit(self, X, y, sample_weight):
        self._validate_params()
        self._check_fit_parameters()
        incremental = self._is_incremental()
        data, X_memory = _input.fit_data(self, X, sample_weight,
                                         self.n_blocks if incremental else None)
        data, target = self._fit_target(data, y)
        layouts = self._statistics_layouts(data, target)
        blocks = _graph.blocks(data, X_memory is not None, self.n_blocks) if incremental else None
        _em.check_statistics_size(layouts, copies=len(blocks) if incremental else 1)
        settings = self._em_settings()
        state, save = None, None
        if self.checkpoint:
            identity = _checkpoint.fingerprint(
                self, data.n_samples, data.X.shape[1], None if target is None else target.classes,
                sample_weight is not None)
            state = _checkpoint.load(self.checkpoint, identity, settings.family,
                                     _checkpoint.defaults(self))
            save = partial(_checkpoint.save, self.checkpoint, identity=identity,
                           family=settings.family)
        if state is None or (state.active and state.iteration < self.max_iter):
            data = _graph.cached(data, self.cache, settings.print)
        if state is None:
            state, settings = self._em_state(data, X_memory, target, blocks, settings)
        else:
            settings.print(f"resuming from {self.checkpoint} after iteration {state.iteration}"
                           + (f", block {state.block}" if state.block else ""))
            settings = self._resumed_settings(data, settings)
        _em.run_em(data, state, settings, save, lap=_incremental.lap)
        self._set_fitted(state, data, target)

    def _em_settings(self):
        """The ``_em.Settings`` of this estimator's parameters."""
        return _em.Settings(
            tol=self.tol, reg_covar=self.reg_covar, max_iter=self.max_iter,
            split_every=self.split_every, verbose=self.verbose,
            verbose_interval=self.verbose_interval, checkpoint=self.checkpoint,
            family=self._family(), **self._em_options(),
        )

    def _family(self, base=None):
        """The family of the fit and of predictions: ``base`` (by default
        ``_model_family``) on rows with NaN as ``nan_policy`` says."""
        if self.nan_policy not in _missing.NAN_POLICIES:  # set after a fit (set_params)
            raise ValueError(
                f"nan_policy must be one of {sorted(_missing.NAN_POLICIES)}, got "
                f"{self.nan_policy!r}; set a valid one with set_params.")
        return _missing.NAN_POLICIES[self.nan_policy](
            self._model_family if base is None else base)

    # ---------------------------------------------------------------- hooks

    def _check_fit_parameters(self):
        """Checks of the parameters beyond ``_parameter_constraints``."""

    def _fit_target(self, data, y):
        """``(data, FitTarget or None)``: ``y`` is not used by default."""
        return data, None

    def _statistics_layouts(self, data, target):
        """``{model label: Layout}`` of the models the fit runs; checks the data's size."""
        raise NotImplementedError

    def _em_options(self):
        """The estimator's own fields of ``_em.Settings``."""
        return {}

    def _em_state(self, data, X_memory, target, blocks, settings):
        """``(EMState, settings)`` of a fit that does not resume a checkpoint."""
        raise NotImplementedError

    def _set_fitted(self, state, data, target):
        """The fitted attributes from the models of the final ``state``."""
        raise NotImplementedError

    def _resumed_settings(self, data, settings):
        """The settings of a fit resumed from a checkpoint."""
        return settings

    def save(self, path):
        """Write the fitted model to a zarr store at ``path``, atomically.

        Read it back with :func:`daskgmm.load`; no pickle is involved.
        """
        _persist.save(self, path)


def check_n_samples(data, n_components):
    """scikit-learn's error for fewer samples than components."""
    if data.n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {n_components}, n_samples = {data.n_samples}"
        )


def set_fitted_mixture(estimator, model, dtype, warn=True):
    """Set a mixture's fitted attributes from an engine ``Model``, as scikit-learn does.

    The statistics and M-steps are float64; the attributes are then cast
    to ``dtype``: float32 for float32 input, as scikit-learn keeps it.
    With ``warn``, a model that did not converge is a ConvergenceWarning.
    ``estimator`` gives scikit-learn's ``_set_parameters`` tuple of the
    model's parameters (``_sklearn_parameters``).
    """
    fitted = estimator.max_iter > 0 or not warn
    estimator.converged_ = bool(model.converged) if fitted else False
    if not estimator.converged_ and fitted and warn:
        warnings.warn(
            "Best performing initialization did not converge. "
            "Try different init parameters, or increase max_iter, "
            "tol, or check for degenerate data.",
            ConvergenceWarning,
            stacklevel=2,
        )
    estimator._set_parameters(estimator._sklearn_parameters(model.parameters))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        setattr(estimator, name, getattr(estimator, name).astype(dtype, copy=False))
    estimator.n_iter_ = model.n_iter
    estimator.lower_bound_ = dtype(model.lower_bound) if fitted else -np.inf
    estimator.lower_bounds_ = list(model.history)


# ---------------------------------------------------------------- prediction


def _score_samples_block(X, family, parameters, counted=False):
    """Row log-likelihoods; with ``counted``, NaN for rows that take no part in a fit."""
    scores = family.score_samples(X, parameters, counted)
    return scores.astype(_input.float_dtype(X), copy=False)


def _predict_proba_block(X, family, parameters):
    weighted = family.weighted_log_prob(X, parameters)
    proba = np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))
    return proba.astype(_input.float_dtype(X), copy=False)


def _predict_block(X, family, parameters, classes):
    """Labels; -1 for a row left out by ``nan_policy='omit'`` (classes: -1 cast to theirs)."""
    weighted = family.weighted_log_prob(X, parameters)
    labels = weighted.argmax(axis=1)
    if classes is not None:
        labels = classes[labels]
    left_out = np.isnan(weighted[:, 0])
    if left_out.any():
        labels = labels.copy()
        labels[left_out] = -1
    return labels


class DaskMixtureMixin(DaskEstimatorMixin):
    """A mixture fitted by the template: its best start's parameters, and their use.

    Subclasses give ``_sklearn_parameters``, and ``_parameters()`` where their
    family's E-step needs more than the Gaussian parameters.
    """

    _saved_attributes = _persist.MIXTURE_ATTRIBUTES

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of every row (``fit(X).predict(X)``)."""
        return self.fit(X, y, sample_weight).predict(X)

    def _initialisation_layouts(self, n_components, n_features):
        """``{label: Layout}`` of the ``n_init`` starts of a mixture."""
        return {f"initialisation {init}": Layout(n_components, n_features, self.covariance_type)
                for init in range(self.n_init)}

    def _set_fitted(self, state, data, target):
        set_fitted_mixture(self, _em.best_model(state.models, self.max_iter),
                           _input.float_dtype(data.X))

    def _apply(self, X, block_fn, n_columns=None, dtype=None, wrap=True):
        """`_input.apply_rows` on this estimator."""
        return _input.apply_rows(self, X, block_fn, n_columns, dtype, wrap)

    def score_samples(self, X):
        """Log-likelihood of every row; lazy for Dask input."""
        return self._apply(X, self._scorer())

    def _scorer(self, counted=False):
        return partial(_score_samples_block, family=self._family(),
                       parameters=self._parameters(), counted=counted)

    def _mean_score(self, X):
        """Mean per-row log-likelihood of X (one pass for Dask) and its number of rows.

        Rows that take no part in a fit under ``nan_policy`` count in neither.
        """
        scores = self._apply(X, self._scorer(counted=True), wrap=False)
        if self.nan_policy == "raise":
            mean, n_samples = scores.mean(), scores.shape[0]
        else:
            n_samples = (~np.isnan(scores)).sum()
            mean = np.nansum(scores) / n_samples
        if isinstance(scores, da.Array):
            mean, n_samples = _graph.compute(mean, da.asarray(n_samples))
        return float(mean), int(n_samples)

    def score(self, X, y=None):
        """Mean per-row log-likelihood of X, as a Python float."""
        return self._mean_score(X)[0]

    def predict(self, X):
        """Component of every row, or its class when fitted with ``y``; lazy for Dask."""
        classes = getattr(self, "classes_", None)
        block = partial(_predict_block, family=self._family(), parameters=self._parameters(),
                        classes=classes)
        dtype = np.intp if classes is None else classes.dtype
        return self._apply(X, block, dtype=dtype)

    def predict_proba(self, X):
        """Posterior probability of every component for every row; lazy for Dask."""
        block = partial(_predict_proba_block, family=self._family(),
                        parameters=self._parameters())
        return self._apply(X, block, n_columns=self.means_.shape[0])

    def _parameters(self):
        """The fitted parameters the E-step needs (``Parameters`` without covariances)."""
        check_is_fitted(self)
        return Parameters(self.covariance_type, self.weights_, self.means_, None,
                          self.precisions_cholesky_)
