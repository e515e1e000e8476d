"""Missing values (NaN): EM over the observed entries, predictions and imputation.

``nan_policy`` says what a NaN in ``X`` means:

- ``"raise"``: an error (scikit-learn's "Input X contains NaN", naming
  ``nan_policy``);
- ``"omit"``: a row holding any NaN takes no part in the fit, as if absent;
  at prediction it gets NaN;
- ``"marginalize"``: entries missing at random. EM maximises the likelihood
  of the observed entries (Ghahramani & Jordan 1994). For a row x with
  observed features o and missing m, and component k (mu, Sigma):

  E-step:  log p(x_o | k) = log N(x_o; mu_o, Sigma_oo)                   (1)
           r_k = pi_k p(x_o | k) / sum_j pi_j p(x_o | j)
  Statistics: the row enters with its conditional expectation
           x_hat_k = x, x_hat_m = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)   (2)
           and conditional covariance on its (m, m) block
           C_k = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om                  (3)
           sum_n r_nk x_hat_nk,  sum_n r_nk (x_hat x_hat^T + C)_nk.
  For ``diag`` and ``spherical``, (2) is mu_m and (3) diag(sigma_m^2); for
  ``tied``, Sigma is shared. A row with no observed entry carries no data:
  weight 0, log-likelihood 0.

  The variational mixture (``BayesianGaussianMixture``) is fitted with the
  structured mean field q(Z, X_mis) q(theta): its E-step is (1) with mu_k
  the posterior means m_k, Sigma_k = (nu_k W_k)^-1 (scikit-learn's
  ``covariances_``) and, in place of log pi_k, the complete-data E-step's
  constants c_k = E[log pi_k] + (E[log |Lambda_k|] - log |nu_k W_k|) / 2
  - D / (2 beta_k) (``_mstep.e_step_constants``): integrating x_m out of
  exp(E_theta[log pi_k N(x; mu_k, Lambda_k^-1)]) leaves exactly these.
  q(x_m | x_o, k) is N((2), (3)) with the same Sigma_k, so the expected
  statistics are those above and the variational M-step is unchanged. Its
  lower bound (scikit-learn's, which subtracts sum r log r) also gains the
  entropies of the missing entries,
           sum_n sum_k r_nk H_nk,  H_nk = (|m| log(2 pi e) - log |Lambda_k,mm|) / 2,  (4)
  so the statistics' ``entropy`` holds sum r log r - sum r H for rows with
  NaN. On complete rows all of this is scikit-learn's variational E-step.

Infinity is an error under every policy.

Each policy is a model family (``_family.Family``) wrapping the one fitted
(`NAN_POLICIES`: `NaNRaises`, `CompleteRows`, `ObservedEntries`): it owns
a block's statistics and the log-densities of predictions, and hands the
M-step, the bounds and the checkpoint and fitted arrays to the family it
wraps, whose E-step constants (log pi_k or c_k) and ``with_entropy`` it
runs (1)-(4) with. The statistics have the format of ``_stats.Stats``
(means relative to ``_kernels.reference_means``), so the M-step and the
Chan merges are unchanged. Complete rows go through the wrapped family's
E-step, unchanged (data without NaN gives the ``"raise"`` fit under every
policy); rows with NaN through the kernels below, and the two parts merge
with ``_stats.merge``. Moments are taken about each component's own
(centred) mean, exact far from the origin.

Cost, for a block of n rows with NaN, K components, D features:
``diag`` and ``spherical`` take O(K D) per row whatever the missingness
(``_pattern_kernels.diag_statistics``, whose loops vectorise over rows as the
complete rows' sweep does); a block holding NaN goes through it whole,
complete rows too (`ObservedEntries.statistics`). ``full`` and ``tied`` find
the rows with NaN, any infinity and the rows' missingness patterns in one pass
over the block (``_pattern_kernels.missing_bits``, then a hash table of the
patterns, O(n D)), sweep the complete rows as without NaN and read the others
in place; per pattern the Schur complement (3) comes from a Cholesky
factorisation of each precision's missing block Lambda_mm (K of them, or 1
for ``tied``), O(K |m|^3), ``_pattern_kernels.FACTOR_BATCH`` patterns at a time; each row's
conditional mean (2) is -C (Lambda_mo d_o), O(K (|o| |m| + |m|^2)), and its
log-density and moments cost O(K D^2) as a complete row's do, in tiles of
rows whose loops vectorise (``_pattern_kernels``, numba):
O(P K |m|^3 + n K (|o| |m| + D^2)) for P patterns. A pattern of at least
`LARGE_PATTERN_ROWS` rows (missing blocks of columns) instead goes through
the complete rows' kernel on its observed features, O(K |o|^2) per row and
O(K D^3) once (`_large_pattern_sums`). The number of patterns (up to
min(n, 2^D) at random) matters only through the per-pattern term, small
while rows miss few entries. Measured at D 16, K 8 on bench_missing's rows
(CPU time of a block of 125,000 rows after two EM iterations, against the block
without NaN, one process pinned to a core, median of 11 paired runs, load
average 0.8): 20 % missing at random (about 14,000 patterns) 2.81x and 3.15x
in two runs, 5 % 1.35x and 1.48x, blocks of columns (60 % of the rows
complete, two patterns) 1.22x and 1.28x for ``full``; ``tied`` 4.1x, 2.0x,
1.4x (one run).
"""

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from . import _kernels
from ._covariance import REGISTRY, weighted_outer
from ._stats import Stats, merge

LOG_2PI = np.log(2 * np.pi)
# log(2 pi e): twice the entropy of a standard normal variable.
LOG_2PI_E = LOG_2PI + 1.0

# ``full`` and ``tied``: patterns with at least this many rows in a block go
# through the complete rows' kernel on their observed features
# (`_large_pattern_sums`), about where its fixed cost (NumPy calls on (K, D, D)
# arrays, about 0.3 ms) is paid back. Measured at D 16, K 8 (CPU time, best of
# 9, load 3.4): a pattern missing 4 features, 25,000 rows, 463 ns per row
# against 561 through the pattern kernels' tiles; one missing 1, 877 rows,
# 987 against 698.
LARGE_PATTERN_ROWS = 4096

# Rows per block of the random generator of `row_draws`: a row's draws depend
# on its global index only, not on the chunking.
_RANDOM_ROWS = 4096


@functools.lru_cache(maxsize=1)
def _numba():
    """The numba kernels, compiled (or loaded from numba's cache) on first use."""
    from . import _pattern_kernels

    return _pattern_kernels


def nan_error():
    """scikit-learn's ValueError for NaN, saying how to fit such data."""
    return ValueError(
        "Input X contains NaN. With nan_policy='raise' (the default) NaN is an error; "
        "pass nan_policy='marginalize' to treat NaN as values missing at random (EM on "
        "the observed entries), or nan_policy='omit' to leave out the rows holding NaN."
    )


def check_values(X, nan_policy):
    """Raise ValueError for infinity in ``X`` (any policy) and for NaN (``"raise"``)."""
    X = np.asarray(X)
    if X.dtype.kind != "f":
        return
    if np.isinf(X).any():
        raise ValueError(
            f"Input X contains infinity or a value too large for {X.dtype!r}. Infinity is "
            "not a missing value under any nan_policy: replace it (by NaN, if missing)."
        )
    if nan_policy == "raise" and np.isnan(X).any():
        raise nan_error()


def _centre(weights, means):
    """A point near the data: the weighted mean of the component means."""
    return weights @ means / weights.sum()


def _upper_factors(roots):
    """Upper Cholesky factors U (F, D, D) of the precisions, from
    `CovarianceType.precision_roots` (per-feature roots: diagonal U)."""
    if roots.ndim == 2:
        roots = roots[:, :, None] * np.eye(roots.shape[1])
    return np.ascontiguousarray(roots, dtype=np.float64)


def _variances(roots):
    """Per-feature variances (K, D) of a separable type from its per-feature roots."""
    return np.ascontiguousarray(1.0 / np.square(roots), dtype=np.float64)


def _by_pattern(x, bits=None):
    """The rows of ``x`` holding NaN grouped by missingness pattern
    (``_pattern_kernels.group_rows``), from their `_missing_bits` if given.

    Returns ``(order, observed, starts)``: row ``order[i]`` of ``x`` is the
    i-th in pattern order, ``observed`` (P, D) the observed features of each
    pattern, whose rows are ``starts[p]:starts[p + 1]`` of that order.
    """
    if bits is None:
        bits = _missing_bits(x)[0]
    return _numba().group_rows(bits, x.shape[1])


def _missing_bits(X):
    """``_pattern_kernels.missing_bits`` of the rows ``X`` (float32 or float64,
    C-contiguous): ``(bits (n, W), infinite)``."""
    return _numba().missing_bits(X)


def _incomplete_stats(x, sample_weight, weights, means, prec_chol, covariance_type,
                      log_w, with_entropy, bits=None):
    """`Stats` of the rows of ``x`` holding NaN (``diag`` and ``spherical``: of all
    rows; ``full`` and ``tied`` read them in place, found from their `_missing_bits`
    ``bits`` if given) by ``"marginalize"`` (those with nothing observed take no
    part), relative to
    ``_kernels.reference_means``, by (1)-(3) with the log constants ``log_w``
    (log w_k, or a variational mixture's c_k); ``with_entropy``, ``entropy``
    is sum r log r less the entropies of the missing entries (4), else 0."""
    kind = REGISTRY[covariance_type]
    centre = _centre(weights, means)
    means_c = _kernels.reference_means(weights, means) - centre
    roots = kind.precision_roots(prec_chol, x.shape[1])
    sw = np.empty(0) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if kind.separable:
        nk, first, m2, loglik, weight, entropy = _numba().diag_statistics(
            np.ascontiguousarray(x, dtype=np.float64), sw, centre, means_c, _variances(roots),
            log_w, with_entropy)
        m2 = kind.pooled_m2(m2)
    else:
        x = _kernels.kernel_rows(x)
        order, observed, starts = _by_pattern(x, bits)
        rows = np.diff(starts)
        large = rows >= LARGE_PATTERN_ROWS
        small = np.repeat(~large, rows)
        factors = _upper_factors(roots)
        nk, first, m2, loglik, weight, entropy = _numba().pattern_statistics(
            x, order[small], observed[~large], np.concatenate([[0], np.cumsum(rows[~large])]),
            sw, centre, means_c, factors, log_w, with_entropy)
        m2 = kind.pooled_m2(m2)
        for p in np.flatnonzero(large):
            sums = _large_pattern_sums(x, order[starts[p]:starts[p + 1]], observed[p], sw,
                                       centre, means_c, factors, log_w, with_entropy,
                                       covariance_type)
            nk, first, m2 = nk + sums[0], first + sums[1], m2 + sums[2]
            loglik, weight, entropy = loglik + sums[3], weight + sums[4], entropy + sums[5]
    has_weight = nk > 0
    offset = np.where(has_weight[:, None], first / np.where(has_weight, nk, 1)[:, None], 0.0)
    return Stats(nk, offset, m2 - weighted_outer(nk, offset, covariance_type),
                 np.float64(loglik), np.float64(weight),
                 np.float64(entropy if with_entropy else 0.0))


def _large_pattern_sums(x, rows, observed, sample_weight, centre, means, factors, log_w,
                        with_entropy, covariance_type):
    """`_incomplete_stats`' sums (``_pattern_kernels.pattern_statistics``'
    ``(nk, first, m2 (pooled), loglik, weight, entropy)``) of the rows ``rows``
    of ``x``, of one pattern (``observed`` (D,)), by the complete rows'
    kernel (``_kernels``) on their observed features o.

    The observed entries' marginal has precision the Schur complement
    S = Lambda_oo - Lambda_om C Lambda_mo = Sigma_oo^-1, C = Lambda_mm^-1 (3),
    whose upper factor takes the place of ``prec_chol`` in (1); the
    completed deviation (2) is A d_o, A = [I; Bt^T], Bt^T = -C Lambda_mo,
    so that sum r x_hat = A sum r d_o and sum r (x_hat x_hat^T + C)
    = A (sum r d_o d_o^T) A^T + (sum r) C about each component's mean, from
    the kernel's sums over |o| features (its BLAS products, O(K |o|^2) per
    row). ``factors`` (F, D, D) are the precisions' upper factors U
    (Lambda = U U^T), ``means`` relative to ``centre``.
    """
    obs, mis = np.flatnonzero(observed), np.flatnonzero(~observed)
    precisions = factors @ np.swapaxes(factors, 1, 2)
    lambda_mo = precisions[:, mis][:, :, obs]
    chol_mm = np.linalg.cholesky(precisions[:, mis][:, :, mis])
    inverse_chol = np.linalg.inv(chol_mm)
    conds = np.swapaxes(inverse_chol, 1, 2) @ inverse_chol  # C, exactly symmetric
    regression = -(conds @ lambda_mo)  # Bt^T (F, |m|, |o|)
    schur = precisions[:, obs][:, :, obs] + np.swapaxes(lambda_mo, 1, 2) @ regression
    schur = (schur + np.swapaxes(schur, 1, 2)) / 2
    # U_o upper with U_o U_o^T = S: the lower factor of S with its features reversed
    upper = np.linalg.cholesky(schur[:, ::-1, ::-1])[:, ::-1, ::-1]
    shared = covariance_type == "tied"
    prec_chol = np.ascontiguousarray(upper[0] if shared else upper)
    means_o = np.ascontiguousarray(means[:, obs])
    x_o = _numba().observed_entries(x, rows, obs)
    nk, first_o, m2_o, totals = _kernels.sums_about_means(
        x_o, sample_weight[rows] if sample_weight.size else None,
        np.ascontiguousarray(centre[obs]), means_o, prec_chol, covariance_type, log_w,
        with_entropy)
    n_components, n_features = means.shape
    first = np.zeros((n_components, n_features))
    first[:, obs] = first_o
    # (4): H = (|m| log(2 pi e) - log |Lambda_mm|) / 2
    entropies = 0.5 * mis.size * LOG_2PI_E - np.log(
        np.diagonal(chol_mm, axis1=1, axis2=2)).sum(axis=1)
    if shared:  # one regression for every component, moments pooled
        m2_o, weights = m2_o[None], nk.sum()[None]
        entropy = totals[2] - nk.sum() * entropies[0]
    else:
        weights = nk
        entropy = totals[2] - nk @ entropies
    first[:, mis] = np.einsum("kmo,ko->km", np.broadcast_to(
        regression, (n_components,) + regression.shape[1:]), first_o)
    # A m2_o A^T + w C, A = [I; Bt^T] on (o, m); the (m, m) block exactly symmetric
    cross = regression @ m2_o
    missing = cross @ np.swapaxes(regression, 1, 2) + weights[:, None, None] * conds
    m2 = np.zeros((m2_o.shape[0], n_features, n_features))
    m2[:, obs[:, None], obs] = m2_o
    m2[:, mis[:, None], obs] = cross
    m2[:, obs[:, None], mis] = np.swapaxes(cross, 1, 2)
    m2[:, mis[:, None], mis] = (missing + np.swapaxes(missing, 1, 2)) / 2
    return (nk, first, m2[0] if shared else m2, totals[0], totals[1],
            entropy if with_entropy else 0.0)


def _checked(kernel, X, nan_policy, *args):
    """``kernel(*args)``; where it raises ValueError, `check_values`' error for
    ``X`` instead, if any (the kernels find NaN and infinity only as a
    non-finite log-likelihood)."""
    try:
        return kernel(*args)
    except ValueError:
        check_values(X, nan_policy)
        raise


@dataclass(frozen=True)
class _NaNPolicy:
    """A model family (``_family.Family``) on rows that may hold NaN, as its
    ``nan_policy`` says.

    ``base`` is the family fitted (EM's, the variational mixture's). What
    NaN changes is this family's: a block's statistics, the log-densities of
    predictions and the rows' log-likelihoods; the rest (M-step, bounds,
    checkpoint and fitted arrays) is ``base``'s.
    """

    base: object
    nan_policy = None  # the estimators' parameter this family stands for (subclasses)

    def score_samples(self, X, parameters, counted=False):
        """Row log-likelihoods (n,); with ``counted``, NaN for the rows that take
        no part in a fit, so that means and counts over the non-NaN values are
        those over the rows that hold data."""
        return logsumexp(self.weighted_log_prob(X, parameters), axis=1)

    @property
    def fitted_arrays(self):
        return self.base.fitted_arrays

    @property
    def with_entropy(self):
        return self.base.with_entropy

    def log_weights(self, parameters):
        return self.base.log_weights(parameters)

    def update(self, stats, previous, reg_covar, params, iteration):
        return self.base.update(stats, previous, reg_covar, params, iteration)

    def failed_bound(self, stats, last_bound):
        return self.base.failed_bound(stats, last_bound)

    def block_statistics(self, parameters, stats):
        return self.base.block_statistics(parameters, stats)

    def free_energy(self, parameters, computed):
        return self.base.free_energy(parameters, computed)

    def checkpoint_arrays(self, parameters):
        return self.base.checkpoint_arrays(parameters)

    def restored(self, parameters, arrays):
        return self.base.restored(parameters, arrays)


class NaNRaises(_NaNPolicy):
    """``nan_policy='raise'``: NaN is an error (`nan_error`), found by the
    kernels as a non-finite log-likelihood, at no cost to complete data."""

    nan_policy = "raise"

    def statistics(self, X, sample_weight, parameters):
        return _checked(self.base.statistics, X, self.nan_policy, X, sample_weight, parameters)

    def weighted_log_prob(self, X, parameters):
        check_values(X, self.nan_policy)
        return self.base.weighted_log_prob(X, parameters)


class _SplitRows(_NaNPolicy):
    """Complete rows through ``base``'s E-step, unchanged (data without NaN
    gives the ``"raise"`` fit), the rows holding NaN as the subclass says
    (`_incomplete_statistics`, `_incomplete_log_prob`)."""

    def statistics(self, X, sample_weight, parameters):
        """``base.statistics`` of the complete rows, with those of the rows holding
        NaN (`_incomplete_statistics`, which reads them in place)."""
        X = _kernels.kernel_rows(X)
        bits, infinite = _missing_bits(X)
        if infinite:  # also in a row with NaN, which the kernels skip
            check_values(X, self.nan_policy)
        complete = np.flatnonzero(~bits.any(axis=1))
        if complete.size == X.shape[0]:
            return _checked(self.base.statistics, X, self.nan_policy, X, sample_weight,
                            parameters)
        stats = _checked(self.base.statistics, X, self.nan_policy, X,
                         None if sample_weight is None else sample_weight[complete],
                         parameters, complete)  # read in place
        return self._incomplete_statistics(stats, X, sample_weight, bits, parameters)

    def weighted_log_prob(self, X, parameters):
        """``base.weighted_log_prob`` of the complete rows, (n, K); the rows holding
        NaN get `_incomplete_log_prob`."""
        check_values(X, self.nan_policy)
        incomplete = np.isnan(X).any(axis=1)
        if not incomplete.any():
            return self.base.weighted_log_prob(X, parameters)
        out = np.empty((X.shape[0], parameters.n_components))
        out[~incomplete] = self.base.weighted_log_prob(X[~incomplete], parameters)
        out[incomplete] = self._incomplete_log_prob(X[incomplete], parameters)
        return out


class CompleteRows(_SplitRows):
    """``nan_policy='omit'``: a row holding NaN takes no part in the fit, as if
    absent; at prediction it gets NaN."""

    nan_policy = "omit"

    def _incomplete_statistics(self, stats, X, sample_weight, bits, parameters):
        return stats

    def _incomplete_log_prob(self, x, parameters):
        return np.nan


class ObservedEntries(_SplitRows):
    """``nan_policy='marginalize'``: the observed entries of the rows holding NaN
    fitted by (1)-(3), with ``base``'s constants in place of log w_k (and,
    ``base.with_entropy``, the entropy (4)); see the module docstring."""

    nan_policy = "marginalize"

    def statistics(self, X, sample_weight, parameters):
        """As `_SplitRows`; for ``diag`` and ``spherical``, a block holding NaN goes
        whole through ``_pattern_kernels.diag_statistics``, complete rows too: there
        a complete row costs about what it costs in the complete rows' sweep, less
        than splitting the block into complete and incomplete rows does (measured
        at D 16, K 8: a block with 40 % of its rows missing a block of columns 1.2x
        the complete sweep whole, 1.7x split). A block without NaN
        (``_pattern_kernels.any_nan``, which stops at the first rows with one) goes
        through ``base``'s E-step."""
        if not REGISTRY[parameters.covariance_type].separable:
            return super().statistics(X, sample_weight, parameters)
        X = _kernels.kernel_rows(X)
        if not _numba().any_nan(X):  # no NaN
            return _checked(self.base.statistics, X, self.nan_policy, X, sample_weight,
                            parameters)
        stats = self._observed_statistics(X, sample_weight, parameters)
        if not np.isfinite(stats.loglik):
            check_values(X, self.nan_policy)
        return stats

    def _observed_statistics(self, X, sample_weight, parameters, bits=None):
        """(1)-(4) of the rows of ``X`` holding NaN with ``base``'s constants
        (`_incomplete_stats`)."""
        return _incomplete_stats(X, sample_weight, parameters.weights, parameters.means,
                                 parameters.prec_chol, parameters.covariance_type,
                                 self.base.log_weights(parameters), self.base.with_entropy,
                                 bits)

    def _incomplete_statistics(self, stats, X, sample_weight, bits, parameters):
        """``stats`` merged with those of the rows of ``X`` holding NaN (their
        `_missing_bits`; rows with nothing observed take no part)."""
        return merge(stats, self._observed_statistics(X, sample_weight, parameters, bits),
                     parameters.covariance_type)

    def _incomplete_log_prob(self, x, parameters):
        """The log constants plus (1) of rows with NaN; the constants of a row with
        no observed entry are log w_k (its probabilities are ``weights``)."""
        return _marginal_log_prob(x, parameters.weights, parameters.means, parameters.prec_chol,
                                  parameters.covariance_type, self.base.log_weights(parameters))

    def score_samples(self, X, parameters, counted=False):
        """A row with no observed entry has log-likelihood 0 exactly (its weights
        sum to 1 but their logsumexp rounds), NaN with ``counted``."""
        scores = super().score_samples(X, parameters)
        scores[np.isnan(X).all(axis=1)] = np.nan if counted else 0.0
        return scores


# Every nan_policy and the family that fits a model family under it.
NAN_POLICIES = {family.nan_policy: family for family in (NaNRaises, CompleteRows,
                                                         ObservedEntries)}


def _marginal_log_prob(x, weights, means, prec_chol, covariance_type, log_weights):
    """(1) plus ``log_weights`` of rows with NaN, (n, K); log w_k for a row with none
    observed."""
    kind = REGISTRY[covariance_type]
    centre = _centre(weights, means)
    means_c = means - centre
    roots = kind.precision_roots(prec_chol, x.shape[1])
    if kind.separable:
        out = _numba().diag_log_prob(np.ascontiguousarray(x, dtype=np.float64), centre,
                                     means_c, _variances(roots), log_weights)
    else:
        x = _kernels.kernel_rows(x)
        out = _numba().pattern_log_prob(x, *_by_pattern(x), centre, means_c,
                                        _upper_factors(roots), log_weights)
    out[np.isnan(x).all(axis=1)] = np.log(weights)
    return out


def row_draws(start, stop, n_features, seed):
    """A uniform and D standard normals for every row ``start:stop``, from ``seed``
    and the rows' global indices only: ``(uniforms (n,), normals (n, D))``."""
    first, last = start // _RANDOM_ROWS, (stop - 1) // _RANDOM_ROWS
    uniforms, normals = [], []
    for block in range(first, last + 1):
        generator = np.random.default_rng([seed, block])
        uniforms.append(generator.random(_RANDOM_ROWS))
        normals.append(generator.standard_normal((_RANDOM_ROWS, n_features)))
    rows = slice(start - first * _RANDOM_ROWS, stop - first * _RANDOM_ROWS)
    return np.concatenate(uniforms)[rows], np.concatenate(normals)[rows]


def impute(X, weights, means, prec_chol, covariance_type, draws=None):
    """``X`` with every NaN filled under the mixture; observed entries unchanged.

    Without ``draws``, the conditional expectation
    sum_k p(k | x_o) (mu_km + Sigma_mo Sigma_oo^-1 (x_o - mu_o)), by (1)-(2);
    with ``draws`` (`row_draws` of the rows), a draw from the conditional
    mixture: k from p(k | x_o), then x_m from N((2), (3)). A row with no
    observed entry gets the mixture's mean (or a draw from the mixture).
    """
    X = np.asarray(X)
    check_values(X, "marginalize")
    missing = np.isnan(X)
    incomplete = missing.any(axis=1)
    out = X.copy()
    if not incomplete.any():
        return out
    centre = _centre(weights, means)
    rows = _kernels.kernel_rows(X[incomplete])
    uniforms, normals = np.empty(0), np.empty((0, X.shape[1]))
    if draws is not None:
        uniforms, normals = (np.ascontiguousarray(values[incomplete]) for values in draws)
    filled = _numba().pattern_impute(
        rows, *_by_pattern(rows), centre, means - centre,
        _upper_factors(REGISTRY[covariance_type].precision_roots(prec_chol, X.shape[1])),
        np.log(weights), uniforms, normals)
    out[incomplete] = np.where(missing[incomplete], filled + centre, X[incomplete])
    return out
