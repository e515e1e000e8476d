"""GaussianMixtureImputer: fill NaN with a Gaussian mixture's conditional expectations."""

import sys
from functools import partial

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _input, _missing
from ._gaussian_mixture import GaussianMixture


def fill(mixture, X, sample_posterior=False, random_state=None):
    """``X`` (NumPy or Dask) with its NaN filled under a fitted mixture (see
    `GaussianMixtureImputer`); lazy, chunked like X along rows, for Dask.

    ``mixture`` is a fitted ``daskgmm.GaussianMixture`` (or a variational
    one: its fitted parameters are used as they are); X's features are
    checked against it.
    """
    parameters = mixture._parameters()
    params = dict(weights=parameters.weights, means=parameters.means,
                  prec_chol=parameters.prec_chol)
    seed = None
    if sample_posterior:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    block = partial(_impute_block, params=params, covariance_type=mixture.covariance_type,
                    seed=seed)
    array, _ = _input.validate(mixture, X, reset=False)
    if isinstance(array, da.Array):
        array = array.rechunk({1: -1})
        dtype = _input.float_dtype(array)
        return array.map_blocks(block, dtype=dtype, meta=np.empty((0, 0), dtype))
    return block(array)


def _impute_block(x, params, covariance_type, seed, block_info=None):
    """One row chunk filled by `_missing.impute`; draws keyed to the chunk's global rows."""
    draws = None
    if seed is not None:
        start = block_info[0]["array-location"][0][0] if block_info else 0
        draws = _missing.row_draws(start, start + x.shape[0], x.shape[1], seed)
    return _missing.impute(x, covariance_type=covariance_type, draws=draws,
                           **params).astype(_input.float_dtype(x), copy=False)


class GaussianMixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill missing values (NaN) from a Gaussian mixture fitted to the observed entries.

    ``fit`` fits :class:`daskgmm.GaussianMixture` with
    ``nan_policy='marginalize'`` (EM over the observed entries, Ghahramani &
    Jordan 1994), one pass over the data per iteration. ``transform`` fills
    each row's missing entries m given its observed ones o with

        E[x_m | x_o] = sum_k p(k | x_o) (mu_km + Sigma_k,mo Sigma_k,oo^-1 (x_o - mu_ko)),

    or, with ``sample_posterior=True``, a draw from the conditional mixture:
    k from p(k | x_o), then x_m from N(mu_km + Sigma_k,mo Sigma_k,oo^-1
    (x_o - mu_ko), Sigma_k,mm - Sigma_k,mo Sigma_k,oo^-1 Sigma_k,om). A row
    with nothing observed gets the mixture's mean (or a draw from it).
    Observed entries come back unchanged.

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, init_params,
    weights_init, means_init, precisions_init, random_state, warm_start, params,
    verbose, verbose_interval, split_every, checkpoint, cache, algorithm,
    n_blocks, relaxation, learning_decay, learning_offset
        As :class:`daskgmm.GaussianMixture`'s.
    sample_posterior : bool, default=False
        Draw the filled values from the conditional mixture instead of
        taking its mean. The draws of a row depend only on ``random_state``
        (an int gives the same draws on every call) and the row's index, not
        on the chunking.

    Attributes
    ----------
    gaussian_mixture_ : daskgmm.GaussianMixture
        The fitted mixture.
    n_iter_ : int
        Its EM iterations.
    n_features_in_ : int
    feature_names_in_ : ndarray
        When fitted on a DataFrame.
    """

    _parameter_constraints: dict = {
        **{name: constraint for name, constraint in GaussianMixture._parameter_constraints.items()
           if name != "nan_policy"},
        "sample_posterior": ["boolean"],
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
        sample_posterior=False,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.params = params
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.split_every = split_every
        self.checkpoint = checkpoint
        self.cache = cache
        self.algorithm = algorithm
        self.n_blocks = n_blocks
        self.relaxation = relaxation
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.sample_posterior = sample_posterior

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X, y=None, sample_weight=None):
        """Fit ``gaussian_mixture_`` to the observed entries of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Any input :class:`daskgmm.GaussianMixture` takes; NaN are missing.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._validate_params()
        mixture_params = {name: value for name, value in self.get_params().items()
                          if name != "sample_posterior"}
        mixture = GaussianMixture(**mixture_params, nan_policy="marginalize")
        if self.warm_start and hasattr(self, "gaussian_mixture_"):
            mixture = self.gaussian_mixture_.set_params(**mixture_params)
        mixture.fit(X, sample_weight=sample_weight)
        self.gaussian_mixture_ = mixture
        self.n_iter_ = mixture.n_iter_
        self.n_features_in_ = mixture.n_features_in_
        if hasattr(mixture, "feature_names_in_"):
            self.feature_names_in_ = mixture.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def transform(self, X):
        """``X`` with every NaN filled (module docstring); observed entries unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray, dask.array.Array, pandas.DataFrame or xarray.DataArray
            Of X's type: a lazy Dask array chunked like X for Dask or zarr
            input (a Dask DataFrame's partitions become its row chunks); a
            DataFrame with X's index and columns for a DataFrame; a DataArray
            with X's dimensions and coordinates (lazy when Dask-backed) for a
            DataArray; else NumPy.
        """
        check_is_fitted(self)
        return _like(X, fill(self.gaussian_mixture_, X, self.sample_posterior,
                             self.random_state))


def _like(X, filled):
    """``filled`` in the form of the input ``X`` (see `GaussianMixtureImputer.transform`)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(X, pandas.DataFrame):
        return pandas.DataFrame(filled, index=X.index, columns=X.columns)
    xarray = sys.modules.get("xarray")
    if xarray is not None and isinstance(X, xarray.DataArray):
        return X.copy(data=filled)
    return filled
