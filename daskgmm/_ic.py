"""GaussianMixtureIC: the number of components and covariance type chosen by BIC or AIC.

Every candidate (each number of components × each covariance type × each
of ``n_init`` starts) advances in the same pass over the data on the EM
engine (`_em.run_em`); their starts come from shared passes (`_init`); a
final pass scores every candidate with its final parameters.
"""

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _em, _init, _input
from ._base import DaskEstimatorMixin, set_fitted_mixture
from ._covariance import n_parameters
from ._covariance_types import COVARIANCE_TYPES
from ._gaussian_mixture import GaussianMixture
from ._sklearn import Interval
from ._stats import Layout

class GaussianMixtureIC(DaskEstimatorMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture whose number of components and covariance type minimise BIC or AIC.

    All candidates advance in the same pass over the data: a search costs
    its initialisation passes, plus the iterations of its slowest
    candidate, plus one pass scoring every candidate. Each candidate
    ``(k, type)`` starts where a standalone
    ``GaussianMixture(k, covariance_type=type, n_init=n_init, random_state=random_state)``
    would, and so ends with its parameters.

    Parameters
    ----------
    min_components, max_components : int, default=1, 10
        The numbers of components tried, both included.
    covariance_type : {'all', 'full', 'tied', 'diag', 'spherical'} or list, default='all'
    criterion : {'bic', 'aic'}, default='bic'
    n_init, init_params, tol, reg_covar, max_iter, random_state
        As :class:`daskgmm.GaussianMixture`, for every candidate.
    algorithm : {'batch', 'incremental'}, default='batch'
    n_blocks, relaxation : int or 'auto', float or 'auto', default='auto'
        As :class:`daskgmm.GaussianMixture`: with ``'incremental'``, every
        candidate runs incremental EM in the same block computations, each
        with its own over-relaxation factor.
    verbose, verbose_interval, split_every, checkpoint, cache
        As :class:`daskgmm.GaussianMixture`; verbose output says per pass how
        many candidates are still running.
    nan_policy : {'raise', 'omit', 'marginalize'}, default='raise'
        As :class:`daskgmm.GaussianMixture`, for every candidate; ``bic`` and
        ``aic`` count the rows that take part (complete rows under ``'omit'``).

    Attributes
    ----------
    best_estimator_ : daskgmm.GaussianMixture
        The fitted candidate with the lowest criterion.
    n_components_, covariance_type_ : int, str
        Its shape.
    criterion_ : float
        Its criterion value. Criteria are computed on the final parameters
        in one last pass; with ``sample_weight``, rows count with their
        weights (the number of samples is the total weight), so integer
        weights equal repeated rows; without, they equal the best
        estimator's ``bic(X)`` / ``aic(X)``.
    results_ : dict of ndarray
        One entry per candidate: ``n_components``, ``covariance_type``,
        ``bic``, ``aic``, ``lower_bound``, ``n_iter``, ``converged``.
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        "min_components": [Interval(Integral, 1, None, closed="left")],
        "max_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [str, list, tuple],
        "criterion": [str],
        # As GaussianMixture's, for every candidate.
        **{name: GaussianMixture._parameter_constraints[name] for name in (
            "n_init", "init_params", "tol", "reg_covar", "max_iter", "random_state", "algorithm",
            "n_blocks", "relaxation", "verbose", "verbose_interval", "split_every", "checkpoint",
            "cache", "nan_policy")},
    }

    def __init__(
        self,
        min_components=1,
        max_components=10,
        *,
        covariance_type="all",
        criterion="bic",
        n_init=1,
        init_params="kmeans",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        random_state=None,
        algorithm="batch",
        n_blocks="auto",
        relaxation="auto",
        verbose=0,
        verbose_interval=10,
        split_every=None,
        checkpoint=None,
        cache="auto",
        nan_policy="raise",
    ):
        self.min_components = min_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.n_init = n_init
        self.init_params = init_params
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.random_state = random_state
        self.algorithm = algorithm
        self.n_blocks = n_blocks
        self.relaxation = relaxation
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.split_every = split_every
        self.checkpoint = checkpoint
        self.cache = cache
        self.nan_policy = nan_policy

    def fit(self, X, y=None, sample_weight=None):
        """Fit every candidate in shared passes over ``X`` and keep the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As :meth:`daskgmm.GaussianMixture.fit`.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        return super().fit(X, y, sample_weight)

    def _covariance_types(self):
        types = self.covariance_type
        if isinstance(types, str):
            types = list(COVARIANCE_TYPES) if types == "all" else [types]
        unknown = [t for t in types if t not in COVARIANCE_TYPES]
        if unknown or not types:
            raise ValueError(
                f"covariance_type must be 'all', one of {list(COVARIANCE_TYPES)} or a list of "
                f"them; got {self.covariance_type!r}."
            )
        return list(dict.fromkeys(types))

    def _check_fit_parameters(self):
        if self.criterion not in ("bic", "aic"):
            raise ValueError(f"criterion must be 'bic' or 'aic'; got {self.criterion!r}.")
        if self.min_components > self.max_components:
            raise ValueError(
                f"min_components ({self.min_components}) must not exceed max_components "
                f"({self.max_components})."
            )
        self._covariance_types()

    def _candidates(self):
        """``{(candidate, init): model label}`` of every candidate of the search."""
        candidates = [_init.Candidate(k, t)
                      for k in range(self.min_components, self.max_components + 1)
                      for t in self._covariance_types()]
        return {(c, i): f"K={c.n_components} {c.covariance_type}"
                + (f" init {i}" if self.n_init > 1 else "")
                for c in candidates for i in range(self.n_init)}

    def _statistics_layouts(self, data, target):
        if self.max_components > data.n_samples:
            raise ValueError(
                f"max_components ({self.max_components}) must not exceed the number of "
                f"samples ({data.n_samples})."
            )
        return {label: Layout(c.n_components, data.X.shape[1], c.covariance_type)
                for (c, _), label in self._candidates().items()}

    def _em_options(self):
        return dict(drop_failed=True, relaxation=self.relaxation)

    def _em_state(self, data, X_memory, target, blocks, settings):
        return _em.EMState(self._starts(data, X_memory), blocks=blocks), settings

    def _set_fitted(self, state, data, target):
        labels = self._candidates()
        candidates = list(dict.fromkeys(c for c, _ in labels))
        by_label = {model.label: model for model in state.models}
        chosen = [_em.best_model([by_label[labels[c, i]] for i in range(self.n_init)],
                                 self.max_iter) for c in candidates]
        self._set_results(data, candidates, chosen)

    def _starts(self, data, X_memory):
        data, X_memory, _ = _init.initialisation_data(data, X_memory)
        labels = self._candidates()
        candidates = list(dict.fromkeys(c for c, _ in labels))
        if X_memory is not None:
            starts = _init.memory_starts(X_memory, candidates, self.n_init, self.init_params,
                                         self.reg_covar, self.random_state)
        else:
            starts = _init.dask_starts(data, candidates, self.n_init, self.init_params,
                                       self.reg_covar, self.random_state, self.split_every,
                                       self.checkpoint)
        return [_em.Model(label, starts[key]) for key, label in labels.items()]

    def _set_results(self, data, candidates, chosen):
        """Score every candidate in one pass; results_, the best estimator, warnings."""
        n_features = data.X.shape[1]
        loglik, weight = np.array(_em.score(data, chosen, self._family(),
                                            self.checkpoint)).T
        n_params = np.array([n_parameters(c.n_components, n_features, c.covariance_type)
                             for c in candidates])
        failed = np.array([model.error is not None for model in chosen])
        bic = np.where(failed, np.inf, -2 * loglik + n_params * np.log(weight))
        aic = np.where(failed, np.inf, -2 * loglik + 2 * n_params)
        if failed.all():
            raise ValueError(f"Every candidate failed; the first: {chosen[0].error}")
        self.results_ = {
            "n_components": np.array([c.n_components for c in candidates]),
            "covariance_type": np.array([c.covariance_type for c in candidates]),
            "bic": bic,
            "aic": aic,
            "lower_bound": np.array([model.lower_bound for model in chosen]),
            "n_iter": np.array([model.n_iter for model in chosen]),
            "converged": np.array([model.converged for model in chosen]),
        }
        values = bic if self.criterion == "bic" else aic
        best = int(np.argmin(values))
        self.best_estimator_ = self._estimator(candidates[best], chosen[best],
                                               _input.float_dtype(data.X))
        self.n_components_ = candidates[best].n_components
        self.covariance_type_ = candidates[best].covariance_type
        self.criterion_ = float(values[best])
        not_converged = [model.label for model in chosen if not model.converged]
        if not_converged and self.max_iter > 0:
            warnings.warn(
                f"{len(not_converged)} candidate(s) did not converge: "
                f"{', '.join(not_converged)}. Try increasing max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )

    def _estimator(self, candidate, model, dtype):
        """A fitted GaussianMixture holding a candidate's final model, attributes of ``dtype``."""
        estimator = GaussianMixture(
            candidate.n_components, covariance_type=candidate.covariance_type, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter, n_init=self.n_init,
            init_params=self.init_params, random_state=self.random_state,
            verbose=self.verbose, verbose_interval=self.verbose_interval,
            split_every=self.split_every, cache=self.cache, algorithm=self.algorithm,
            n_blocks=self.n_blocks, relaxation=self.relaxation, nan_policy=self.nan_policy,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            set_fitted_mixture(estimator, model, dtype)
        for name in ("n_features_in_", "feature_names_in_"):
            if hasattr(self, name):
                setattr(estimator, name, getattr(self, name))
        return estimator

    # ------------------------------------------------- the best estimator's

    def _best(self):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_

    def predict(self, X):
        """Component of every row under the best model; lazy for Dask input."""
        return self._best().predict(X)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of every row under the best model."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def predict_proba(self, X):
        """Posterior probability of every component of the best model; lazy for Dask."""
        return self._best().predict_proba(X)

    def score_samples(self, X):
        """Log-likelihood of every row under the best model; lazy for Dask."""
        return self._best().score_samples(X)

    def score(self, X, y=None):
        """Mean per-row log-likelihood of X under the best model, a float."""
        return self._best().score(X)

    def bic(self, X):
        """BIC of the best model on X, a float."""
        return self._best().bic(X)

    def aic(self, X):
        """AIC of the best model on X, a float."""
        return self._best().aic(X)

    def sample(self, n_samples=1):
        """Draw rows from the best model: ``(X, labels)``."""
        return self._best().sample(n_samples)

    def save(self, path):
        """Save the best model; :func:`daskgmm.load` returns it as a GaussianMixture."""
        self._best().save(path)
