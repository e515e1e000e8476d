"""GaussianMixtureClassifier: one Gaussian mixture per class, all fitted in the same passes.

Each class is one engine `Model` (`_em.Model.class_code`) whose statistics
come from its class's rows only, so every row's responsibilities are
restricted to its class's components. One component per class is quadratic
discriminant analysis: the class statistics, in one pass. More is mixture
discriminant analysis (Hastie & Tibshirani 1996): EM on every class at
once, one pass per iteration of the slowest class.
"""

import warnings
from functools import partial
from numbers import Integral

import dask.array as da
import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _em, _graph, _init, _input, _persist
from ._base import (DASK_PARAMETER_CONSTRAINTS, INCREMENTAL_PARAMETER_CONSTRAINTS,
                    DaskEstimatorMixin, FitTarget)
from ._gaussian_mixture import GaussianMixture
from ._mstep import Parameters
from ._sklearn import Interval
from ._stats import Layout


def _log_joint_block(X, family, class_parameters, log_prior):
    """log p(x, class) of every row (n, n_classes): each class's mixture density plus its prior.

    The densities are the ``family``'s, which says what NaN means (see
    ``_missing``): NaN for a row left out by ``'omit'``, ``log_prior`` for a
    row with nothing observed under ``'marginalize'``.
    """
    return log_prior + np.stack([
        family.score_samples(X, parameters) for parameters in class_parameters
    ], axis=1).reshape(X.shape[0], len(class_parameters))


def _predict_log_proba_block(X, log_joint):
    joint = log_joint(X)
    return joint - logsumexp(joint, axis=1, keepdims=True)


def _predict_proba_block(X, log_joint):
    return np.exp(_predict_log_proba_block(X, log_joint))


def _predict_block(X, log_joint, classes):
    """The most probable class; -1 (cast to the classes' dtype) for a row left out by 'omit'."""
    joint = log_joint(X)
    labels = classes[joint.argmax(axis=1)]
    left_out = np.isnan(joint[:, 0])
    if left_out.any():
        labels[left_out] = -1
    return labels


@_persist.register
class GaussianMixtureClassifier(DaskEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Classifier modelling each class by a Gaussian mixture, all classes in the same passes.

    With ``n_components_per_class=1`` this is quadratic discriminant analysis
    (with maximum-likelihood covariances), fitted in one pass over the data;
    with more, mixture discriminant analysis (Hastie & Tibshirani 1996): each
    class's mixture is fitted by EM on its own rows, every class advancing
    in the same pass, so a fit costs the initialisation passes plus the
    iterations of the slowest class. Each class's mixture equals a
    standalone :class:`daskgmm.GaussianMixture` fitted on that class's rows
    from the same start. Inputs are those of ``GaussianMixture.fit``.

    Parameters
    ----------
    n_components_per_class : int, default=1
        Mixture components of every class.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Of each class's mixture ('tied': shared by the components of one class).
    tol, reg_covar, max_iter, n_init, random_state, verbose, verbose_interval
        As :class:`daskgmm.GaussianMixture`, for every class's mixture.
    split_every, checkpoint, cache, algorithm, n_blocks, relaxation
        As :class:`daskgmm.GaussianMixture`: every class's mixture in the
        same passes (and checkpoints; with ``'incremental'``, the same blocks).
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        Each class starts within its own rows. In-memory input: scikit-learn's
        start on the class's rows, as a standalone fit on them with the same
        ``random_state``. Dask input: one sample pass serves every class;
        'kmeans' clusters each class's sampled rows, then one pass assigns
        every row to its class's nearest centre; the other methods start from
        each class's sampled rows. Unused with one component per class.
    priors : array-like of shape (n_classes,), default=None
        Class prior probabilities (summing to 1); None: the classes'
        shares of the total sample weight (of the rows, without weights).
    nan_policy : {'raise', 'omit', 'marginalize'}, default='raise'
        As :class:`daskgmm.GaussianMixture`, for every class's mixture. With
        ``'marginalize'`` EM runs also with one component per class (the
        class statistics of the filled rows are then only its start).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    class_prior_ : ndarray of shape (n_classes,)
    weights_ : ndarray of shape (n_classes, n_components_per_class)
    means_ : ndarray of shape (n_classes, n_components_per_class, n_features)
    covariances_, precisions_cholesky_ : ndarray
        Per class (first axis), shaped as ``GaussianMixture``'s for its
        covariance type: ``(n_classes, K, D, D)`` full, ``(n_classes, D, D)``
        tied, ``(n_classes, K, D)`` diag, ``(n_classes, K)`` spherical.
    converged_ : ndarray of bool, shape (n_classes,)
        True with one component per class (the class statistics are final).
    n_iter_ : ndarray of int, shape (n_classes,)
        EM iterations of each class's kept start; 1 with one component per
        class (the class statistics, EM's fixed point after one M-step).
    lower_bound_ : ndarray of shape (n_classes,)
        Mean log-likelihood of each class's rows at its last E-step (NaN
        with one component per class, where no E-step runs).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
    """

    _parameter_constraints: dict = {
        "n_components_per_class": [Interval(Integral, 1, None, closed="left")],
        "priors": ["array-like", None],
        **{name: GaussianMixture._parameter_constraints[name] for name in (
            "covariance_type", "tol", "reg_covar", "max_iter", "n_init", "init_params",
            "random_state", "verbose", "verbose_interval", "nan_policy")},
        **DASK_PARAMETER_CONSTRAINTS,
        **INCREMENTAL_PARAMETER_CONSTRAINTS,
    }
    _saved_attributes = _persist.SavedAttributes((
        "class_prior_", "weights_", "means_", "covariances_", "precisions_cholesky_",
        "converged_", "n_iter_", "lower_bound_"))

    def __init__(
        self,
        n_components_per_class=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        priors=None,
        random_state=None,
        verbose=0,
        verbose_interval=10,
        split_every=None,
        checkpoint=None,
        cache="auto",
        algorithm="batch",
        n_blocks="auto",
        relaxation="auto",
        nan_policy="raise",
    ):
        self.n_components_per_class = n_components_per_class
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.priors = priors
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.split_every = split_every
        self.checkpoint = checkpoint
        self.cache = cache
        self.algorithm = algorithm
        self.n_blocks = n_blocks
        self.relaxation = relaxation
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, sample_weight=None):
        """Fit every class's mixture on its rows, all classes in the same passes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, pandas, Dask or zarr array, Dask DataFrame or xarray DataArray.
        y : array-like of shape (n_samples,)
            Class labels (NumPy, pandas or Dask).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; integer weights equal repeated rows.

        Returns
        -------
        self
        """
        return super().fit(X, y, sample_weight)

    def _fit_target(self, data, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = _input.vector(y)
        if not isinstance(y, da.Array):
            check_classification_targets(y)
        classes, codes = _input.encode_labels(y, data)
        data = data._replace(class_codes=codes.rechunk((data.X.chunks[0],)))
        self._check_classes(data, classes)
        return data, FitTarget(classes, data.class_codes)

    def _statistics_layouts(self, data, target):
        n_starts = self.n_init if self.n_components_per_class > 1 else 1  # see class_starts
        return {f"class {label!r} init {init}": Layout(
                    self.n_components_per_class, data.X.shape[1], self.covariance_type)
                for label in target.classes.tolist() for init in range(n_starts)}

    def _em_options(self):
        return dict(relaxation=self.relaxation)

    def _em_state(self, data, X_memory, target, blocks, settings):
        """Every class's starts; with one component per class on complete data, the
        class statistics are EM's fixed point: those models start converged and no EM runs."""
        start_data, X_memory, _ = _init.initialisation_data(data, X_memory)
        starts = _init.class_starts(
            start_data, X_memory, target.classes, self.n_components_per_class,
            self.covariance_type,
            self.n_init, self.init_params, self.reg_covar, self.random_state, self.split_every,
            self.checkpoint,
        )
        models = [_em.Model(f"class {label!r}" + (f" init {init}" if len(inits) > 1 else ""),
                            start, class_code=code, converged=not self._iterates())
                  for code, (label, inits) in enumerate(zip(target.classes.tolist(), starts))
                  for init, start in enumerate(inits)]
        return _em.EMState(models, blocks=blocks), settings

    def _check_classes(self, data, classes):
        """Every class has enough rows and some weight; sets ``class_prior_``."""
        codes, n_classes = data.class_codes, len(classes)
        counts = da.bincount(codes, minlength=n_classes)
        weights = counts if data.sample_weight is None else da.bincount(
            codes, weights=data.sample_weight, minlength=n_classes)
        counts, weights = _graph.compute(counts, weights, scheduler=data.scheduler)
        for label, count, weight in zip(classes.tolist(), counts, weights):
            if count < self.n_components_per_class:
                raise ValueError(
                    f"The class {label!r} has {count} row(s), fewer than "
                    f"n_components_per_class={self.n_components_per_class}."
                )
            if not weight > 0:
                raise ValueError(
                    f"The class {label!r} has a total sample_weight of zero; every class "
                    "needs some weight (drop its rows instead)."
                )
        if self.priors is None:
            self.class_prior_ = weights / weights.sum()
            return
        priors = np.asarray(self.priors, dtype=np.float64)
        if priors.shape != (n_classes,) or (priors < 0).any() or not np.isclose(priors.sum(), 1):
            raise ValueError(
                f"priors must hold {n_classes} non-negative probabilities summing to 1, one "
                f"per class of {classes.tolist()}; got {self.priors!r}."
            )
        self.class_prior_ = priors

    def _iterates(self):
        """Whether EM runs (not with one component per class on complete data)."""
        return self.n_components_per_class > 1 or self.nan_policy == "marginalize"

    def _set_fitted(self, state, data, target):
        """The fitted attributes from each class's kept ``Model`` (in class order)."""
        self.classes_ = target.classes
        models = [_em.best_model([model for model in state.models if model.class_code == code],
                                 self.max_iter)
                  for code in range(len(target.classes))]
        fitted = self.max_iter > 0 and self._iterates()
        parameters = [model.parameters for model in models]
        self.weights_ = np.stack([p.weights for p in parameters])
        self.means_ = np.stack([p.means for p in parameters])
        self.covariances_ = np.stack([p.covariances for p in parameters])
        self.precisions_cholesky_ = np.stack([p.prec_chol for p in parameters])
        self.n_iter_ = np.array([model.n_iter for model in models])
        self.lower_bound_ = np.array([model.lower_bound if fitted else np.nan
                                      for model in models])
        if not self._iterates():
            self.n_iter_ = np.ones(len(models), dtype=int)
            self.converged_ = np.ones(len(models), dtype=bool)
            return
        self.converged_ = np.array([model.converged for model in models]) & fitted
        if fitted and not self.converged_.all():
            warnings.warn(
                f"The mixtures of the classes {self.classes_[~self.converged_].tolist()} did "
                "not converge. Try different init parameters, or increase max_iter, tol, or "
                "check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------- predict

    def _log_joint(self):
        """The block function giving log p(x, class) of every row."""
        check_is_fitted(self)
        with np.errstate(divide="ignore"):  # a class with prior 0 is never predicted
            log_prior = np.log(self.class_prior_)
        return partial(
            _log_joint_block,
            family=self._family(),
            class_parameters=[Parameters(self.covariance_type, weights, means, None, prec_chol)
                              for weights, means, prec_chol in zip(
                                  self.weights_, self.means_, self.precisions_cholesky_)],
            log_prior=log_prior,
        )

    def predict(self, X):
        """The most probable class of every row; lazy for Dask input."""
        block = partial(_predict_block, log_joint=self._log_joint(), classes=self.classes_)
        return _input.apply_rows(self, X, block, dtype=self.classes_.dtype)

    def predict_proba(self, X):
        """Posterior probability of every class (columns as ``classes_``); lazy for Dask."""
        block = partial(_predict_proba_block, log_joint=self._log_joint())
        return _input.apply_rows(self, X, block, n_columns=len(self.classes_),
                                 dtype=np.float64)

    def predict_log_proba(self, X):
        """Log of `predict_proba`, computed without underflow; lazy for Dask."""
        block = partial(_predict_log_proba_block, log_joint=self._log_joint())
        return _input.apply_rows(self, X, block, n_columns=len(self.classes_),
                                 dtype=np.float64)
