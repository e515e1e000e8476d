"""The estimator: scikit-learn's GaussianMixture, fitted by EM on Dask, one pass per iteration."""

import math
import os
import warnings
from functools import partial
from numbers import Integral, Real

import dask.array as da
import numpy as np
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from . import _checkpoint, _em, _graph, _init, _input, _kernels, _persist
from ._covariance import n_parameters
from ._mstep import Parameters
from ._sklearn import NUMPY, Interval, StrOptions
from ._stats import Layout


def _encode_labels(y, data):
    """classes_ and the (NumPy or Dask) class index of every row."""
    if isinstance(y, da.Array):
        if y.ndim != 1:
            raise ValueError(f"y must be 1-dimensional; got shape {y.shape}.")
        (classes,) = _graph.compute(da.unique(y), scheduler=data.scheduler)
        target = type_of_target(classes, raise_unknown=True)
    else:
        y = column_or_1d(y, warn=True)
        classes = np.unique(y)
        target = type_of_target(y, raise_unknown=True)
    if y.shape[0] != data.n_samples:
        raise ValueError(
            f"y has {y.shape[0]} samples but X has {data.n_samples}; they must match."
        )
    if target not in ("binary", "multiclass"):
        raise ValueError(
            f"y must hold class labels (binary or multiclass); got a {target!r} target."
        )
    if isinstance(y, da.Array):
        return classes, y.map_blocks(partial(np.searchsorted, classes), dtype=np.intp)
    return classes, da.from_array(np.searchsorted(classes, y), chunks=(data.X.chunks[0],))


def _weighted_log_prob(X, params, covariance_type):
    _kernels.check_finite(X)
    return _kernels.estimate_weighted_log_prob(X, covariance_type=covariance_type, **params)


def _score_samples_block(X, params, covariance_type):
    scores = logsumexp(_weighted_log_prob(X, params, covariance_type), axis=1)
    return scores.astype(_input.float_dtype(X), copy=False)


def _predict_proba_block(X, params, covariance_type):
    weighted = _weighted_log_prob(X, params, covariance_type)
    proba = np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))
    return proba.astype(_input.float_dtype(X), copy=False)


def _predict_block(X, params, covariance_type, classes):
    labels = _weighted_log_prob(X, params, covariance_type).argmax(axis=1)
    return labels if classes is None else classes[labels]


class GaussianMixture(_SklearnGaussianMixture):
    """Gaussian mixture fitted by EM on Dask, one pass over the data per iteration.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture` whose
    ``fit`` also takes Dask and zarr arrays of any size, Dask DataFrames and
    xarray DataArrays (see ``daskgmm._input``). Each row chunk
    computes the E-step and its partial sufficient statistics in one task; a
    tree reduction combines them and the M-step runs on the small result.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components (ignored by ``fit(X, y)``, which uses
        one component per class).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the per-sample mean
        log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
        Number of initialisations; they all advance in the same pass over
        the data and the one with the best lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        For in-memory input, exactly scikit-learn's initialisation. For Dask
        input: k-means or k-means++ on a uniform sample of at most
        ``KMEANS_SAMPLE_SIZE`` rows (and ``KMEANS_SAMPLE_BYTES``), then (k-means)
        one pass assigning every row
        to its nearest centre; ``random`` draws responsibilities per row from
        its global index; ``random_from_data`` picks rows as scikit-learn does.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial parameters, as in scikit-learn.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
    params : str, default='wmc'
        Which parameters the M-step updates: any of ``'w'`` (weights),
        ``'m'`` (means) and ``'c'`` (covariances). With ``'m'`` left out,
        covariances are estimated about the fixed means.
    verbose : int, default=0
        Print, every ``verbose_interval`` iterations, the iteration, the lower
        bound, its change and the seconds taken.
    verbose_interval : int, default=10
    split_every : int or None, default=None
        Fan-in of the tree reduction (None: Dask's default). The statistics
        of up to 32 row chunks merge on the client, without a tree.
    checkpoint : str or path, default=None
        Save the EM state there (atomically) after every iteration. A fit
        that finds a checkpoint of the same data shape and parameters
        resumes after its last completed iteration; ``max_iter`` counts the
        iterations before the resume too. Another fit's checkpoint is a
        ValueError.
    cache : 'auto' or bool, default='auto'
        For Dask input: persist the data for the fit. ``'auto'`` persists on
        the workers of a distributed cluster when the data takes at most
        ``CACHE_FRACTION`` of their memory, and otherwise streams it from its
        source every iteration (never loading it into this process);
        ``True`` persists on the active scheduler whatever the size.
        Verbose output says which.
    algorithm : {'batch', 'incremental'}, default='batch'
        ``'batch'``: EM, one pass per iteration, as scikit-learn's.
        ``'incremental'``: block-incremental EM; the rows are cut into
        ``n_blocks`` contiguous groups of row chunks and the M-step runs
        after every block, on the statistics of all blocks (each as last
        computed). An iteration is one lap over the blocks (one pass);
        ``lower_bounds_`` holds each lap's free energy per unit weight (a
        lower bound of the mean log-likelihood under the lap's parameters,
        never decreasing). It usually needs several times fewer passes
        than batch EM.
    n_blocks : int or 'auto', default='auto'
        Blocks of incremental EM, at least 2. ``'auto'``: 4 row chunks in
        each block, 2 to 16 blocks, from X's chunks only (the same fit on
        any cluster). An int must not exceed the number of row chunks.
        In-memory input is cut into enough chunks.
    relaxation : float or 'auto', default='auto'
        Over-relaxation factor omega of incremental EM, in [1, 2): a block's
        new statistics replace its old ones as ``old + omega (new - old)``.
        1 is plain incremental EM, about half of batch EM's passes.
        ``'auto'``: plain for the first 4 laps, then omega estimated from
        how fast their bound converged (towards 2 the slower); about a
        third of batch EM's passes on overlapping components. A step that
        would take the bound below the last lap's is replaced by a plain
        one. Ignored by batch EM.
    learning_decay : float, default=0.7
        In (0.5, 1]: ``partial_fit``'s step ``(learning_offset + t) ** -learning_decay``
        at its call t (counted from 0, the first call).
    learning_offset : float, default=10.0
        At least 0; larger values slow down the early steps of ``partial_fit``.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        Fitted parameters, NumPy arrays, shaped as in scikit-learn.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Per-sample mean log-likelihood of the last E-step of the best
        initialisation.
    lower_bounds_ : list of float
        One value per iteration of the best initialisation.
    n_features_in_ : int
    classes_ : ndarray
        Class labels, only when fitted with ``y``.
    """

    _parameter_constraints: dict = {
        **_SklearnGaussianMixture._parameter_constraints,
        "params": [str],
        "split_every": [Interval(Integral, 2, None, closed="left"), None],
        "checkpoint": [str, os.PathLike, None],
        "cache": [StrOptions({"auto"}), "boolean"],
        "algorithm": [StrOptions({"batch", "incremental"})],
        "n_blocks": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "relaxation": [Interval(Real, 1, 2, closed="left"), StrOptions({"auto"})],
        "learning_decay": [Interval(Real, 0.5, 1, closed="right")],
        "learning_offset": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        params="wmc",
        verbose=0,
        verbose_interval=10,
        split_every=None,
        checkpoint=None,
        cache="auto",
        algorithm="batch",
        n_blocks="auto",
        relaxation="auto",
        learning_decay=0.7,
        learning_offset=10.0,
    ):
        super().__init__(
            n_components=n_components,
            covariance_type=covariance_type,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            weights_init=weights_init,
            means_init=means_init,
            precisions_init=precisions_init,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.params = params
        self.split_every = split_every
        self.checkpoint = checkpoint
        self.cache = cache
        self.algorithm = algorithm
        self.n_blocks = n_blocks
        self.relaxation = relaxation
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = False
        return tags

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM, one pass over ``X`` per iteration.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, pandas, Dask or zarr array, Dask DataFrame or xarray DataArray.
        y : array-like of shape (n_samples,), default=None
            Class labels: one component per class, started from the class
            statistics; ``predict`` then returns labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; integer weights equal repeated rows.

        Returns
        -------
        self
        """
        with _em.restored_on_error(self):
            self._fit(X, y, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of every row (``fit(X).predict(X)``)."""
        return self.fit(X, y, sample_weight).predict(X)

    def _fit(self, X, y, sample_weight):
        incremental = self.algorithm == "incremental"
        data, X_memory, classes, labels, n_components = self._fit_input(
            X, y, sample_weight, self.n_blocks if incremental else None)
        blocks = _em.blocks(data, X_memory is not None, self.n_blocks) if incremental else None
        _em.check_statistics_size({
            f"initialisation {init}": Layout(n_components, data.X.shape[1], self.covariance_type)
            for init in range(self.n_init)
        }, copies=len(blocks) if incremental else 1)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if labels is not None:
            if not do_init and not np.array_equal(classes, getattr(self, "classes_", None)):
                raise ValueError("warm_start with y needs the same classes as the last fit.")
            starts = (self.weights_init, self.means_init, self.precisions_init)
            if any(start is not None for start in starts):
                raise ValueError(
                    "fit with y starts from the class statistics; weights_init, means_init "
                    "and precisions_init cannot be given with it."
                )
            self.classes_ = classes
        elif hasattr(self, "classes_") and do_init:
            del self.classes_

        settings = self._settings()
        identity, state = None, None
        if self.checkpoint:
            identity = _checkpoint.fingerprint(
                self, data.n_samples, data.X.shape[1], classes if labels is not None else None,
                sample_weight is not None,
            )
            state = _checkpoint.load(self.checkpoint, identity)
        if state is None or (state.active and state.iteration < self.max_iter):
            data = _em.cached(data, self.cache, settings)
        if state is not None:
            settings.print(f"resuming from {self.checkpoint} after iteration {state.iteration}"
                           + (f", block {state.block}" if state.block else ""))
        elif do_init:
            starts = self._initial_parameters(data, X_memory, labels, n_components)
            state = _em.EMState([_em.Model(str(i), start) for i, start in enumerate(starts)],
                                blocks=blocks)
        else:
            fitted = Parameters(self.covariance_type, *(
                np.asarray(value, dtype=np.float64) for value in self._get_parameters()))
            state = _em.EMState([_em.Model("0", fitted, lower_bound=self.lower_bound_)],
                                blocks=blocks)
        save = None
        if self.checkpoint:
            save = partial(_checkpoint.save, self.checkpoint, identity=identity)
        _em.run_em(data, state, settings, save)
        self._set_fitted(_em.best_model(state.models, self.max_iter),
                         _input.float_dtype(data.X))
        self.__dict__.pop("_stepwise", None)

    def _fit_input(self, X, y, sample_weight, n_blocks=None):
        """Validate parameters and data for a fit from scratch.

        Returns ``(RowData, X in memory or None, classes, class index of
        every row, n_components)``; classes and labels are None without ``y``.
        ``n_blocks``: incremental EM's, which chunks in-memory X by blocks.
        """
        self._validate_params()
        if not set(self.params) <= set("wmc"):
            raise ValueError(
                f"params must be made of the letters 'w', 'm' and 'c'; got {self.params!r}."
            )
        data, X_memory = _input.fit_data(self, X, sample_weight, n_blocks)
        classes = labels = None
        n_components = self.n_components
        if y is not None:
            classes, labels = _encode_labels(_input.vector(y), data)
            n_components = len(classes)
        if data.n_samples < n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {n_components}, n_samples = {data.n_samples}"
            )
        self._check_parameters(data.X, xp=NUMPY)
        return data, X_memory, classes, labels, n_components

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of stepwise (online) EM on the rows of ``X`` (Cappé & Moulines 2009).

        One pass over ``X`` computes the statistics of its rows under the
        current parameters; the running statistics move towards them with
        step ``(learning_offset + t) ** -learning_decay`` at call t (see
        ``_em.stepped``), and the M-step runs on them. The first call (t = 0)
        initialises from its rows as ``fit`` does (``init_params``; with
        ``n_init > 1``, the start that scores its rows best) and takes their
        statistics whole; after ``fit``, the first call starts from the fitted
        parameters. ``n_iter_`` counts the calls, ``lower_bounds_`` holds the
        mean log-likelihood of each call's rows before its step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As :meth:`fit`.
        y : ignored
            As scikit-learn's unsupervised ``partial_fit`` methods (wrappers
            such as ``dask_ml.wrappers.Incremental`` pass placeholders); for
            a start from class statistics, ``fit(X, y)`` first.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        with _em.restored_on_error(self):
            self._partial_fit(X, sample_weight)
        return self

    def _partial_fit(self, X, sample_weight):
        running, calls = getattr(self, "_stepwise", (None, 0))
        settings = self._settings()
        if hasattr(self, "converged_"):
            self._validate_params()
            data, _ = _input.fit_data(self, X, sample_weight, reset=False)
            parameters = Parameters(self.covariance_type, *(
                np.asarray(value, dtype=np.float64) for value in self._get_parameters()))
            models = [_em.Model("0", parameters, self.lower_bound_, list(self.lower_bounds_),
                                self.n_iter_)]
        else:
            data, X_memory, _, _, n_components = self._fit_input(X, None, sample_weight)
            starts = self._initial_parameters(data, X_memory, None, n_components)
            models = [_em.Model(str(i), start) for i, start in enumerate(starts)]
        batches = _em.pass_statistics(data, models, self.split_every, None)
        scores = [float(stats.loglik / stats.weight) for stats in batches]
        best = int(np.argmax(scores))
        model, batch = models[best], batches[best]
        if not batch.weight > 0:
            raise ValueError("sample_weight must not sum to zero.")
        if calls > 0:
            rho = (self.learning_offset + calls) ** -self.learning_decay
            batch = _em.stepped(running, batch, rho, self.covariance_type)
        iteration = model.n_iter + 1
        _em.m_step_model(model, batch, settings, iteration)
        _em.record_bound(model, scores[best], settings, iteration)
        self._set_fitted(model, _input.float_dtype(data.X), warn=False)
        self._stepwise = (batch, calls + 1)

    def _settings(self):
        return _em.Settings(
            tol=self.tol, reg_covar=self.reg_covar, max_iter=self.max_iter, params=self.params,
            split_every=self.split_every, verbose=self.verbose,
            verbose_interval=self.verbose_interval, checkpoint=self.checkpoint,
            relaxation=self.relaxation,
        )

    # ------------------------------------------------------- initialisation

    def _initial_parameters(self, data, X_memory, labels, n_components):
        """One ``Parameters`` per initialisation."""
        user_init = dict(weights_init=self.weights_init, means_init=self.means_init,
                         precisions_init=self.precisions_init)
        if labels is not None:
            return [_init.class_start(data, labels, n_components, self.covariance_type,
                                      self.reg_covar, self.split_every, self.checkpoint)]
        candidate = _init.Candidate(n_components, self.covariance_type)
        if X_memory is not None:
            starts = _init.memory_starts(X_memory, [candidate], self.n_init, self.init_params,
                                         self.reg_covar, self.random_state, **user_init)
            return [starts[candidate, init] for init in range(self.n_init)]
        if all(value is not None for value in user_init.values()):
            return [_init.with_user_init(None, self.covariance_type, **user_init)] * self.n_init
        starts = _init.dask_starts(data, [candidate], self.n_init, self.init_params,
                                   self.reg_covar, self.random_state, self.split_every,
                                   self.checkpoint)
        return [_init.with_user_init(starts[candidate, init], self.covariance_type, **user_init)
                for init in range(self.n_init)]

    # ------------------------------------------------------------------- EM

    def _set_fitted(self, model, dtype, warn=True):
        """Set the fitted attributes from an engine ``Model``, as scikit-learn does.

        The statistics and M-steps are float64; the attributes are then cast
        to ``dtype``: float32 for float32 input, as scikit-learn keeps it.
        With ``warn``, a model that did not converge is a ConvergenceWarning.
        """
        fitted = self.max_iter > 0 or not warn
        self.converged_ = bool(model.converged) if fitted else False
        if not self.converged_ and fitted and warn:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_parameters(self._sklearn_parameters(model.parameters))
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
            setattr(self, name, getattr(self, name).astype(dtype, copy=False))
        self.n_iter_ = model.n_iter
        self.lower_bound_ = dtype(model.lower_bound) if fitted else -np.inf
        self.lower_bounds_ = list(model.history)

    def _sklearn_parameters(self, parameters):
        """scikit-learn's ``_set_parameters`` tuple of an engine ``Parameters``."""
        return parameters.weights, parameters.means, parameters.covariances, parameters.prec_chol

    def _n_parameters(self):
        """Number of free parameters (one component per class when fitted with y)."""
        return n_parameters(*self.means_.shape, self.covariance_type)

    def save(self, path):
        """Write the fitted model to a zarr store at ``path``, atomically.

        Read it back with :func:`daskgmm.load`; no pickle is involved.
        """
        _persist.save(self, path)

    # ------------------------------------------------------------- predict

    def _parameters(self):
        """The fitted parameters the E-step needs, as keywords of ``estimate_weighted_log_prob``."""
        check_is_fitted(self)
        return dict(weights=self.weights_, means=self.means_, prec_chol=self.precisions_cholesky_)

    def _apply(self, X, block_fn, n_columns=None, dtype=None, wrap=True):
        """`_input.apply_rows` on this estimator."""
        return _input.apply_rows(self, X, block_fn, n_columns, dtype, wrap)

    def score_samples(self, X):
        """Log-likelihood of every row; lazy for Dask input."""
        return self._apply(X, self._scorer())

    def _scorer(self):
        return partial(
            _score_samples_block, params=self._parameters(), covariance_type=self.covariance_type
        )

    def _mean_score(self, X):
        """Mean per-row log-likelihood of X (one pass for Dask) and its number of rows."""
        scores = self._apply(X, self._scorer(), wrap=False)
        if isinstance(scores, da.Array):
            (mean,) = _graph.compute(scores.mean())
        else:
            mean = np.mean(scores)
        return float(mean), scores.shape[0]

    def score(self, X, y=None):
        """Mean per-row log-likelihood of X, as a Python float."""
        return self._mean_score(X)[0]

    def bic(self, X):
        """Bayesian information criterion of the model on X (lower is better), a float."""
        score, n_samples = self._mean_score(X)
        return -2 * score * n_samples + self._n_parameters() * math.log(n_samples)

    def aic(self, X):
        """Akaike information criterion of the model on X (lower is better), a float."""
        score, n_samples = self._mean_score(X)
        return -2 * score * n_samples + 2 * self._n_parameters()

    def predict(self, X):
        """Component of every row, or its class when fitted with ``y``; lazy for Dask."""
        params = self._parameters()
        classes = getattr(self, "classes_", None)
        block = partial(
            _predict_block,
            params=params,
            covariance_type=self.covariance_type,
            classes=classes,
        )
        dtype = np.intp if classes is None else classes.dtype
        return self._apply(X, block, dtype=dtype)

    def predict_proba(self, X):
        """Posterior probability of every component for every row; lazy for Dask."""
        block = partial(
            _predict_proba_block, params=self._parameters(), covariance_type=self.covariance_type
        )
        return self._apply(X, block, n_columns=self.means_.shape[0])


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
    from ._bayesian_mixture import BayesianGaussianMixture

    name, params, fitted = _persist.read_model(path)
    classes = {"GaussianMixture": GaussianMixture,
               "BayesianGaussianMixture": BayesianGaussianMixture}
    try:
        estimator = classes[name]().set_params(**params)
        estimator._validate_params()
    except (KeyError, TypeError, ValueError) as error:
        raise _persist.invalid_model(path, error) from error
    vars(estimator).update(fitted)
    return estimator
