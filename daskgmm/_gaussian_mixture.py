"""The estimator: scikit-learn's GaussianMixture, fitted by EM on Dask, one pass per iteration."""

import math
from numbers import Real

import numpy as np
from sklearn.mixture import GaussianMixture as _SklearnGaussianMixture

from . import _em, _incremental, _init, _input, _missing, _persist
from ._base import (DASK_PARAMETER_CONSTRAINTS, INCREMENTAL_PARAMETER_CONSTRAINTS,
                    DaskMixtureMixin, FitTarget, check_n_samples, restored_on_error,
                    set_fitted_mixture)
from ._covariance import n_parameters
from ._mstep import Parameters
from ._sklearn import NUMPY, Interval, StrOptions


@_persist.register
class GaussianMixture(DaskMixtureMixin, _SklearnGaussianMixture):
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
        ``_graph.CACHE_FRACTION`` of their memory, and otherwise streams it from its
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
    nan_policy : {'raise', 'omit', 'marginalize'}, default='raise'
        What NaN in ``X`` means (infinity is an error under every policy).
        ``'raise'``: an error. ``'omit'``: rows holding NaN take no part in
        ``fit`` (``bic``/``aic`` count the complete rows); at prediction they
        get label -1 and NaN probabilities and log-likelihood.
        ``'marginalize'``: values missing at random; EM maximises the
        likelihood of the observed entries (Ghahramani & Jordan 1994) and
        predictions use each row's observed marginal (a row with nothing
        observed gets ``weights_`` as probabilities and log-likelihood 0,
        and takes no part in ``score``, ``bic`` and ``aic``). Initialisation
        fills NaN with column means (see ``daskgmm._missing``).

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
        **DASK_PARAMETER_CONSTRAINTS,
        **INCREMENTAL_PARAMETER_CONSTRAINTS,
        "learning_decay": [Interval(Real, 0.5, 1, closed="right")],
        "learning_offset": [Interval(Real, 0, None, closed="left")],
        "nan_policy": [StrOptions(set(_missing.NAN_POLICIES))],
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
        nan_policy="raise",
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
        self.nan_policy = nan_policy

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
        return super().fit(X, y, sample_weight)

    def _warm(self):
        """Whether the fit starts from the fitted model (``warm_start``)."""
        return self.warm_start and hasattr(self, "converged_")

    def _check_fit_parameters(self):
        if not set(self.params) <= set("wmc"):
            raise ValueError(
                f"params must be made of the letters 'w', 'm' and 'c'; got {self.params!r}."
            )

    def _fit_target(self, data, y):
        if y is None:
            return data, None
        classes, labels = _input.encode_labels(_input.vector(y), data)
        if self._warm() and not np.array_equal(classes, getattr(self, "classes_", None)):
            raise ValueError("warm_start with y needs the same classes as the last fit.")
        starts = (self.weights_init, self.means_init, self.precisions_init)
        if any(start is not None for start in starts):
            raise ValueError(
                "fit with y starts from the class statistics; weights_init, means_init "
                "and precisions_init cannot be given with it."
            )
        return data, FitTarget(classes, labels)

    def _n_components(self, target):
        """One component per class when fitted with y."""
        return self.n_components if target is None else len(target.classes)

    def _check_fit_data(self, data, n_components):
        check_n_samples(data, n_components)
        self._check_parameters(data.X, xp=NUMPY)

    def _statistics_layouts(self, data, target):
        n_components = self._n_components(target)
        self._check_fit_data(data, n_components)
        return self._initialisation_layouts(n_components, data.X.shape[1])

    def _em_options(self):
        return dict(params=self.params, relaxation=self.relaxation)

    def _em_state(self, data, X_memory, target, blocks, settings):
        if self._warm():
            fitted = Parameters(self.covariance_type, *(
                np.asarray(value, dtype=np.float64) for value in self._get_parameters()))
            models = [_em.Model("0", fitted, lower_bound=self.lower_bound_)]
        else:
            starts = self._initial_parameters(data, X_memory, target, self._n_components(target))
            models = [_em.Model(str(i), start) for i, start in enumerate(starts)]
        return _em.EMState(models, blocks=blocks), settings

    def _set_fitted(self, state, data, target):
        if target is not None:
            self.classes_ = target.classes
        elif not self._warm():
            self.__dict__.pop("classes_", None)
        super()._set_fitted(state, data, target)
        self.__dict__.pop("_stepwise", None)

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of stepwise (online) EM on the rows of ``X`` (Cappé & Moulines 2009).

        One pass over ``X`` computes the statistics of its rows under the
        current parameters; the running statistics move towards them with
        step ``(learning_offset + t) ** -learning_decay`` at call t (see
        ``_incremental.stepped``), and the M-step runs on them. The first call (t = 0)
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
        with restored_on_error(self):
            self._partial_fit(X, sample_weight)
        return self

    def _partial_fit(self, X, sample_weight):
        running, calls = getattr(self, "_stepwise", (None, 0))
        self._validate_params()  # before _em_settings, which looks up nan_policy's family
        settings = self._em_settings()
        if hasattr(self, "converged_"):
            data, _ = _input.fit_data(self, X, sample_weight, reset=False)
            parameters = Parameters(self.covariance_type, *(
                np.asarray(value, dtype=np.float64) for value in self._get_parameters()))
            models = [_em.Model("0", parameters, self.lower_bound_, list(self.lower_bounds_),
                                self.n_iter_)]
        else:
            self._check_fit_parameters()
            data, X_memory = _input.fit_data(self, X, sample_weight)
            self._check_fit_data(data, self.n_components)
            starts = self._initial_parameters(data, X_memory, None, self.n_components)
            models = [_em.Model(str(i), start) for i, start in enumerate(starts)]
        batches = _em.pass_statistics(data, models, settings.family, self.split_every, None)
        scores = [float(stats.loglik / stats.weight) for stats in batches]
        best = int(np.argmax(scores))
        model, batch = models[best], batches[best]
        if not batch.weight > 0:
            raise ValueError("sample_weight must not sum to zero.")
        if calls > 0:
            rho = (self.learning_offset + calls) ** -self.learning_decay
            batch = _incremental.stepped(running, batch, rho, self.covariance_type)
        iteration = model.n_iter + 1
        _em.m_step_model(model, batch, settings, iteration)
        _em.record_bound(model, scores[best], settings, iteration)
        set_fitted_mixture(self, model, _input.float_dtype(data.X), warn=False)
        self._stepwise = (batch, calls + 1)

    # ------------------------------------------------------- initialisation

    def _initial_parameters(self, data, X_memory, target, n_components):
        """One ``Parameters`` per initialisation."""
        user_init = dict(weights_init=self.weights_init, means_init=self.means_init,
                         precisions_init=self.precisions_init)
        codes = None if target is None else target.codes
        data, X_memory, codes = _init.initialisation_data(
            data, X_memory, codes, needs_data=X_memory is not None or target is not None
            or any(value is None for value in user_init.values()))
        if target is not None:
            return [_init.class_start(data, codes, n_components, self.covariance_type,
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

    # ------------------------------------------------------------ fitted

    def _sklearn_parameters(self, parameters):
        """scikit-learn's ``_set_parameters`` tuple of an engine ``Parameters``."""
        return parameters.weights, parameters.means, parameters.covariances, parameters.prec_chol

    def _n_parameters(self):
        """Number of free parameters (one component per class when fitted with y)."""
        return n_parameters(*self.means_.shape, self.covariance_type)

    def bic(self, X):
        """Bayesian information criterion of the model on X (lower is better), a float."""
        score, n_samples = self._mean_score(X)
        return -2 * score * n_samples + self._n_parameters() * math.log(n_samples)

    def aic(self, X):
        """Akaike information criterion of the model on X (lower is better), a float."""
        score, n_samples = self._mean_score(X)
        return -2 * score * n_samples + 2 * self._n_parameters()
