"""Numba kernels for rows with missing entries, by missingness pattern.

Imported lazily by ``_missing`` (numba's compilation costs seconds, once per
machine thanks to ``cache=True``). The kernels of ``full`` and ``tied`` take
the rows of a block sorted by pattern (`group_rows`): ``observed`` (P, D)
holds each pattern's observed features, the rows of pattern p are
``starts[p]:starts[p + 1]``. Rows and means are centred on one point near
the data (see ``_missing``).

The kernels work from each component's precision Lambda = U U^T (``U`` its
upper-triangular Cholesky factor, scikit-learn's ``precisions_cholesky_``;
F of them: K, or 1 when shared, ``tied``). For a pattern with observed
features o and missing m, the conditional of Ghahramani & Jordan (1994,
eq. 11-12) in terms of Lambda is

    x_m | x_o ~ N(mu_m + Bt^T (x_o - mu_o), C),
    Bt^T = -Lambda_mm^-1 Lambda_mo  (= Sigma_mo Sigma_oo^-1),
    C = Lambda_mm^-1                (= Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om),

and the marginal of the observed entries needs no factorisation of
Sigma_oo: with d the row's deviation from mu completed by the conditional
mean (d_m = Bt^T d_o),

    d_o^T Sigma_oo^-1 d_o = d^T Lambda d = |U^T d|^2,
    log |Sigma_oo| = log |Lambda_mm| - log |Lambda|.

The statistics' ``entropy`` (the variational bound's, see ``_missing`` (4))
is sum r log r less sum r H_k, H_k = (|m| log(2 pi e) - log |Lambda_k,mm|) / 2
the entropy of x_m | x_o, k; the factorisation gives log |Lambda_mm|.

`_factorise` does, once per pattern and factor, a Cholesky factorisation of
Lambda_mm, C from its inverse factor and Bt = -Lambda_om C: O(|m|^3 + |o| |m|^2). Each row
costs O(K D^2) (its completed deviations, |U^T d|^2 and the second moments),
as a complete row does, in tiles of `TILE_ROWS` rows, rows as columns, so
that the loops over rows vectorise: the rows of a pattern with many rows in
tiles of their own, those of the others sharing tiles (`pattern_statistics`).
A block of n rows in P patterns costs O(P F (|m|^3 + |o| |m|^2) + n K D^2):
cheap for few missing entries per row (|m| small), whatever the number of
patterns. ``diag`` and ``spherical`` need no patterns (`diag_statistics`).
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from . import _fused

LOG_2PI = np.log(2 * np.pi)
# log(2 pi e): twice the entropy of a standard normal variable.
LOG_2PI_E = LOG_2PI + 1.0

# Responsibilities whose log (relative to the row's largest) is at most this
# are 0, as in ``_kernels``: below about -708 ``exp`` returns slow subnormals;
# what is dropped is below exp(-500) = 7e-218 of a row's weight.
LOG_RESP_FLOOR = -500.0

# Rows taken together: the kernels' inner loops run over a tile's rows (rows as
# columns), which LLVM vectorises, and its completed deviations (K, D, tile)
# stay in cache. Measured on bench_missing's rows (full, D 16, K 8; CPU time
# per row with NaN, against row by row): 1.2 against 2.3 us with two patterns
# (blocks of columns), 1.6 against 3.0 us with 5 % missing at random.
TILE_ROWS = 128
# Patterns with at least this many rows take tiles of their own; the rows of
# the others share tiles. Measured (CPU time of `pattern_statistics`, full,
# D 16, K 8, 125,000 rows, best of 9 on a loaded machine), against shared
# tiles throughout and against row by row under 16 rows: two patterns
# 32 / 42 / 31 ms, 20 % missing at random 254 / 280 / 267 ms, 5 % 56 / 71 /
# 97 ms (16: 34 / 55 / 33, 305 / 257 / 318, 66 / 86 / 82; 128 was slower).
TILE_MIN_ROWS = 48
# Room for the conditional covariances of a tile's patterns in
# `pattern_statistics`, in float64 (F |m|^2 per pattern; at least one
# pattern's): a tile is full at `TILE_ROWS` rows or when the next pattern's
# would not fit (at D 16, K 8, 20 % missing at random, |m| about 3: 72 each).
SLOT_CONDS = 2**14

# LLVM may reorder sums and fuse multiply-adds (vectorised loops), but keeps
# IEEE NaN and infinity semantics.
_FASTMATH = {"reassoc", "contract", "arcp"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _cholesky_in_place(a, n):
    """Lower Cholesky factor of ``a[:n, :n]`` (its lower triangle read), in place;
    returns the sum of the logs of its diagonal (half the log-determinant)."""
    half_log_det = 0.0
    for j in range(n):
        total = a[j, j]
        for t in range(j):
            total -= a[j, t] * a[j, t]
        if total <= 0.0:
            raise ValueError("a precision matrix is not positive definite")
        diagonal = np.sqrt(total)
        a[j, j] = diagonal
        half_log_det += np.log(diagonal)
        for i in range(j + 1, n):
            total = a[i, j]
            for t in range(j):
                total -= a[i, t] * a[j, t]
            a[i, j] = total / diagonal
    return half_log_det


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _factorise(precision, log_det_u, obs, mis, chol, bt, cond):
    """For one pattern: C = Lambda_mm^-1 into ``cond`` (|m|, |m|, exactly
    symmetric) and Bt = -Lambda_om C into ``bt`` (|o|, |m|), using ``chol`` as
    scratch. Returns half of log |Sigma_oo| (module docstring); ``log_det_u`` is
    sum log diag(U) = log |Lambda| / 2.

    C = L^-T L^-1 from the Cholesky factor L of Lambda_mm and its inverse (by
    forward substitution); then Bt takes |o| |m|^2 multiply-adds and no division.
    """
    n_obs, n_mis = obs.size, mis.size
    for a in range(n_mis):
        for b in range(a + 1):
            chol[a, b] = precision[mis[a], mis[b]]
    half_log_det_mm = _cholesky_in_place(chol, n_mis)
    for b in range(n_mis):  # L^-1 (lower) into cond's lower triangle
        cond[b, b] = 1.0 / chol[b, b]
        for a in range(b + 1, n_mis):
            total = 0.0
            for t in range(b, a):
                total -= chol[a, t] * cond[t, b]
            cond[a, b] = total / chol[a, a]
    for a in range(n_mis):  # ... moved to chol: chol[b, a] = (L^-1)[a, b], b <= a
        for b in range(a + 1):
            chol[b, a] = cond[a, b]
    for a in range(n_mis):  # C[a, b] = sum_t (L^-1)[t, a] (L^-1)[t, b], t >= a >= b
        for b in range(a + 1):
            total = 0.0
            for t in range(a, n_mis):
                total += chol[a, t] * chol[b, t]
            cond[a, b] = total
            cond[b, a] = total
    for i in range(n_obs):
        for a in range(n_mis):
            total = 0.0
            for b in range(n_mis):
                total -= precision[obs[i], mis[b]] * cond[b, a]
            bt[i, a] = total
    return half_log_det_mm - log_det_u


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _factor_buffers(n_factors, n_features):
    """Per-pattern factors, F of each: ``(chol scratch, bts, conds, half_log_dets)``."""
    square = (n_factors, n_features, n_features)
    return (np.zeros((n_features, n_features)), np.zeros(square), np.zeros(square),
            np.zeros(n_factors))


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tile_buffers(n_components, n_features):
    """Per-tile scratch: ``(xt (D, tile), devs (K, D, tile), lp (K, tile), work (tile,))``."""
    return (np.empty((n_features, TILE_ROWS)),
            np.empty((n_components, n_features, TILE_ROWS)),
            np.empty((n_components, TILE_ROWS)), np.empty(TILE_ROWS))


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pattern_factors(precisions, log_det_u, obs, mis, chol, bts, conds, half_log_dets):
    """`_factorise` every factor for a pattern."""
    for f in range(precisions.shape[0]):
        half_log_dets[f] = _factorise(precisions[f], log_det_u[f], obs, mis, chol, bts[f],
                                      conds[f])


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _fill(xc, start, n_rows, offset, obs, mis, means, bts, xt, devs):
    """The rows ``start:start + n_rows`` of one pattern into the columns
    ``offset:offset + n_rows`` of a tile: for each component k their deviations
    completed by the conditional means, d (``devs[k]`` (D, tile), rows as
    columns; d_m = Bt^T d_o)."""
    shared = bts.shape[0] == 1
    for n in range(n_rows):
        for i in obs:
            xt[i, offset + n] = xc[start + n, i]
    for k in range(means.shape[0]):
        f = 0 if shared else k
        dev = devs[k]
        for i in obs:
            mean = means[k, i]
            observed = xt[i]
            completed = dev[i]
            for n in range(offset, offset + n_rows):
                completed[n] = observed[n] - mean
        for a in range(mis.size):
            completed = dev[mis[a]]
            for n in range(offset, offset + n_rows):
                completed[n] = 0.0
            for i in range(obs.size):
                coef = bts[f, i, a]
                observed = dev[obs[i]]
                for n in range(offset, offset + n_rows):
                    completed[n] += coef * observed[n]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _quad_forms(devs, n_rows, prec_chols, lp, work):
    """lp[k, n] = d^T Lambda_k d = |U_k^T d|^2 of a tile's completed deviations
    (U upper triangular)."""
    n_features = devs.shape[1]
    shared = prec_chols.shape[0] == 1
    for k in range(devs.shape[0]):
        f = 0 if shared else k
        dev = devs[k]
        log_prob = lp[k]
        for n in range(n_rows):
            log_prob[n] = 0.0
        for j in range(n_features):
            for n in range(n_rows):
                work[n] = 0.0
            for i in range(j + 1):
                coef = prec_chols[f, i, j]
                row = dev[i]
                for n in range(n_rows):
                    work[n] += coef * row[n]
            for n in range(n_rows):
                log_prob[n] += work[n] * work[n]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tile(xc, start, n_rows, obs, mis, means, prec_chols, bts, half_log_dets, log_weights,
          xt, devs, lp, work):
    """For the rows ``start:start + n_rows`` of one pattern and each component k:
    their completed deviations (`_fill`) and log w_k + log N(x_o; mu_ko,
    Sigma_k,oo) (``lp[k]``)."""
    _fill(xc, start, n_rows, 0, obs, mis, means, bts, xt, devs)
    _quad_forms(devs, n_rows, prec_chols, lp, work)
    shared = prec_chols.shape[0] == 1
    for k in range(means.shape[0]):
        f = 0 if shared else k
        constant = log_weights[k] - half_log_dets[f] - 0.5 * obs.size * LOG_2PI
        log_prob = lp[k]
        for n in range(n_rows):
            log_prob[n] = constant - 0.5 * log_prob[n]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _responsibilities(log_prob, resp):
    """Normalised responsibilities into ``resp``; returns (log sum exp, sum r log r)."""
    top = log_prob.max()
    total = 0.0
    for k in range(log_prob.size):
        shifted = log_prob[k] - top
        resp[k] = np.exp(shifted) if shifted > LOG_RESP_FLOOR else 0.0
        total += resp[k]
    log_total = np.log(total)
    entropy = 0.0
    for k in range(log_prob.size):
        resp[k] /= total
        if resp[k] > 0.0:
            entropy += resp[k] * (log_prob[k] - top - log_total)
    return top + log_total, entropy


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _row_responsibilities(lp, n, log_prob, resp):
    """`_responsibilities` of row ``n`` of a tile's ``lp`` (K, tile)."""
    for k in range(lp.shape[0]):
        log_prob[k] = lp[k, n]
    return _responsibilities(log_prob, resp)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _weighted_responsibilities(log_prob, resp, w, totals, nk):
    """A row's responsibilities times its weight ``w`` into ``resp``, and added to
    ``nk``; adds w times its log-likelihood, w and w times its sum r log r to
    ``totals`` (3,)."""
    log_norm, row_entropy = _responsibilities(log_prob, resp)
    totals[0] += w * log_norm
    totals[1] += w
    totals[2] += w * row_entropy
    for k in range(resp.size):
        resp[k] *= w
        nk[k] += resp[k]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _log_det_u(prec_chols):
    out = np.zeros(prec_chols.shape[0])
    for f in range(prec_chols.shape[0]):
        for i in range(prec_chols.shape[1]):
            out[f] += np.log(prec_chols[f, i, i])
    return out


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _add_moments(dev, r, n_rows, weighted, first, m2):
    """first += sum_n r_n d_n, upper(m2) += upper(sum_n r_n d_n d_n^T) over a tile's rows
    (``dev`` (D, tile), rows as columns; ``weighted`` scratch of its shape)."""
    n_features = dev.shape[0]
    for i in range(n_features):
        total = 0.0
        for n in range(n_rows):
            weighted[i, n] = r[n] * dev[i, n]
            total += weighted[i, n]
        first[i] += total
    for i in range(n_features):
        for j in range(i, n_features):
            total = 0.0
            for n in range(n_rows):
                total += weighted[i, n] * dev[j, n]
            m2[i, j] += total


class _Slots(NamedTuple):
    """The patterns of a tile's rows (slots), for `_tile_statistics`: per row its
    slot and weight; per slot its log constants (K,), entropies H (F,), missing features
    (their number, then the features), conditional covariances C (F of
    |m| x |m|, in ``conds`` from ``cond_start``) and its rows' responsibility
    sums (K,)."""

    of_row: np.ndarray
    row_weight: np.ndarray
    constant: np.ndarray
    entropy: np.ndarray
    n_missing: np.ndarray
    missing: np.ndarray
    cond_start: np.ndarray
    conds: np.ndarray
    weight: np.ndarray


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _slot_buffers(n_factors, n_components, n_features):
    return _Slots(np.empty(TILE_ROWS, dtype=np.int64), np.empty(TILE_ROWS),
                  np.empty((TILE_ROWS, n_components)),
                  np.empty((TILE_ROWS, n_factors)), np.empty(TILE_ROWS, dtype=np.int64),
                  np.empty((TILE_ROWS, n_features), dtype=np.int64),
                  np.zeros(TILE_ROWS + 1, dtype=np.int64),
                  np.empty(max(SLOT_CONDS, n_factors * n_features * n_features)),
                  np.zeros((TILE_ROWS, n_components)))


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _add_slot(slots, s, obs, mis, log_weights, conds, half_log_dets, log_det_u):
    """The pattern (obs, mis), just factorised, as slot ``s`` of the tile."""
    n_mis = mis.size
    shared = conds.shape[0] == 1
    for k in range(log_weights.size):
        f = 0 if shared else k
        slots.constant[s, k] = log_weights[k] - half_log_dets[f] - 0.5 * obs.size * LOG_2PI
    slots.n_missing[s] = n_mis
    slots.missing[s, :n_mis] = mis
    at = slots.cond_start[s]
    for f in range(conds.shape[0]):
        # log |Lambda_mm| / 2 = half_log_dets + log_det_u (see `_factorise`)
        slots.entropy[s, f] = 0.5 * n_mis * LOG_2PI_E - half_log_dets[f] - log_det_u[f]
        for a in range(n_mis):
            for b in range(n_mis):
                slots.conds[at] = conds[f, a, b]
                at += 1
    slots.cond_start[s + 1] = at


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _tile_statistics(n_rows, n_slots, slots, prec_chols, tile, nk, first, m2, totals):
    """E-step and statistics of a filled tile of ``n_rows`` rows (row n of the
    pattern in slot ``slots.of_row[n]``), added to ``nk``,
    ``first``, ``m2`` and ``totals`` (log-likelihood, weight, entropy); the
    slots' conditional covariances C and entropies H weighted by the sums of
    their rows' responsibilities."""
    xt, devs, lp, work, weighted, log_prob, resp = tile
    n_components = devs.shape[0]
    shared = prec_chols.shape[0] == 1
    _quad_forms(devs, n_rows, prec_chols, lp, work)
    for n in range(n_rows):
        s = slots.of_row[n]
        for k in range(n_components):
            log_prob[k] = slots.constant[s, k] - 0.5 * lp[k, n]
        _weighted_responsibilities(log_prob, resp, slots.row_weight[n], totals, nk)
        for k in range(n_components):
            lp[k, n] = resp[k]  # from here on, weighted responsibilities
            slots.weight[s, k] += resp[k]
    for k in range(n_components):
        total = 0.0
        for n in range(n_rows):
            total += lp[k, n]
        if total != 0.0:
            _add_moments(devs[k], lp[k], n_rows, weighted, first[k], m2[k])
    for s in range(n_slots):
        n_mis = slots.n_missing[s]
        for k in range(n_components):
            f = 0 if shared else k
            w = slots.weight[s, k]
            slots.weight[s, k] = 0.0
            totals[2] -= w * slots.entropy[s, f]
            at = slots.cond_start[s] + f * n_mis * n_mis
            for a in range(n_mis):  # missing ascending: the upper triangle
                for b in range(a + 1):
                    m2[k, slots.missing[s, b], slots.missing[s, a]] += (
                        w * slots.conds[at + a * n_mis + b])


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _pattern_tiles(xc, sample_weight, start, stop, obs, mis, means, prec_chols, bts, conds,
                   half_log_dets, log_det_u, log_weights, tile, nk, first, m2, totals):
    """E-step and statistics of the rows ``start:stop`` of one pattern, in tiles of
    their own (`_tile`), added to ``nk``, ``first``, ``m2`` and ``totals``; the
    pattern's C and entropies weighted by the sums of its rows' responsibilities."""
    xt, devs, lp, work, weighted, log_prob, resp = tile
    n_components = means.shape[0]
    shared = prec_chols.shape[0] == 1
    weight_of_pattern = np.zeros(n_components)
    for begin in range(start, stop, TILE_ROWS):
        n_rows = min(TILE_ROWS, stop - begin)
        _tile(xc, begin, n_rows, obs, mis, means, prec_chols, bts, half_log_dets, log_weights,
              xt, devs, lp, work)
        for n in range(n_rows):
            for k in range(n_components):
                log_prob[k] = lp[k, n]
            _weighted_responsibilities(log_prob, resp, sample_weight[begin + n], totals, nk)
            for k in range(n_components):
                lp[k, n] = resp[k]  # from here on, weighted responsibilities
        for k in range(n_components):
            total = 0.0
            for n in range(n_rows):
                total += lp[k, n]
            if total != 0.0:
                weight_of_pattern[k] += total
                _add_moments(devs[k], lp[k], n_rows, weighted, first[k], m2[k])
    for k in range(n_components):
        f = 0 if shared else k
        # log |Lambda_mm| / 2 = half_log_dets + log_det_u (see `_factorise`)
        totals[2] -= weight_of_pattern[k] * (0.5 * mis.size * LOG_2PI_E - half_log_dets[f]
                                             - log_det_u[f])
        for a in range(mis.size):  # mis ascending: mis[b] <= mis[a], upper triangle
            for b in range(a + 1):
                m2[k, mis[b], mis[a]] += weight_of_pattern[k] * conds[f, a, b]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def pattern_statistics(xc, sample_weight, observed, starts, means, prec_chols, precisions,
                       log_weights):
    """E-step and statistics of rows with missing entries (module docstring).

    ``prec_chols`` (F, D, D) are the upper factors U, ``precisions`` U U^T.
    Rows whose entries are all missing take no part. Returns ``(nk (K,),
    first (K, D), m2 (K, D, D), loglik, weight, entropy)``: first sums
    r (x_hat - mu_k), m2 sums r ((x_hat - mu_k)(x_hat - mu_k)^T + C_k), both
    about each component's own mean, so that they stay exact wherever it
    lies; entropy sums r log r - r H_k (module docstring); all weighted by
    ``sample_weight``.

    Each pattern is factorised once. The rows of a pattern with at least
    `TILE_MIN_ROWS` rows go in tiles of their own (`_pattern_tiles`); those of
    the others fill shared tiles in turn (`_fill`), whose log-densities and
    moments then run over all their rows at once (`_tile_statistics`).
    """
    n_features = xc.shape[1]
    n_components = means.shape[0]
    n_factors = prec_chols.shape[0]
    chol, bts, conds, half_log_dets = _factor_buffers(n_factors, n_features)
    xt, devs, lp, work = _tile_buffers(n_components, n_features)
    tile = (xt, devs, lp, work, np.empty((n_features, TILE_ROWS)), np.empty(n_components),
            np.empty(n_components))
    pattern_tile = (*_tile_buffers(n_components, n_features), tile[4], tile[5], tile[6])
    slots = _slot_buffers(n_factors, n_components, n_features)
    log_det_u = _log_det_u(prec_chols)
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features, n_features))
    totals = np.zeros(3)  # log-likelihood, weight, entropy
    n_rows, n_slots = 0, 0
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        mis = np.flatnonzero(~observed[p])
        if obs.size == 0:
            continue
        _pattern_factors(precisions, log_det_u, obs, mis, chol, bts, conds, half_log_dets)
        if starts[p + 1] - starts[p] >= TILE_MIN_ROWS:
            _pattern_tiles(xc, sample_weight, starts[p], starts[p + 1], obs, mis, means,
                           prec_chols, bts, conds, half_log_dets, log_det_u, log_weights,
                           pattern_tile, nk, first, m2, totals)
            continue
        row = starts[p]
        while row < starts[p + 1]:
            if (n_rows == TILE_ROWS or slots.cond_start[n_slots] + n_factors * mis.size**2
                    > slots.conds.size):
                _tile_statistics(n_rows, n_slots, slots, prec_chols, tile, nk, first, m2,
                                 totals)
                n_rows, n_slots = 0, 0
            _add_slot(slots, n_slots, obs, mis, log_weights, conds, half_log_dets, log_det_u)
            count = min(TILE_ROWS - n_rows, starts[p + 1] - row)
            _fill(xc, row, count, n_rows, obs, mis, means, bts, xt, devs)
            slots.of_row[n_rows:n_rows + count] = n_slots
            slots.row_weight[n_rows:n_rows + count] = sample_weight[row:row + count]
            n_slots += 1
            n_rows += count
            row += count
    if n_rows:
        _tile_statistics(n_rows, n_slots, slots, prec_chols, tile, nk, first, m2, totals)
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i):
                m2[k, i, j] = m2[k, j, i]
    return nk, first, m2, totals[0], totals[1], totals[2]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def pattern_log_prob(xc, observed, starts, means, prec_chols, precisions, log_weights):
    """log w_k + log N(x_o; mu_ko, Sigma_k,oo) of every row, (n, K); a row with
    no observed entry gets ``log_weights``."""
    n_features = xc.shape[1]
    n_components = means.shape[0]
    chol, bts, conds, half_log_dets = _factor_buffers(prec_chols.shape[0], n_features)
    xt, devs, lp, work = _tile_buffers(n_components, n_features)
    log_det_u = _log_det_u(prec_chols)
    out = np.empty((xc.shape[0], n_components))
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        mis = np.flatnonzero(~observed[p])
        _pattern_factors(precisions, log_det_u, obs, mis, chol, bts, conds, half_log_dets)
        for start in range(starts[p], starts[p + 1], TILE_ROWS):
            n_rows = min(TILE_ROWS, starts[p + 1] - start)
            _tile(xc, start, n_rows, obs, mis, means, prec_chols, bts, half_log_dets,
                  log_weights, xt, devs, lp, work)
            for n in range(n_rows):
                for k in range(n_components):
                    out[start + n, k] = lp[k, n]
    return out


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def pattern_impute(xc, observed, starts, means, prec_chols, precisions, log_weights, uniforms,
                   normals):
    """Rows with their missing entries filled, (n, D).

    Without draws (``uniforms`` empty): sum_k p(k | x_o) (mu_km + Bt_k^T (x_o - mu_ko)).
    With them: component k drawn by the row's uniform from p(k | x_o), then
    x_m = mu_km + Bt_k^T (x_o - mu_ko) + chol(C_k) e_m for the row's standard
    normals e. A row with no observed entry gets p(k) = the weights.
    """
    n_features = xc.shape[1]
    n_components = means.shape[0]
    chol, bts, conds, half_log_dets = _factor_buffers(prec_chols.shape[0], n_features)
    xt, devs, lp, work = _tile_buffers(n_components, n_features)
    log_prob, resp = np.empty(n_components), np.empty(n_components)
    log_det_u = _log_det_u(prec_chols)
    shared = prec_chols.shape[0] == 1
    draw = uniforms.size > 0
    cond_chols = np.zeros_like(conds)
    out = xc.copy()
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        mis = np.flatnonzero(~observed[p])
        if mis.size == 0:
            continue
        _pattern_factors(precisions, log_det_u, obs, mis, chol, bts, conds, half_log_dets)
        if draw:
            cond_chols[:] = conds
            for f in range(prec_chols.shape[0]):
                _cholesky_in_place(cond_chols[f], mis.size)
        for start in range(starts[p], starts[p + 1], TILE_ROWS):
            n_rows = min(TILE_ROWS, starts[p + 1] - start)
            _tile(xc, start, n_rows, obs, mis, means, prec_chols, bts, half_log_dets,
                  log_weights, xt, devs, lp, work)
            for n in range(n_rows):
                row = start + n
                _row_responsibilities(lp, n, log_prob, resp)
                if draw:
                    k, cumulative = n_components - 1, 0.0
                    for c in range(n_components):
                        cumulative += resp[c]
                        if uniforms[row] < cumulative:
                            k = c
                            break
                    f = 0 if shared else k
                    for a in range(mis.size):
                        noise = 0.0
                        for b in range(a + 1):
                            noise += cond_chols[f, a, b] * normals[row, mis[b]]
                        out[row, mis[a]] = means[k, mis[a]] + devs[k, mis[a], n] + noise
                    continue
                for a in range(mis.size):
                    total = 0.0
                    for k in range(n_components):
                        total += resp[k] * (means[k, mis[a]] + devs[k, mis[a], n])
                    out[row, mis[a]] = total
    return out


# ---------------------------------------------------------------- patterns

# Multiplier of Fibonacci hashing (2^64 / golden ratio): the pattern's bits
# times it, top bits as the slot, spread nearby patterns over the table.
_FIBONACCI = np.uint64(11400714819323198485)


@njit(cache=True, nogil=True)
def _pattern_hash(missing, row):
    """Row ``row``'s pattern as bits (feature d: bit d mod 64), one 64-bit word."""
    bits = np.uint64(0)
    for d in range(missing.shape[1]):
        bits ^= np.uint64(missing[row, d]) << np.uint64(d % 64)
    return bits


@njit(cache=True, nogil=True)
def _same_pattern(missing, a, b):
    for d in range(missing.shape[1]):
        if missing[a, d] != missing[b, d]:
            return False
    return True


@njit(cache=True, nogil=True)
def group_rows(missing):
    """Rows grouped by missingness pattern, in O(n D) (a hash table of the patterns).

    ``missing`` (n, D) bool. Returns ``(order, observed, starts)``: rows
    ``order[starts[p]:starts[p + 1]]`` are those of pattern p, observed on
    ``observed[p]`` (P, D); patterns in the order they first occur, and the
    rows of each in theirs.
    """
    n_rows, n_features = missing.shape
    bits = 4
    while (1 << bits) < 2 * n_rows:
        bits += 1
    shift = np.uint64(64 - bits)
    last_slot = np.uint64((1 << bits) - 1)
    table = np.full(1 << bits, -1, dtype=np.int64)  # pattern ids
    pattern = np.empty(n_rows, dtype=np.int64)
    first = np.empty(n_rows, dtype=np.int64)
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    n_patterns = 0
    for row in range(n_rows):
        slot = (_pattern_hash(missing, row) * _FIBONACCI) >> shift
        while True:
            p = table[slot]
            if p < 0:
                p = n_patterns
                table[slot] = p
                first[p] = row
                n_patterns += 1
                break
            if _same_pattern(missing, first[p], row):
                break
            slot = (slot + np.uint64(1)) & last_slot
        pattern[row] = p
        counts[p + 1] += 1
    starts = np.cumsum(counts[:n_patterns + 1])
    fill = starts[:n_patterns].copy()
    order = np.empty(n_rows, dtype=np.int64)
    for row in range(n_rows):
        order[fill[pattern[row]]] = row
        fill[pattern[row]] += 1
    observed = np.empty((n_patterns, n_features), dtype=np.bool_)
    for p in range(n_patterns):
        for d in range(n_features):
            observed[p, d] = not missing[first[p], d]
    return order, observed, starts


# ---------------------------------------------------------------- diag, spherical
# Rows as columns in blocks of `_fused._block_rows` rows, as the complete
# rows' sweep takes them; a missing entry is a NaN whose terms a select (not a
# branch) sets to 0, so that the loops over the rows vectorise whatever the
# patterns. Measured at D 16, K 8 (CPU time of a block of 125,000 rows, on a
# loaded machine): 1.2-1.3x `_fused`'s sweep of as many complete rows, with
# 5 % or 20 % of the entries missing at random or blocks of columns missing.
# The responsibilities are `_fused`'s.


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _gather_rows(x, sample_weight, start, n_rows, centre, out, weights):
    """out[d, n] = x[start + n, d] - centre[d] (NaN where missing): rows as columns
    (D, block); ``weights`` (block,) the rows' weights (1 if ``sample_weight`` is
    empty), 0 for a row with nothing observed, which so takes no part."""
    n_features = x.shape[1]
    for n in range(n_rows):
        n_observed = 0
        for d in range(n_features):
            value = x[start + n, d] - centre[d]
            out[d, n] = value
            n_observed += value == value
        weight = sample_weight[start + n] if sample_weight.size else 1.0
        weights[n] = weight if n_observed else 0.0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _masked_log_prob(xt, n_rows, means, half_log_2pi_var, precisions, log_weights, lp):
    """(1) for ``diag``: lp[k, n] = log w_k - 1/2 sum over observed d of
    log(2 pi sigma_kd^2) + (x_dn - mu_kd)^2 / sigma_kd^2; a NaN x_dn adds 0
    (a select, not a branch: the loop over the rows vectorises)."""
    n_components, n_features = means.shape
    for k in range(n_components):
        row = lp[k]
        for n in range(n_rows):
            row[n] = 0.0
        for d in range(n_features):
            mean, constant = means[k, d], half_log_2pi_var[k, d]
            half = 0.5 * precisions[k, d]
            values = xt[d]
            for n in range(n_rows):
                dev = values[n] - mean
                term = constant + half * dev * dev
                row[n] += term if dev == dev else 0.0
        for n in range(n_rows):
            row[n] = log_weights[k] - row[n]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _masked_moments(xt, n_rows, means, resp, first, m2, missed):
    """Over observed entries first_kd += sum_n r_nk (x_dn - mu_kd) and
    m2_kd += sum_n r_nk (x_dn - mu_kd)^2; over missing ones missed_kd += sum_n r_nk;
    ``resp`` (K, block) the weighted responsibilities."""
    n_components, n_features = means.shape
    for k in range(n_components):
        r = resp[k]
        for d in range(n_features):
            mean = means[k, d]
            values = xt[d]
            total, squares, missing = 0.0, 0.0, 0.0
            for n in range(n_rows):
                dev = values[n] - mean
                seen = dev == dev
                rd = r[n] * dev if seen else 0.0
                total += rd
                squares += rd * dev if seen else 0.0
                missing += 0.0 if seen else r[n]
            first[k, d] += total
            m2[k, d] += squares
            missed[k, d] += missing


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def diag_statistics(x, sample_weight, centre, means, variances, log_weights, with_entropy):
    """`pattern_statistics` for ``diag`` and ``spherical`` variances (K, D).

    ``x`` holds the rows uncentred, ``sample_weight`` their weights (or is
    empty: weights 1); ``means`` are relative to ``centre``. The
    conditional mean of a missing entry is the component's mean and its
    conditional variance the component's variance: m2 (K, D) sums
    r (x_d - mu_kd)^2 over observed entries and r sigma_kd^2 over missing ones;
    with ``with_entropy``, entropy sums r log r less r H_k, H_k = sum over
    missing d of log(2 pi e sigma_kd^2) / 2 (else it is 0). O(K D) per row.
    """
    n_components, n_features = means.shape
    half_log_2pi_var = 0.5 * np.log(2 * np.pi * variances)
    precisions = 1.0 / variances
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features))
    missed = np.zeros((n_components, n_features))  # sum r over the missing entries
    totals = np.zeros(3)  # log-likelihood, weight, sum r log r
    block = _fused._block_rows(n_components, n_features)
    xt = np.empty((n_features, block + _fused._PAD))
    lp = np.empty((n_components, block + _fused._PAD))
    work = np.empty((3, block + _fused._PAD))
    weights = np.empty(block)
    for start in range(0, x.shape[0], block):
        n_rows = min(block, x.shape[0] - start)
        _gather_rows(x, sample_weight, start, n_rows, centre, xt, weights)
        _masked_log_prob(xt, n_rows, means, half_log_2pi_var, precisions, log_weights, lp)
        _fused._responsibilities(lp, n_rows, weights, 0, with_entropy, nk, totals, work)
        _masked_moments(xt, n_rows, means, lp, first, m2, missed)
    entropy = totals[2]
    for k in range(n_components):
        for d in range(n_features):
            m2[k, d] += missed[k, d] * variances[k, d]
            entropy -= missed[k, d] * (half_log_2pi_var[k, d] + 0.5)
    return nk, first, m2, totals[0], totals[1], entropy if with_entropy else 0.0


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def diag_log_prob(x, centre, means, variances, log_weights):
    """`pattern_log_prob` for ``diag`` and ``spherical`` variances (K, D), (n, K), rows
    uncentred and in their order."""
    n_components, n_features = means.shape
    half_log_2pi_var = 0.5 * np.log(2 * np.pi * variances)
    precisions = 1.0 / variances
    block = _fused._block_rows(n_components, n_features)
    xt = np.empty((n_features, block + _fused._PAD))
    lp = np.empty((n_components, block + _fused._PAD))
    weights = np.empty(block)
    out = np.empty((x.shape[0], n_components))
    for start in range(0, x.shape[0], block):
        n_rows = min(block, x.shape[0] - start)
        _gather_rows(x, weights[:0], start, n_rows, centre, xt, weights)
        _masked_log_prob(xt, n_rows, means, half_log_2pi_var, precisions, log_weights, lp)
        _fused._copy_out(lp, n_rows, start, out)
    return out
