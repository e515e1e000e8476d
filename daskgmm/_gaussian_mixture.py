"""The estimator: scikit-learn's GaussianMixture, fitted by single-pass EM on Dask."""

import math
import os
import time
import warnings
from functools import partial
from numbers import Integral

import dask.array as da
import numpy as np
from scipy.special import logsumexp
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils._array_api import get_namespace
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    check_is_fitted,
    check_non_negative,
    column_or_1d,
)

from . import _checkpoint, _graph, _input, _kernels, _persist
from ._mstep import (
    covariances_from_precision_cholesky,
    estimate_parameters,
    m_step,
    precision_cholesky,
)
from ._stats import Stats, m2_shape

# scikit-learn's array-API namespace for NumPy, which its mixture helpers expect.
_NUMPY = get_namespace(np.empty(0))[0]

# Largest sufficient statistics (all initialisations together) a fit accepts.
MAX_STATISTICS_BYTES = 2**30

# 'auto' caching persists Dask input taking at most this share of the workers' memory.
CACHE_FRACTION = 0.5

# Rows (at most) and bytes (at most) drawn for k-means and k-means++ initialisation
# on Dask input.
KMEANS_SAMPLE_SIZE = 100_000
KMEANS_SAMPLE_BYTES = 2**27


def _checked_weights(sample_weight):
    """``sample_weight``, after scikit-learn's checks: finite and non-negative."""
    assert_all_finite(sample_weight, input_name="sample_weight")
    check_non_negative(sample_weight, "`sample_weight`")
    return sample_weight


def _check_sample_weight(sample_weight, n_samples):
    """Validate weights; in-memory weights are checked here, Dask ones per block.

    A Dask block is checked when it is computed: once if the data is cached,
    else in each pass, next to its read.
    """
    if isinstance(sample_weight, da.Array):
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected ({n_samples},)!"
            )
        return sample_weight.astype(np.float64).map_blocks(_checked_weights, dtype=np.float64)
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.ndim == 0:
        sample_weight = np.full(n_samples, float(sample_weight))
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {sample_weight.shape}, expected ({n_samples},)!"
        )
    _checked_weights(sample_weight)
    if not sample_weight.sum() > 0:
        raise ValueError("sample_weight must not sum to zero.")
    return sample_weight


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


def _start_from_stats(stats, total_weight, reg_covar, covariance_type):
    """Initial parameters from statistics of initial responsibilities.

    As scikit-learn's ``_initialize``: weights are ``nk / n_samples``.
    """
    nk, means, covariances = estimate_parameters(stats, reg_covar, covariance_type)
    prec_chol = precision_cholesky(covariances, covariance_type)
    return nk / total_weight, means, covariances, prec_chol


def _point_stats(points, covariance_type):
    """Statistics of one unit-weight row per component (k-means++, random_from_data)."""
    n_components, n_features = points.shape
    m2 = np.zeros(m2_shape(n_components, n_features, covariance_type))
    return Stats(np.ones(n_components), points, m2, 0.0, 0.0)


def _weighted_log_prob(X, params, covariance_type):
    _kernels.check_finite(X)
    return _kernels.estimate_weighted_log_prob(X, *params, covariance_type)


def _score_samples_block(X, params, covariance_type):
    return logsumexp(_weighted_log_prob(X, params, covariance_type), axis=1)


def _predict_proba_block(X, params, covariance_type):
    weighted = _weighted_log_prob(X, params, covariance_type)
    return np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))


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
        state = self.__dict__.copy()
        try:
            self._fit(X, y, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of every row (``fit(X).predict(X)``)."""
        return self.fit(X, y, sample_weight).predict(X)

    def _fit(self, X, y, sample_weight):
        self._validate_params()
        if not set(self.params) <= set("wmc"):
            raise ValueError(
                f"params must be made of the letters 'w', 'm' and 'c'; got {self.params!r}."
            )
        data, X_memory = self._fit_data(X, sample_weight)
        labels = None
        if y is not None:
            classes, labels = _encode_labels(_input.vector(y), data)
            n_components = len(classes)
        else:
            n_components = self.n_components
        if data.n_samples < n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {n_components}, n_samples = {data.n_samples}"
            )
        self._check_parameters(data.X, xp=_NUMPY)
        self._check_statistics_size(n_components, data.X.shape[1])

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

        identity, state = None, None
        if self.checkpoint:
            identity = _checkpoint.fingerprint(
                self, data.n_samples, data.X.shape[1], classes if labels is not None else None,
                sample_weight is not None,
            )
            state = _checkpoint.load(self.checkpoint, identity)
        if state is None or (state.active and state.iteration < self.max_iter):
            data = self._cached(data)
        if state is not None:
            self._print(f"resuming from {self.checkpoint} after iteration {state.iteration}")
        elif do_init:
            random_state = check_random_state(self.random_state)
            starts = self._initial_parameters(data, X_memory, labels, n_components, random_state)
            state = _checkpoint.EMState.start(starts, -np.inf)
        else:
            state = _checkpoint.EMState.start([self._get_parameters()], self.lower_bound_)
        self._run_em(data, state, identity)

    def _fit_data(self, X, sample_weight):
        """Validate X (and weights); returns RowData and the in-memory X or None."""
        X, _ = _input.validate(self, X, reset=True)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(_input.vector(sample_weight), X.shape[0])
        if isinstance(X, da.Array):
            return _graph.from_dask(X, sample_weight), None
        return _graph.from_numpy(X, sample_weight), X

    # ------------------------------------------------------- initialisation

    def _initial_parameters(self, data, X_memory, labels, n_components, random_state):
        """One ``(weights, means, covariances, prec_chol)`` per initialisation."""
        if labels is not None:
            lazy, layout = _graph.label_statistics(
                data, labels, n_components, self.covariance_type, self.split_every
            )
            stats = self._statistics(lazy, layout, data)
            return [self._start(Stats(*(f[0] for f in stats)), stats.weight[0])]
        if X_memory is not None:
            return [self._sklearn_start(X_memory, random_state) for _ in range(self.n_init)]
        if all(p is not None for p in (self.weights_init, self.means_init, self.precisions_init)):
            return [self._apply_user_init(None)] * self.n_init
        return [self._apply_user_init(start) for start in self._dask_starts(data, random_state)]

    def _start(self, stats, total_weight):
        return _start_from_stats(stats, total_weight, self.reg_covar, self.covariance_type)

    def _sklearn_start(self, X, random_state):
        """scikit-learn's own initialisation, for in-memory input."""
        init = _SklearnGaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            init_params=self.init_params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
        )
        init._initialize_parameters(X, random_state)
        prec_chol = np.asarray(init.precisions_cholesky_, dtype=np.float64)
        covariances = getattr(init, "covariances_", None)
        if covariances is None:
            covariances = covariances_from_precision_cholesky(prec_chol, self.covariance_type)
        return (
            np.asarray(init.weights_, dtype=np.float64),
            np.asarray(init.means_, dtype=np.float64),
            np.asarray(covariances, dtype=np.float64),
            prec_chol,
        )

    def _apply_user_init(self, start):
        """Replace parts of a start by weights_init, means_init, precisions_init."""
        weights, means, covariances, prec_chol = start or (None,) * 4
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
        if self.precisions_init is not None:
            prec_chol = _compute_precision_cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64),
                self.covariance_type,
                xp=_NUMPY,
            )
            covariances = covariances_from_precision_cholesky(prec_chol, self.covariance_type)
        return weights, means, covariances, prec_chol

    def _dask_starts(self, data, random_state):
        """Initialisations at scale: a sample, or one pass, never all rows in memory."""
        n_samples, n_components = data.n_samples, self.n_components
        method = self.init_params
        if method == "random_from_data":
            indices = [random_state.choice(n_samples, n_components, replace=False)
                       for _ in range(self.n_init)]
            points = np.split(_graph.take_rows(data, np.concatenate(indices)), self.n_init)
            return [self._start(_point_stats(p, self.covariance_type), n_samples) for p in points]
        if method == "random":
            seeds = [random_state.randint(2**31 - 1) for _ in range(self.n_init)]
            lazy, layout = _graph.random_statistics(
                data, seeds, n_components, self.covariance_type, self.split_every
            )
            return self._starts_from_batch(data, lazy, layout)
        sample = self._sample(data, random_state)
        if method == "k-means++":
            points = [
                kmeans_plusplus(sample, n_components, random_state=random_state)[0]
                for _ in range(self.n_init)
            ]
            return [self._start(_point_stats(p, self.covariance_type), n_samples) for p in points]
        centres = [
            KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            .fit(sample)
            .cluster_centers_
            for _ in range(self.n_init)
        ]
        lazy, layout = _graph.nearest_statistics(
            data, centres, self.covariance_type, self.split_every
        )
        return self._starts_from_batch(data, lazy, layout)

    def _starts_from_batch(self, data, lazy, layout):
        stats = self._statistics(lazy, layout, data)
        return [self._start(Stats(*(field[i] for field in stats)), stats.weight[i])
                for i in range(layout.n_batch)]

    def _sample(self, data, random_state):
        """A uniform sample of rows, read in one pass (all rows if few)."""
        n_samples = data.n_samples
        size = min(KMEANS_SAMPLE_SIZE, KMEANS_SAMPLE_BYTES // (8 * data.X.shape[1]))
        if n_samples <= size:
            indices = np.arange(n_samples)
        else:
            indices = np.unique(random_state.randint(0, n_samples, size))
        sample = _graph.take_rows(data, indices)
        _kernels.check_finite(sample)
        return sample

    # ------------------------------------------------------------------- EM

    def _run_em(self, data, state, identity):
        """EM on all initialisations at once: one pass per iteration for all."""
        n_init = len(state.params)
        for iteration in range(state.iteration + 1, self.max_iter + 1):
            active = state.active
            if not active:
                break
            tic = time.perf_counter()
            lazy, layout = _graph.em_statistics(
                data,
                [(state.params[i][0], state.params[i][1], state.params[i][3]) for i in active],
                self.covariance_type,
                self.split_every,
            )
            stats = self._statistics(lazy, layout, data, iteration)
            for j, i in enumerate(active):
                init_stats = Stats(*(field[j] for field in stats))
                if not init_stats.weight > 0:
                    raise ValueError("sample_weight must not sum to zero.")
                new_bound = float(init_stats.loglik / init_stats.weight)
                state.params[i] = m_step(
                    init_stats, self.reg_covar, self.covariance_type, self.params,
                    state.params[i], iteration,
                )
                change = new_bound - state.lower_bounds[i]
                state.lower_bounds[i] = new_bound
                state.history[i].append(new_bound)
                state.n_iter[i] = iteration
                state.converged[i] = abs(change) < self.tol
                if iteration % self.verbose_interval == 0:
                    prefix = f"init {i}: " if n_init > 1 else ""
                    self._print(
                        f"{prefix}iteration {iteration}: lower bound {new_bound:.6f}, "
                        f"change {change:.3e}, {time.perf_counter() - tic:.2f} s"
                    )
            state.iteration = iteration
            if self.checkpoint:
                _checkpoint.save(self.checkpoint, state, identity)
        self._keep_best(state)

    def _statistics(self, lazy, layout, data, iteration=None):
        """One pass's statistics; a cluster that cannot run it is a RuntimeError saying where."""
        on_cluster = _graph.on_cluster(data.scheduler)
        try:
            return _graph.merged(_graph.compute(*lazy, scheduler=data.scheduler), layout)
        except _graph.CLUSTER_ERRORS as error:
            if not on_cluster:
                raise
            step = "the initialisation" if iteration is None else f"iteration {iteration}"
            resume = (f"fit again with checkpoint={self.checkpoint!r} to resume"
                      if self.checkpoint else "pass checkpoint=path to be able to resume")
            raise RuntimeError(
                f"The cluster could not run {step} of the fit ({type(error).__name__}: "
                f"{error}); the last completed iteration is {max(0, (iteration or 1) - 1)}; "
                f"{resume}."
            ) from error

    def _check_statistics_size(self, n_components, n_features):
        """Refuse, before any work, statistics too large for one task's memory."""
        per_set = n_components * (1 + n_features) + np.prod(
            m2_shape(n_components, n_features, self.covariance_type))
        size = 8 * self.n_init * per_set
        if size > MAX_STATISTICS_BYTES:
            raise ValueError(
                f"The sufficient statistics of {self.n_init} initialisation(s) of "
                f"{n_components} {self.covariance_type} components in {n_features} dimensions "
                f"take {size / 2**30:.1f} GiB, more than the {MAX_STATISTICS_BYTES / 2**30:.0f} "
                "GiB one task may hold; use fewer components or features, or a diagonal "
                "covariance."
            )

    def _keep_best(self, state):
        """Set the fitted attributes from the best initialisation, as scikit-learn."""
        n_init = len(state.params)
        best, max_lower_bound = n_init - 1, -np.inf
        if self.max_iter > 0:
            for i in range(n_init):
                if state.lower_bounds[i] > max_lower_bound or max_lower_bound == -np.inf:
                    best, max_lower_bound = i, state.lower_bounds[i]
        self.converged_ = bool(state.converged[best]) if self.max_iter > 0 else False
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_parameters(state.params[best])
        self.n_iter_ = state.n_iter[best]
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = list(state.history[best])

    def _print(self, message):
        if self.verbose:
            print(message, flush=True)

    def _cached(self, data):
        """The data persisted for the fit, or as it is when streaming (see ``cache``)."""
        if data.scheduler is not None:  # in memory already
            return data
        size = f"{data.X.nbytes / 2**30:.2f} GiB"
        if self.cache is False:
            self._print(f"cache: off, streaming the data ({size}) from its source every iteration")
            return data
        if self.cache == "auto":
            if not _graph.on_cluster():
                self._print(f"cache: streaming the data ({size}); 'auto' persists on a "
                            "distributed cluster only, never in this process")
                return data
            budget = _graph.cluster_memory()
            if data.X.nbytes > CACHE_FRACTION * budget:
                self._print(f"cache: streaming, the data ({size}) exceeds {CACHE_FRACTION:.0%} "
                            f"of the workers' memory ({budget / 2**30:.2f} GiB)")
                return data
        self._print(f"cache: persisting the data ({size}) for the fit")
        return _graph.persist(data)

    def _n_parameters(self):
        """Number of free parameters (one component per class when fitted with y)."""
        n_components, n_features = self.means_.shape
        cov_params = {
            "full": n_components * n_features * (n_features + 1) / 2.0,
            "diag": n_components * n_features,
            "tied": n_features * (n_features + 1) / 2.0,
            "spherical": n_components,
        }[self.covariance_type]
        return int(cov_params + n_features * n_components + n_components - 1)

    def save(self, path):
        """Write the fitted model to a zarr store at ``path``, atomically.

        Read it back with :func:`daskgmm.load`; no pickle is involved.
        """
        _persist.save(self, path)

    # ------------------------------------------------------------- predict

    def _parameters(self):
        check_is_fitted(self)
        return self.weights_, self.means_, self.precisions_cholesky_

    def _apply(self, X, block_fn, n_columns=None, dtype=np.float64, wrap=True):
        """Run ``block_fn`` on X: lazily per row chunk for Dask, at once for NumPy.

        With ``wrap``, the result comes back in X's form (a DataArray for a DataArray).
        """
        X, wrapper = _input.validate(self, X, reset=False)
        if isinstance(X, da.Array):
            result = _graph.map_rows(X.rechunk({1: -1}), block_fn, n_columns, dtype)
        else:
            result = block_fn(X)
        return wrapper(result) if wrap else result

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
