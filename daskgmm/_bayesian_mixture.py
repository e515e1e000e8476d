"""The estimator: scikit-learn's BayesianGaussianMixture, fitted on Dask, one pass per iteration.

A thin layer on the EM engine (``_em``), whose model family is
``_family.Variational``: the variational E-step is the Gaussian one with
per-component log constants in place of log(weights), and also sums
``r log r`` for the lower bound; the variational M-step runs on the same
merged statistics (``_mstep.variational_step``). With
``algorithm="incremental"`` the engine runs incremental variational Bayes
(Sato 2001) over blocks of rows (``_incremental``).

Passes over Dask input (each a read of every chunk), default priors:
``kmeans``: one to sample rows, one assigning them to the k-means centres
that also gives the data's mean and scatter for the priors, then one per
iteration; ``random``: one (starts and priors), then one per iteration;
``k-means++`` and ``random_from_data``: one to read rows, one for the
priors (with ``tied`` covariances also when the priors are given: the
start's scatter, as scikit-learn's), then one per iteration. Given ``mean_prior`` and
``covariance_prior`` spare the priors' pass; ``warm_start`` and a resumed
checkpoint make one for the priors (when they are not given), then iterate.
In-memory input is initialised in memory as scikit-learn does.
"""

import dataclasses
from typing import NamedTuple

import numpy as np
from sklearn.mixture import BayesianGaussianMixture as _SklearnBayesianGaussianMixture
from sklearn.utils.validation import check_is_fitted

from . import _em, _init, _missing, _persist
from ._base import (DASK_PARAMETER_CONSTRAINTS, INCREMENTAL_PARAMETER_CONSTRAINTS,
                    DaskMixtureMixin, check_n_samples)
from ._covariance import REGISTRY, covariance_prior
from ._family import Variational
from ._mstep import Parameters, Posterior, Prior, e_step_constants, variational_step
from ._sklearn import StrOptions


class _Rows(NamedTuple):
    """What scikit-learn's prior checks read of X: its shape and its mean (from a pass)."""

    shape: tuple
    row_mean: np.ndarray

    def mean(self, axis):
        return self.row_mean


@_persist.register
class BayesianGaussianMixture(DaskMixtureMixin, _SklearnBayesianGaussianMixture):
    """Variational Gaussian mixture on Dask, one pass over the data per iteration.

    A drop-in replacement for :class:`sklearn.mixture.BayesianGaussianMixture`
    whose ``fit`` also takes Dask and zarr arrays of any size, Dask
    DataFrames and xarray DataArrays; the default ``mean_prior`` and
    ``covariance_prior`` (the data's mean and covariance) come from one
    exact, centred pass, shared with the initialisation's where it has one
    (see the module docstring for the passes of a fit).

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, init_params
        As in scikit-learn; ``tol`` applies to the change of the lower
        bound, and the ``n_init`` starts advance in the same pass.
    weight_concentration_prior_type, weight_concentration_prior, mean_precision_prior
        As in scikit-learn.
    mean_prior, degrees_of_freedom_prior, covariance_prior
        As in scikit-learn.
    random_state, warm_start, verbose, verbose_interval
        As in scikit-learn. For Dask input the starts are drawn at scale, as
        :class:`daskgmm.GaussianMixture` draws them.
    split_every, checkpoint, cache
        As in :class:`daskgmm.GaussianMixture`.
    algorithm : {'batch', 'incremental'}, default='batch'
        ``'batch'``: one variational E-step over all rows, then the M-step,
        per pass, as scikit-learn's. ``'incremental'``: incremental
        variational Bayes (Sato 2001, after Neal & Hinton 1998): the rows
        are cut into ``n_blocks`` blocks, each block's statistics (with
        their ``sum r log r``) are kept, and the variational M-step runs
        after every block on the sum of all blocks' latest. An iteration
        is one lap over the blocks (one pass); ``lower_bounds_`` holds the
        lower bound at the end of each lap, of the responsibilities of
        every block's last E-step and the posterior made of them, which
        never decreases from one lap to the next.
    n_blocks : int or 'auto', default='auto'
        As in :class:`daskgmm.GaussianMixture`; ignored by batch.
    relaxation : float, default=1.0
        Must be 1: over-relaxed block statistics (see
        :class:`daskgmm.GaussianMixture`) are no responsibilities, and
        the lower bound, which the safeguard of over-relaxed steps checks, is
        scikit-learn's closed form, exact only for a posterior made of
        statistics of responsibilities; other values are a ValueError.
    nan_policy : {'raise', 'omit', 'marginalize'}, default='raise'
        As in :class:`daskgmm.GaussianMixture`: ``'omit'`` leaves the rows
        holding NaN out of the fit, the default priors included.
        ``'marginalize'``: values missing at random, fitted with the
        structured mean field q(Z, X_mis) q(theta). A row's E-step uses the
        density of its observed entries under N(m_k, (nu_k W_k)^-1) plus
        scikit-learn's per-component constants; the missing entries enter
        the statistics with their conditional mean and covariance, as in
        :class:`daskgmm.GaussianMixture`, and ``lower_bound_`` adds their
        conditional entropies (see ``daskgmm._missing``). The default priors
        and the start come from the complete rows when they are at least a
        tenth of the rows holding data, else from every such row with each
        NaN filled by its column's mean. Predictions use each row's observed
        entries; a row with none gets ``weights_`` as probabilities and
        log-likelihood 0.

    Attributes
    ----------
    weights_, weight_concentration_, mean_precision_, means_, degrees_of_freedom_
        Fitted parameters, NumPy arrays, as in scikit-learn.
    covariances_, precisions_, precisions_cholesky_
    weight_concentration_prior_, mean_precision_prior_, mean_prior_
        The priors used.
    degrees_of_freedom_prior_, covariance_prior_
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_
        As in scikit-learn (``lower_bound_`` is its variational bound, not
        a per-sample mean).
    """

    _parameter_constraints: dict = {
        **_SklearnBayesianGaussianMixture._parameter_constraints,
        **DASK_PARAMETER_CONSTRAINTS,
        **INCREMENTAL_PARAMETER_CONSTRAINTS,
        "nan_policy": [StrOptions(set(_missing.NAN_POLICIES))],
    }
    _model_family = Variational()
    _saved_attributes = DaskMixtureMixin._saved_attributes._replace(
        family=Variational.fitted_arrays)

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        split_every=None,
        checkpoint=None,
        cache="auto",
        algorithm="batch",
        n_blocks="auto",
        relaxation=1.0,
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
            weight_concentration_prior_type=weight_concentration_prior_type,
            weight_concentration_prior=weight_concentration_prior,
            mean_precision_prior=mean_precision_prior,
            mean_prior=mean_prior,
            degrees_of_freedom_prior=degrees_of_freedom_prior,
            covariance_prior=covariance_prior,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
            verbose_interval=verbose_interval,
        )
        self.split_every = split_every
        self.checkpoint = checkpoint
        self.cache = cache
        self.algorithm = algorithm
        self.n_blocks = n_blocks
        self.relaxation = relaxation
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fit

    def _check_fit_parameters(self):
        if self.relaxation != 1:
            raise ValueError(
                f"BayesianGaussianMixture takes relaxation=1 only (got {self.relaxation!r}): "
                "its lower bound holds for statistics of responsibilities, which over-relaxed "
                "ones are not. Leave relaxation at 1."
            )

    def _em_options(self):
        return dict(relaxation=self.relaxation)

    def _statistics_layouts(self, data, target):
        check_n_samples(data, self.n_components)
        self._check_given_priors(data.X.shape)
        return self._initialisation_layouts(self.n_components, data.X.shape[1])

    def _prior_moments(self):
        """The layout of the data's moments the default priors need, or None (both given)."""
        if self.mean_prior is None or self.covariance_prior is None:
            return REGISTRY[self.covariance_type].prior_moments
        return None

    def _em_state(self, data, X_memory, target, blocks, settings):
        moments = self._prior_moments()
        warm = self.warm_start and hasattr(self, "converged_")
        data, X_memory, _ = _init.initialisation_data(data, X_memory,
                                                         needs_data=bool(moments) or not warm)
        if warm:
            prior = self._set_priors(data.X.shape, self._data_moments(data, moments))
            models = [_em.Model("0", self._fitted_parameters(), lower_bound=self.lower_bound_)]
        else:
            starts, all_rows = self._start_statistics(data, X_memory, moments)
            prior = self._set_priors(data.X.shape, all_rows)
            models = [_em.Model(str(i), variational_step(stats, self.reg_covar, prior,
                                                         self.covariance_type))
                      for i, stats in enumerate(starts)]
        return _em.EMState(models, blocks=blocks), self._with_prior(settings, prior)

    def _resumed_settings(self, data, settings):
        moments = self._prior_moments()
        data, _, _ = _init.initialisation_data(data, None, needs_data=bool(moments))
        all_rows = self._data_moments(data, moments)
        return self._with_prior(settings, self._set_priors(data.X.shape, all_rows))

    def _with_prior(self, settings, prior):
        """``settings`` whose variational family holds ``prior``."""
        return dataclasses.replace(settings, family=self._family(Variational(prior)))

    def _data_moments(self, data, moments):
        """The statistics of all rows in the layout ``moments`` (a pass), or None."""
        return moments and _init.data_moments(data, moments, self.split_every, self.checkpoint)

    def _start_statistics(self, data, X_memory, moments):
        """The statistics of every start's responsibilities, and of all rows (or None)."""
        if X_memory is None:
            candidate = _init.Candidate(self.n_components, self.covariance_type)
            stats, all_rows = _init.dask_start_statistics(
                data, [candidate], self.n_init, self.init_params, self.random_state,
                self.split_every, self.checkpoint, moments)
            starts = [stats[candidate, init] for init in range(self.n_init)]
        else:
            sample_weight = None if data.sample_weight is None else data.sample_weight.compute()
            starts = _init.memory_start_statistics(
                X_memory, sample_weight, self.n_components, self.covariance_type, self.n_init,
                self.init_params, self.random_state)
            all_rows = self._data_moments(data, moments)
        if self.covariance_type == "tied" and self.init_params in _init.POINT_STARTS:
            # moments is "full" for tied; with both priors given, one pass of its own.
            rows = all_rows or self._data_moments(data, "full")
            starts = [_init.tied_as_sklearn(start, rows) for start in starts]
        return starts, all_rows

    # --------------------------------------------------------------- priors

    def _check_given_priors(self, shape):
        """scikit-learn's checks of the priors that need no pass over the data."""
        self._check_weights_parameters()
        self._check_precision_parameters(_Rows(shape, None))
        if self.mean_prior is not None:
            self._check_means_parameters(_Rows(shape, None))
        if self.covariance_prior is not None:
            self._checkcovariance_prior_parameter(_Rows(shape, None))

    def _set_priors(self, shape, all_rows):
        """The default priors from the statistics of all rows; returns the `Prior`."""
        if self.mean_prior is None:
            self._check_means_parameters(_Rows(shape, all_rows.mean[0]))
        if self.covariance_prior is None:
            self.covariance_prior_ = covariance_prior(all_rows, self.covariance_type)
        return Prior(self.weight_concentration_prior_type, self.weight_concentration_prior_,
                     self.mean_precision_prior_, self.mean_prior_,
                     self.degrees_of_freedom_prior_, self.covariance_prior_)

    # ------------------------------------------------------------ parameters

    def _sklearn_parameters(self, parameters):
        """scikit-learn's ``_set_parameters`` tuple of an engine ``Parameters``."""
        posterior = parameters.posterior
        concentration = posterior.weight_concentration
        if self.weight_concentration_prior_type == "dirichlet_process":
            concentration = tuple(concentration)
        return (concentration, posterior.mean_precision, parameters.means,
                posterior.degrees_of_freedom, parameters.covariances, parameters.prec_chol)

    def _log_weights(self):
        """The E-step's per-component log constants of the fitted model."""
        return e_step_constants(np.asarray(self.weight_concentration_), self.mean_precision_,
                                self.degrees_of_freedom_, self.weight_concentration_prior_type,
                                self.means_.shape[1])

    def _fitted_parameters(self):
        """The fitted model as engine ``Parameters`` (a warm start)."""
        return self._parameters()._replace(covariances=self.covariances_)

    def _parameters(self):
        """The fitted parameters the E-step needs: the Gaussian ones and the
        posterior (its constants), without covariances."""
        check_is_fitted(self)
        return Parameters(self.covariance_type, self.weights_, self.means_, None,
                          self.precisions_cholesky_,
                          Posterior(np.asarray(self.weight_concentration_), self.mean_precision_,
                                    self.degrees_of_freedom_, self._log_weights()))
