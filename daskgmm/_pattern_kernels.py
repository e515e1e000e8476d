"""Numba kernels for rows with missing entries, by missingness pattern.

Imported lazily by ``_missing`` (numba's compilation costs seconds, once per
machine thanks to ``cache=True``). The kernels of ``full`` and ``tied`` take
the rows of a block in place, uncentred (float32 or float64), with their
grouping by pattern (`group_rows`): rows ``order[starts[p]:starts[p + 1]]``
are those of pattern p, ``observed[p]`` (D,) its observed features. Each
row is centred in float64 on a point near the data (see ``_missing``).

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
mean (d_m = Bt^T d_o = -C (Lambda_mo d_o)),

    d_o^T Sigma_oo^-1 d_o = d^T Lambda d = |U^T d|^2,
    log |Sigma_oo| = log |Lambda_mm| - log |Lambda|.

The statistics' ``entropy`` (the variational bound's, see ``_missing`` (4))
is sum r log r less sum r H_k, H_k = (|m| log(2 pi e) - log |Lambda_k,mm|) / 2
the entropy of x_m | x_o, k; the factorisation gives log |Lambda_mm|.

Cost. `_factorise` does, once per pattern, a Cholesky factorisation of
Lambda_mm and C from its inverse factor, O(|m|^3) per precision, for
`FACTOR_BATCH` patterns with as many missing features and their F precisions
side by side (lanes). Each row is then completed, d_m = -C (Lambda_mo d_o), O(K
(D |m| + |m|^2)), row by row, Lambda_mo d_o as dot products of whole rows of
Lambda with d_o and 0 at m (`_fill`); those of a pattern of at least
`TILE_MIN_ROWS` rows, in a statistics pass, in loops over the rows
(`_fill_columns`; forming Bt once per pattern instead, O(F |o| |m|^2), took
1.01x the time). Their log-densities (a BLAS product U^T d) and moments, O(K
D^2) per row as for a complete row, run in tiles of `TILE_ROWS` rows of any
patterns, rows as columns, so that the loops over rows vectorise (`_sweep`).
The rows are first copied, in ``x``'s type, in the order the sweep takes them
(`_rows_in_order`): read in place in pattern order, rows scattered over the
block, each row's cache miss stalled its fill (`pattern_statistics` on
bench_missing's rows, D 16, K 8, thread CPU time, the two in one process
interleaved, best of 11, load 1.0: with the copy 0.86-0.91x the time without it
at 20 % missing at random, 0.96x at 5 % for ``full``; 0.95x and 0.90x for
``tied``). A block of n rows in P patterns costs O(P F |m|^3 + n K (D |m| +
D^2)): the per-pattern term is small while rows miss few entries, whatever the
number of patterns. Measured at D 16, K 8 (thread CPU time of
`pattern_statistics` on bench_missing's rows with NaN in a block of 125,000
rows, after two EM iterations, against the complete rows' sweep of the whole
block, one process pinned to a core, median of 15-25 interleaved runs, load
average 0.5-0.6): 20 % missing at random (121,000 rows, about 14,000 patterns)
2.4x (2.8x with the row fills' loops over the observed features with the
components as lanes, the log-densities' over the triangle of U, Bt and tiles of
128 rows); 5 % (70,000 rows) 0.82x (0.89x). A block read for the first time
costs more than one just read: sweeping eight blocks in turn, the statistics of
a block with NaN took 1.10x their time on one block over and over (the complete
rows' sweep: 1.0x), as these kernels read the block's rows three times (finding
NaN, copying them, sweeping the copy) where the complete sweep reads them once.
``diag`` and ``spherical`` need no patterns (`diag_statistics`).
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
# (blocks of columns), 1.6 against 3.0 us with 5 % missing at random. With
# `SLOT_CONDS` 2^16, 256 rows took 0.94x the time of 128 with 2^14 (CPU time of
# `pattern_statistics` at 20 % missing at random, median of 21 paired runs,
# load 1.3; 0.96x with two blocks at once on the two cores), 512 0.96-1.0x.
TILE_ROWS = 256
# Patterns with at least this many rows are completed, in a statistics pass, in
# loops over their rows (`_fill_columns`); the rows of the others row by row
# (`_fill`; bench_missing's blocks of columns, two patterns, took 1.6x as long
# completed row by row). Rows of any patterns fill the tiles in turn. Measured
# (thread CPU time of `pattern_statistics`, full, D 16, K 8, 125,000 rows, 20 %
# missing at random, pinned, median of 21 paired runs, load 1.0), against 16:
# 8 within noise (0.99x), 4 1.04x, 2 1.13x, 1 1.34x.
TILE_MIN_ROWS = 16
# Patterns factorised together (`_factorise`), as many lanes per precision: loops
# over F lanes alone (F = K 8 at bench_missing's D 16) are too short to
# vectorise. Measured on its 20 % missing at random (full, CPU time of the
# factorisations of the 11,900 patterns of under 8 rows in 125,000 rows, best
# of 7, loaded machine): 1.4 us per pattern in batches of 32, 3.3 one by one.
FACTOR_BATCH = 32
# Room for the conditional covariances of a tile's patterns in
# `_sweep`, in float64 (F |m|^2 per pattern; at least one
# pattern's): a tile is full at `TILE_ROWS` rows or when the next pattern's
# would not fit (at D 16, K 8, 20 % missing at random, |m| about 3: 72 each, but
# a pattern of one row missing 6 features takes 288: 2^14 cut such tiles at 56
# rows; 2^16 with 128 rows: 0.95-0.97x the time, measured as `TILE_ROWS`).
SLOT_CONDS = 2**16

# LLVM may reorder sums and fuse multiply-adds (vectorised loops), but keeps
# IEEE NaN and infinity semantics; with NumPy's error model (as ``_fused``'s) a
# division by zero gives them too, not an exception.
_JIT = dict(cache=True, nogil=True, error_model="numpy",
            fastmath={"reassoc", "contract", "arcp"})


@njit(**_JIT)
def _cholesky_lanes(a, n, lanes, inverse_diagonal, half_log_det):
    """Lower Cholesky factors of ``a[:n, :n, f]`` for the lanes f < ``lanes``
    (lower triangles read), in place: ``a`` (D, D, L) with the factors
    innermost (lanes), each step a loop over the lanes.
    ``inverse_diagonal[j, f]`` gets 1 / L[j, j, f] and ``half_log_det[f]``
    sum_j log L[j, j, f].

    Elements are indexed, not taken as views of lanes: each view costs numba
    reference counting (with views, the per-pattern work of bench_missing's
    20 % random rows took 1.4-1.7x as long; the kernels below do the same)."""
    for f in range(lanes):
        half_log_det[f] = 0.0
    for j in range(n):
        for t in range(j):
            for f in range(lanes):
                a[j, j, f] -= a[j, t, f] * a[j, t, f]
        for f in range(lanes):
            if a[j, j, f] <= 0.0:
                raise ValueError("a precision matrix is not positive definite")
        for f in range(lanes):
            root = np.sqrt(a[j, j, f])
            a[j, j, f] = root
            inverse_diagonal[j, f] = 1.0 / root
            half_log_det[f] += np.log(root)
        for i in range(j + 1, n):
            for t in range(j):
                for f in range(lanes):
                    a[i, j, f] -= a[i, t, f] * a[j, t, f]
            for f in range(lanes):
                a[i, j, f] *= inverse_diagonal[j, f]


class _Factors(NamedTuple):
    """Factorisations of patterns (`_factorise`) for each of the F precisions,
    lanes (factors) innermost: C (|m|, |m|, lanes) in ``conds``, log
    |Lambda_mm| / 2 (lanes,) in ``half_log_dets``; the rest is scratch."""

    chol: np.ndarray
    inverse_chol: np.ndarray
    inverse_diagonal: np.ndarray
    conds: np.ndarray
    half_log_dets: np.ndarray


@njit(**_JIT)
def _factor_buffers(n_factors, n_features):
    lanes = n_factors + _fused._PAD  # no power-of-two stride between elements (cache sets)
    square = (n_features, n_features, lanes)
    return _Factors(np.zeros(square), np.zeros(square), np.zeros((n_features, lanes)),
                    np.zeros(square), np.zeros(lanes))


@njit(**_JIT)
def _factorise(precisions, missing, n_patterns, n_mis, factors):
    """For ``n_patterns`` patterns of ``n_mis`` missing features each (the rows
    of ``missing``) and every precision (``precisions`` (D, D, F), lanes
    innermost): C = Lambda_mm^-1, exactly symmetric, and log |Lambda_mm| / 2,
    into ``factors`` (lane j F + f for pattern j, precision f): C = L^-T L^-1
    from the Cholesky factor L of Lambda_mm and its inverse (by forward
    substitution), O(|m|^3) per pattern and precision, every step over all
    the lanes at once (`FACTOR_BATCH`)."""
    n_factors = precisions.shape[2]
    lanes = n_patterns * n_factors
    chol, inverse_chol = factors.chol, factors.inverse_chol
    inverse_diagonal, conds = factors.inverse_diagonal, factors.conds
    for j in range(n_patterns):
        for a in range(n_mis):
            for b in range(a + 1):
                for f in range(n_factors):
                    chol[a, b, j * n_factors + f] = precisions[missing[j, a], missing[j, b], f]
    _cholesky_lanes(chol, n_mis, lanes, inverse_diagonal, factors.half_log_dets)
    for b in range(n_mis):  # L^-1, lower
        for f in range(lanes):
            inverse_chol[b, b, f] = inverse_diagonal[b, f]
        for a in range(b + 1, n_mis):
            for f in range(lanes):
                inverse_chol[a, b, f] = 0.0
            for t in range(b, a):
                for f in range(lanes):
                    inverse_chol[a, b, f] -= chol[a, t, f] * inverse_chol[t, b, f]
            for f in range(lanes):
                inverse_chol[a, b, f] *= inverse_diagonal[a, f]
    for a in range(n_mis):  # C[a, b] = sum_t (L^-1)[t, a] (L^-1)[t, b], t >= a >= b
        for b in range(a + 1):
            for f in range(lanes):
                conds[a, b, f] = 0.0
            for t in range(a, n_mis):
                for f in range(lanes):
                    conds[a, b, f] += inverse_chol[t, a, f] * inverse_chol[t, b, f]
            for f in range(lanes):
                conds[b, a, f] = conds[a, b, f]


@njit(cache=True, nogil=True)
def _by_missing_count(observed):
    """The patterns ordered by their number of missing features (stable, a
    counting sort), and those numbers (P,)."""
    n_patterns, n_features = observed.shape
    n_missing = np.zeros(n_patterns, dtype=np.int64)
    counts = np.zeros(n_features + 2, dtype=np.int64)
    for p in range(n_patterns):
        for d in range(n_features):
            n_missing[p] += not observed[p, d]
        counts[n_missing[p] + 1] += 1
    for m in range(n_features + 1):
        counts[m + 1] += counts[m]
    patterns = np.empty(n_patterns, dtype=np.int64)
    for p in range(n_patterns):
        patterns[counts[n_missing[p]]] = p
        counts[n_missing[p]] += 1
    return patterns, n_missing


@njit(**_JIT)
def _precision_lanes(prec_chols):
    """Lambda = U U^T of every factor U (F, D, D), as (D, D, F): lanes innermost."""
    n_factors, n_features = prec_chols.shape[0], prec_chols.shape[1]
    out = np.zeros((n_features, n_features, n_factors))
    for f in range(n_factors):
        for i in range(n_features):
            for j in range(n_features):
                total = 0.0
                for t in range(max(i, j), n_features):
                    total += prec_chols[f, i, t] * prec_chols[f, j, t]
                out[i, j, f] = total
    return out


@njit(**_JIT)
def _log_det_u(prec_chols):
    """sum log diag(U) = log |Lambda| / 2 of every factor (F,)."""
    out = np.zeros(prec_chols.shape[0])
    for f in range(prec_chols.shape[0]):
        for i in range(prec_chols.shape[1]):
            out[f] += np.log(prec_chols[f, i, i])
    return out


class _Tile(NamedTuple):
    """Up to `TILE_ROWS` rows of one or more patterns, rows as columns, and the
    patterns (slots) they come from.

    Per row: ``rows`` its index in ``x``, ``weight``, ``devs`` (K, D, tile) its
    deviations from each component's mean completed by the conditional means,
    ``lp`` (K, tile) its log-densities (then responsibilities). Per slot s (its rows
    ``slot_start[s]:slot_start[s + 1]``): its log constants (K,), entropies H
    (F,), missing features (their number, then the features) and conditional
    covariances C (F |m|^2, in ``conds`` from ``cond_start[s]``, lanes
    innermost). ``work`` (3, tile), ``weighted`` and ``white`` (D, tile),
    ``values`` (D,), ``row_devs`` (K, D), ``products`` and ``completions`` (D, K)
    are scratch.
    """

    rows: np.ndarray
    weight: np.ndarray
    values: np.ndarray
    row_devs: np.ndarray
    products: np.ndarray
    completions: np.ndarray
    devs: np.ndarray
    lp: np.ndarray
    work: np.ndarray
    weighted: np.ndarray
    slot_start: np.ndarray
    constant: np.ndarray
    entropy: np.ndarray
    n_missing: np.ndarray
    missing: np.ndarray
    cond_start: np.ndarray
    conds: np.ndarray
    white: np.ndarray


@njit(**_JIT)
def _tile_buffers(n_factors, n_components, n_features):
    columns = TILE_ROWS + _fused._PAD  # no power-of-two stride between rows (cache sets)
    return _Tile(np.zeros(TILE_ROWS, dtype=np.int64), np.zeros(TILE_ROWS),
                 np.zeros(n_features), np.zeros((n_components, n_features)),
                 np.zeros((n_features, n_components)), np.zeros((n_features, n_components)),
                 np.zeros((n_components, n_features, columns)),
                 np.zeros((n_components, columns)), np.zeros((3, columns)),
                 np.zeros((n_features, columns)), np.zeros(TILE_ROWS + 1, dtype=np.int64),
                 np.zeros((TILE_ROWS, n_components)), np.zeros((TILE_ROWS, n_factors)),
                 np.zeros(TILE_ROWS, dtype=np.int64),
                 np.zeros((TILE_ROWS, n_features), dtype=np.int64),
                 np.zeros(TILE_ROWS + 1, dtype=np.int64),
                 np.zeros(max(SLOT_CONDS, n_factors * n_features * n_features)),
                 np.zeros((n_features, columns)))


@njit(**_JIT)
def _add_slot(tile, s, obs, mis, log_weights, batch, at_batch, log_det_u):
    """The pattern (obs, mis) as slot ``s``: its factorisation is the lanes
    ``at_batch:at_batch + F`` of ``batch`` (`_factorise`)."""
    n_mis = mis.size
    lanes = log_det_u.size
    shared = lanes == 1
    half_log_dets = batch.half_log_dets
    for k in range(log_weights.size):
        f = 0 if shared else k
        # log |Sigma_oo| / 2 = log |Lambda_mm| / 2 - log |Lambda| / 2 (module docstring)
        tile.constant[s, k] = (log_weights[k] - (half_log_dets[at_batch + f] - log_det_u[f])
                               - 0.5 * obs.size * LOG_2PI)
    for f in range(lanes):
        tile.entropy[s, f] = 0.5 * n_mis * LOG_2PI_E - half_log_dets[at_batch + f]
    tile.n_missing[s] = n_mis
    for a in range(n_mis):
        tile.missing[s, a] = mis[a]
    at = tile.cond_start[s]
    conds = batch.conds
    for a in range(n_mis):
        for b in range(n_mis):
            for f in range(lanes):
                tile.conds[at + f] = conds[a, b, at_batch + f]
            at += lanes
    tile.cond_start[s + 1] = at


@njit(**_JIT)
def _fill(rows, read, order, row, count, offset, sample_weight, centre, mis, means,
          precisions, conds, at, tile):
    """The rows ``order[row:row + count]`` of ``x`` (one pattern), read from
    ``rows[read:read + count]`` (`_rows_in_order`), into the columns
    ``offset:offset + count`` of the tile: their weights (1 if ``sample_weight``
    is empty) and, for each component k, their deviations completed by the
    conditional means, d (``devs[k]``): d_o = x_o - mu_o, centred in float64,
    and d_m = -C (Lambda_mo d_o). Row by row: Lambda_mo d_o as dot products of
    whole rows of Lambda (``precisions`` (F, D, D)) with d_o and 0 at m, which
    vectorise over the D features (loops over the observed features with the K
    components as lanes took 1.04x the time of `pattern_statistics` at 20 %
    missing at random, bench_missing's rows, D 16, K 8, median of 41 paired
    runs); then C times them with the components as lanes (a dot product per
    component: 1.03x). C is the pattern's, ``conds[:, :, at:at + F]``
    (`_factorise`, lanes innermost), ``means`` (K, D) relative to ``centre``."""
    shared = precisions.shape[0] == 1
    n_components, n_features = means.shape
    devs, values, row_devs = tile.devs, tile.values, tile.row_devs
    products, completions = tile.products, tile.completions
    for n in range(count):
        source = order[row + n]
        column = offset + n
        tile.rows[column] = source
        tile.weight[column] = sample_weight[source] if sample_weight.size else 1.0
        for d in range(n_features):
            values[d] = np.float64(rows[read + n, d]) - centre[d]
        for k in range(n_components):
            for d in range(n_features):
                row_devs[k, d] = values[d] - means[k, d]
            for a in range(mis.size):
                row_devs[k, mis[a]] = 0.0
        for a in range(mis.size):  # Lambda_mo d_o
            missing = mis[a]
            for k in range(n_components):
                f = 0 if shared else k
                total = 0.0
                for d in range(n_features):
                    total += precisions[f, missing, d] * row_devs[k, d]
                products[a, k] = total
        for a in range(mis.size):  # d_m = -C (Lambda_mo d_o), the components as lanes
            completed = completions[a]
            for k in range(n_components):
                completed[k] = 0.0
            for b in range(mis.size):
                if shared:
                    coef = conds[a, b, at]
                    for k in range(n_components):
                        completed[k] -= coef * products[b, k]
                else:
                    for k in range(n_components):
                        completed[k] -= conds[a, b, at + k] * products[b, k]
            for k in range(n_components):
                row_devs[k, mis[a]] = completed[k]
        for k in range(n_components):
            for d in range(n_features):
                devs[k, d, column] = row_devs[k, d]


@njit(**_JIT)
def _fill_columns(rows, read, order, row, count, offset, sample_weight, centre, obs, mis,
                  means, precisions, conds, at, tile):
    """As `_fill`, for a pattern of many rows: d_m = -C (Lambda_mo d_o) in loops
    over the rows (rows as columns, vectorised), each component in turn
    (arguments as `_fill`; Lambda_mo d_o in ``white``, free until
    `_log_densities`).

    The loops run over views of the columns ``offset:offset + count`` from 0: an
    index that starts at a run-time offset may be negative for all LLVM knows,
    and numba's wraparound of negative indices then keeps the loops scalar
    (measured on bench_missing's block columns: 3-4x the time).
    """
    shared = precisions.shape[0] == 1
    xt, devs, products = tile.weighted, tile.devs, tile.white  # ``weighted``: as ``white``
    stop = offset + count
    for n in range(count):
        source = order[row + n]
        tile.rows[offset + n] = source
        tile.weight[offset + n] = sample_weight[source] if sample_weight.size else 1.0
        for i in obs:
            xt[i, offset + n] = np.float64(rows[read + n, i]) - centre[i]
    for k in range(means.shape[0]):
        f = 0 if shared else k
        dev = devs[k]
        for i in obs:
            mean = means[k, i]
            observed = xt[i, offset:stop]
            completed = dev[i, offset:stop]
            for n in range(count):
                completed[n] = observed[n] - mean
        for a in range(mis.size):  # Lambda_mo d_o
            product = products[a, offset:stop]
            for n in range(count):
                product[n] = 0.0
            for i in obs:
                coef = precisions[f, mis[a], i]
                observed = dev[i, offset:stop]
                for n in range(count):
                    product[n] += coef * observed[n]
        for a in range(mis.size):  # d_m = -C (Lambda_mo d_o)
            completed = dev[mis[a], offset:stop]
            for n in range(count):
                completed[n] = 0.0
            for b in range(mis.size):
                coef = conds[a, b, at + f]
                product = products[b, offset:stop]
                for n in range(count):
                    completed[n] -= coef * product[n]


@njit(**_JIT)
def _log_densities(tile, n_rows, n_slots, factors_t):
    """lp[k, n] = log w_k + log N(x_o; mu_ko, Sigma_k,oo) of the tile's rows:
    their slot's constant less |U_k^T d|^2 / 2, U_k^T d a BLAS product of
    ``factors_t`` (F, D, D), the transposed upper factors U^T, with the whole
    tile (products of the triangle over the rows took 1.04x the time of
    `pattern_statistics` at 20 % missing at random, bench_missing's rows,
    D 16, K 8, median of 41 paired runs)."""
    devs, lp, white = tile.devs, tile.lp, tile.white
    n_features = devs.shape[1]
    shared = factors_t.shape[0] == 1
    for k in range(devs.shape[0]):
        np.dot(factors_t[0 if shared else k], devs[k], white)
        log_prob = lp[k]
        for n in range(n_rows):
            log_prob[n] = 0.0
        for j in range(n_features):
            row = white[j]
            for n in range(n_rows):
                log_prob[n] += row[n] * row[n]
        for s in range(n_slots):
            constant = tile.constant[s, k]
            for n in range(tile.slot_start[s], tile.slot_start[s + 1]):
                log_prob[n] = constant - 0.5 * log_prob[n]


@njit(**_JIT)
def _tile_statistics(tile, n_rows, n_slots, n_factors, with_entropy, nk, first, m2, totals):
    """E-step and statistics of a tile whose log-densities are in ``lp``, added to
    ``nk``, ``first`` (sum r d), the upper triangle of ``m2`` (sum r d d^T) and
    ``totals`` (log-likelihood, weight, sum r log r less sum r H); each slot's C
    and H weighted by the sums of its rows' responsibilities."""
    lp, devs, weighted = tile.lp, tile.devs, tile.weighted
    n_components = lp.shape[0]
    _fused._responsibilities(lp, n_rows, tile.weight, 0, with_entropy, nk, totals, tile.work)
    for k in range(n_components):
        dev, r = devs[k], lp[k]
        total_r = 0.0
        for n in range(n_rows):
            total_r += r[n]
        if total_r == 0.0:
            continue
        for i in range(dev.shape[0]):
            values, products = dev[i], weighted[i]
            total = 0.0
            for n in range(n_rows):
                products[n] = r[n] * values[n]
                total += products[n]
            first[k, i] += total
        _fused._add_upper_products(weighted, dev, n_rows, m2[k])
    shared = n_factors == 1
    for s in range(n_slots):
        n_mis = tile.n_missing[s]
        missing = tile.missing[s]
        for k in range(n_components):
            f = 0 if shared else k
            w = 0.0
            for n in range(tile.slot_start[s], tile.slot_start[s + 1]):
                w += lp[k, n]
            if with_entropy:
                totals[2] -= w * tile.entropy[s, f]
            at = tile.cond_start[s] + f
            for a in range(n_mis):  # missing ascending: the upper triangle
                for b in range(a + 1):
                    m2[k, missing[b], missing[a]] += w * tile.conds[at + (a * n_mis + b)
                                                                   * n_factors]


@njit(**_JIT)
def _impute_tile(tile, n_rows, n_slots, n_factors, means, draws, scratch, out):
    """The missing entries of a tile's rows (whose log-densities are in ``lp``)
    into ``out`` (relative to the centre), as `pattern_impute` says; ``scratch``
    (`_Factors`) holds the Cholesky factors of the slots' C for draws."""
    uniforms, normals = draws
    chol = scratch.chol
    n_components = means.shape[0]
    log_prob, resp = np.empty(n_components), np.empty(n_components)
    draw = uniforms.size > 0
    shared = n_factors == 1
    for s in range(n_slots):
        n_mis = tile.n_missing[s]
        missing = tile.missing[s]
        if draw:
            at = tile.cond_start[s]
            for a in range(n_mis):
                for b in range(n_mis):
                    for f in range(n_factors):
                        chol[a, b, f] = tile.conds[at]
                        at += 1
            _cholesky_lanes(chol, n_mis, n_factors, scratch.inverse_diagonal,
                            scratch.half_log_dets)
        for n in range(tile.slot_start[s], tile.slot_start[s + 1]):
            row = tile.rows[n]
            for k in range(n_components):
                log_prob[k] = tile.lp[k, n]
            _responsibilities(log_prob, resp)
            if draw:
                k, cumulative = n_components - 1, 0.0
                for c in range(n_components):
                    cumulative += resp[c]
                    if uniforms[row] < cumulative:
                        k = c
                        break
                f = 0 if shared else k
                for a in range(n_mis):
                    noise = 0.0
                    for b in range(a + 1):
                        noise += chol[a, b, f] * normals[row, missing[b]]
                    out[row, missing[a]] = (means[k, missing[a]] + tile.devs[k, missing[a], n]
                                            + noise)
                continue
            for a in range(n_mis):
                total = 0.0
                for k in range(n_components):
                    total += resp[k] * (means[k, missing[a]] + tile.devs[k, missing[a], n])
                out[row, missing[a]] = total


@njit(**_JIT)
def _responsibilities(log_prob, resp):
    """Normalised responsibilities of one row into ``resp``."""
    top = log_prob.max()
    total = 0.0
    for k in range(log_prob.size):
        shifted = log_prob[k] - top
        resp[k] = np.exp(shifted) if shifted > LOG_RESP_FLOOR else 0.0
        total += resp[k]
    for k in range(log_prob.size):
        resp[k] /= total


# What `_sweep` does with each tile.
_STATISTICS, _LOG_PROB, _IMPUTE = 0, 1, 2


@njit(**_JIT)
def _finish(task, tile, n_rows, n_slots, factors_t, means, with_entropy, draws, sums, out,
            scratch):
    """A filled tile's log-densities (``factors_t`` the factors U^T), then ``task``
    (`_sweep`)."""
    _log_densities(tile, n_rows, n_slots, factors_t)
    n_factors = factors_t.shape[0]
    if task == _STATISTICS:
        nk, first, m2, totals = sums
        _tile_statistics(tile, n_rows, n_slots, n_factors, with_entropy, nk, first, m2, totals)
    elif task == _LOG_PROB:
        for n in range(n_rows):
            for k in range(means.shape[0]):
                out[tile.rows[n], k] = tile.lp[k, n]
    else:
        _impute_tile(tile, n_rows, n_slots, n_factors, means, draws, scratch, out)


@njit(**_JIT)
def _rows_in_order(x, order, patterns, starts):
    """The rows of ``x`` that `_sweep` takes, in its order (the patterns
    ``patterns``, the rows ``order[starts[p]:starts[p + 1]]`` of each),
    contiguous and in ``x``'s type: copied in one pass whose loads do not wait
    for each other, so that the cache misses of rows scattered over ``x``
    overlap, and the fills then read in sequence."""
    out = np.empty((order.size, x.shape[1]), dtype=x.dtype)
    at = 0
    for p in patterns:
        for r in range(starts[p], starts[p + 1]):
            source = order[r]
            for d in range(x.shape[1]):
                out[at, d] = x[source, d]
            at += 1
    return out


@njit(**_JIT)
def _split_features(observed, features):
    """(observed features, missing features) of a pattern, ascending: views of
    ``features``, which they fill (no allocation per pattern)."""
    n_obs = 0
    for d in range(observed.size):
        n_obs += observed[d]
    at_obs, at_mis = 0, n_obs
    for d in range(observed.size):
        if observed[d]:
            features[at_obs] = d
            at_obs += 1
        else:
            features[at_mis] = d
            at_mis += 1
    return features[:n_obs], features[n_obs:]


@njit(**_JIT)
def _sweep(task, x, order, sample_weight, observed, starts, centre, means, prec_chols,
           log_weights, with_entropy, draws, sums, out):
    """The rows ``order`` of ``x`` (grouped by pattern: ``observed``, ``starts``)
    in tiles, each pattern factorised once; then, per tile, ``task``:
    `_STATISTICS` adds to ``sums`` (nk, first, m2, totals; rows with no
    observed entry take no part), `_LOG_PROB` writes the log-densities of row
    ``r`` into ``out[r]`` (K,), `_IMPUTE` its missing entries into ``out[r]``.

    The patterns' rows fill the tiles in turn; for `_STATISTICS`, those of a
    pattern with at least `TILE_MIN_ROWS` rows are completed by
    `_fill_columns`, the others by `_fill`. A tile is full at `TILE_ROWS`
    rows or when the next pattern's conditional covariances would not fit in
    ``conds``.
    """
    n_features = x.shape[1]
    n_factors = prec_chols.shape[0]
    precisions = _precision_lanes(prec_chols)
    precision_rows = np.ascontiguousarray(precisions.transpose(2, 0, 1))  # (F, D, D)
    factors_t = np.ascontiguousarray(prec_chols.transpose(0, 2, 1))
    log_det_u = _log_det_u(prec_chols)
    batch = _factor_buffers(FACTOR_BATCH * n_factors, n_features)
    # each pattern's observed features, then its missing ones (`_split_features`)
    batch_features = np.empty((FACTOR_BATCH, n_features), dtype=np.int64)
    tile = _tile_buffers(n_factors, means.shape[0], n_features)
    scratch = _factor_buffers(n_factors, n_features)  # C's Cholesky factors (`_IMPUTE`)
    patterns, n_missing = _by_missing_count(observed)
    rows = _rows_in_order(x, order, patterns, starts)
    n_rows, n_slots = 0, 0
    read = 0  # where in ``rows`` the rows of the next pattern start
    batch_start, batch_stop = 0, 0
    for q in range(patterns.size):
        p = patterns[q]
        if q == batch_stop:  # the next patterns missing as many features, factorised together
            n_mis = n_missing[p]
            batch_start, batch_stop = q, q + 1
            while (batch_stop < patterns.size and batch_stop - q < FACTOR_BATCH
                   and n_missing[patterns[batch_stop]] == n_mis):
                batch_stop += 1
            for i in range(q, batch_stop):
                _split_features(observed[patterns[i]], batch_features[i - q])
            _factorise(precisions, batch_features[:, n_features - n_mis:], batch_stop - q,
                       n_mis, batch)
        j = q - batch_start  # the pattern's place in ``batch``
        n_obs = n_features - n_missing[p]
        obs, mis = batch_features[j, :n_obs], batch_features[j, n_obs:]
        if obs.size == 0 and task == _STATISTICS:
            read += starts[p + 1] - starts[p]
            continue
        row, stop = starts[p], starts[p + 1]
        # (`_LOG_PROB` and `_IMPUTE` fill row by row: a row's values do not depend
        # on how many rows share its pattern, so they are the same in every chunking)
        many = task == _STATISTICS and stop - row >= TILE_MIN_ROWS
        while row < stop:
            if n_rows and (n_rows == TILE_ROWS or tile.cond_start[n_slots]
                           + n_factors * mis.size**2 > tile.conds.size):
                _finish(task, tile, n_rows, n_slots, factors_t, means, with_entropy, draws,
                        sums, out, scratch)
                n_rows, n_slots = 0, 0
            _add_slot(tile, n_slots, obs, mis, log_weights, batch, j * n_factors, log_det_u)
            count = min(TILE_ROWS - n_rows, stop - row)
            if many:
                _fill_columns(rows, read, order, row, count, n_rows, sample_weight, centre, obs,
                              mis, means, precision_rows, batch.conds, j * n_factors, tile)
            else:
                _fill(rows, read, order, row, count, n_rows, sample_weight, centre, mis, means,
                      precision_rows, batch.conds, j * n_factors, tile)
            n_slots += 1
            n_rows += count
            tile.slot_start[n_slots] = n_rows
            row += count
            read += count
    if n_rows:
        _finish(task, tile, n_rows, n_slots, factors_t, means, with_entropy, draws, sums, out,
                scratch)


@njit(**_JIT)
def _no_draws(n_features):
    return np.empty(0), np.empty((0, n_features))


@njit(**_JIT)
def _sums(n_components, n_features):
    """Zeroed (nk (K,), first (K, D), m2 (K, D, D), totals (3,))."""
    return (np.zeros(n_components), np.zeros((n_components, n_features)),
            np.zeros((n_components, n_features, n_features)), np.zeros(3))


@njit(**_JIT)
def pattern_statistics(x, order, observed, starts, sample_weight, centre, means, prec_chols,
                       log_weights, with_entropy):
    """E-step and statistics of the rows ``order`` of ``x`` (module docstring).

    ``x`` (n, D) holds rows uncentred (float32 or float64), ``order`` those
    to sum grouped by pattern (`group_rows`: ``observed``, ``starts``),
    ``sample_weight`` (n,) their weights (or is empty: weights 1);
    ``means`` are relative to ``centre``, ``prec_chols`` (F, D, D) the upper
    factors U. Rows whose entries are all missing take no part. Returns
    ``(nk (K,), first (K, D), m2 (K, D, D), loglik, weight, entropy)``: first
    sums r (x_hat - mu_k), m2 sums r ((x_hat - mu_k)(x_hat - mu_k)^T + C_k),
    both about each component's own mean, so that they stay exact wherever it
    lies; with ``with_entropy``, entropy sums r log r - r H_k (module
    docstring), else it is 0; all weighted by ``sample_weight``.
    """
    n_components, n_features = means.shape
    sums = _sums(n_components, n_features)
    _sweep(_STATISTICS, x, order, sample_weight, observed, starts, centre, means, prec_chols,
           log_weights, with_entropy, _no_draws(n_features), sums, np.empty((0, 0)))
    nk, first, m2, totals = sums
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i):
                m2[k, i, j] = m2[k, j, i]
    return nk, first, m2, totals[0], totals[1], totals[2] if with_entropy else 0.0


@njit(**_JIT)
def pattern_log_prob(x, order, observed, starts, centre, means, prec_chols, log_weights):
    """log w_k + log N(x_o; mu_ko, Sigma_k,oo) of the rows ``order`` of ``x``, in
    the rows of the output (n, K) (arguments as `pattern_statistics`); a row
    with no observed entry gets ``log_weights``."""
    n_components, n_features = means.shape
    out = np.full((x.shape[0], n_components), np.nan)
    _sweep(_LOG_PROB, x, order, np.empty(0), observed, starts, centre, means, prec_chols,
           log_weights, False, _no_draws(n_features), _sums(n_components, n_features), out)
    return out


@njit(**_JIT)
def pattern_impute(x, order, observed, starts, centre, means, prec_chols, log_weights, uniforms,
                   normals):
    """The missing entries (relative to ``centre``) of the rows ``order`` of ``x``
    filled in, in the rows of the output (n, D) (arguments as
    `pattern_statistics`; the other entries NaN).

    Without draws (``uniforms`` empty): sum_k p(k | x_o) (mu_km + Bt_k^T (x_o - mu_ko)).
    With them (``uniforms`` (n,), ``normals`` (n, D)): component k drawn by the
    row's uniform from p(k | x_o), then x_m = mu_km + Bt_k^T (x_o - mu_ko) +
    chol(C_k) e_m for the row's standard normals e. A row with no observed
    entry gets p(k) = the weights.
    """
    n_components, n_features = means.shape
    out = np.full(x.shape, np.nan)
    _sweep(_IMPUTE, x, order, np.empty(0), observed, starts, centre, means, prec_chols,
           log_weights, False, (uniforms, normals), _sums(n_components, n_features), out)
    return out


# ---------------------------------------------------------------- patterns

# Multiplier of Fibonacci hashing (2^64 / golden ratio): a pattern's words times
# it, top bits as the slot, spread nearby patterns over the table.
_FIBONACCI = np.uint64(11400714819323198485)


@njit(cache=True, nogil=True)
def missing_bits(x):
    """The missing entries (NaN) of the rows ``x`` (n, D) as bits, in one pass over ``x``.

    Returns ``(bits, infinite)``: ``bits`` (n, W) uint64, W = ceil(D / 64),
    where bit d % 64 of ``bits[n, d // 64]`` says whether ``x[n, d]`` is NaN
    (a row of zeros: a complete row); ``infinite``, whether ``x`` holds an
    infinity. (It replaces a row sum, a NaN check of the flagged rows, a
    check for infinity and a boolean mask of ``x``: on bench_missing's rows
    with 20 % missing at random, full, D 16, K 8, they took 0.7x the time of
    the complete rows' sweep of as many rows.)
    """
    n_rows, n_features = x.shape
    n_words = (n_features + 63) // 64
    bits = np.zeros((n_rows, n_words), dtype=np.uint64)
    infinite = False
    for row in range(n_rows):
        for w in range(n_words):
            word = np.uint64(0)
            for d in range(64 * w, min(n_features, 64 * w + 64)):
                value = x[row, d]
                word |= np.uint64(value != value) << np.uint64(d - 64 * w)
                infinite |= abs(value) == np.inf
            bits[row, w] = word
    return bits, infinite


@njit(cache=True, nogil=True)
def _pattern_hash(bits, row):
    """The slot hash of row ``row``'s pattern (`missing_bits`), one 64-bit word."""
    mixed = np.uint64(0)
    for w in range(bits.shape[1]):
        mixed = (mixed ^ bits[row, w]) * _FIBONACCI
    return mixed


@njit(cache=True, nogil=True)
def _same_pattern(bits, a, b):
    for w in range(bits.shape[1]):
        if bits[a, w] != bits[b, w]:
            return False
    return True


@njit(cache=True, nogil=True)
def group_rows(bits, n_features):
    """The rows holding NaN grouped by missingness pattern, in O(n W) (a hash
    table of the patterns' words).

    ``bits`` (n, W): the missing entries of rows of ``n_features`` features
    (`missing_bits`). Returns
    ``(order, observed, starts)``: rows ``order[starts[p]:starts[p + 1]]``
    (indices into ``bits``) are those of pattern p, observed on
    ``observed[p]`` (P, D); patterns in the order they first occur, and the
    rows of each in theirs. Complete rows (no bit set) are left out.
    """
    n_rows, n_words = bits.shape
    size = 4
    while (1 << size) < 2 * n_rows:
        size += 1
    shift = np.uint64(64 - size)
    last_slot = np.uint64((1 << size) - 1)
    table = np.full(1 << size, -1, dtype=np.int64)  # pattern ids
    pattern = np.full(n_rows, -1, dtype=np.int64)
    first = np.empty(n_rows, dtype=np.int64)
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    n_patterns = 0
    for row in range(n_rows):
        complete = True
        for w in range(n_words):
            complete &= bits[row, w] == 0
        if complete:
            continue
        slot = _pattern_hash(bits, row) >> shift
        while True:
            p = table[slot]
            if p < 0:
                p = n_patterns
                table[slot] = p
                first[p] = row
                n_patterns += 1
                break
            if _same_pattern(bits, first[p], row):
                break
            slot = (slot + np.uint64(1)) & last_slot
        pattern[row] = p
        counts[p + 1] += 1
    starts = np.cumsum(counts[:n_patterns + 1])
    fill = starts[:n_patterns].copy()
    order = np.empty(starts[n_patterns], dtype=np.int64)
    for row in range(n_rows):
        if pattern[row] >= 0:
            order[fill[pattern[row]]] = row
            fill[pattern[row]] += 1
    observed = np.empty((n_patterns, n_features), dtype=np.bool_)
    for p in range(n_patterns):
        for d in range(n_features):
            observed[p, d] = (bits[first[p], d // 64] >> np.uint64(d % 64)) & np.uint64(1) == 0
    return order, observed, starts


@njit(cache=True, nogil=True)
def observed_entries(x, rows, features):
    """``x[rows][:, features]`` in float64, C-contiguous (len(rows), len(features)): in
    one pass (NumPy's fancy indexing of both took 2.3 ms for 25,000 rows of 12 of 16
    features, two takes 1.2 ms)."""
    out = np.empty((rows.size, features.size))
    for n in range(rows.size):
        for i in range(features.size):
            out[n, i] = x[rows[n], features[i]]
    return out


# ---------------------------------------------------------------- diag, spherical
# Rows as columns in blocks of `_fused._block_rows` rows, as the complete
# rows' sweep takes them; a missing entry is a NaN whose terms a select (not a
# branch) sets to 0, so that the loops over the rows vectorise whatever the
# patterns; the features without NaN in a block (blocks of columns missing)
# skip the selects (5 % less time on bench_missing's block columns). Measured
# at D 16, K 8 (CPU time of a block of 125,000 rows, on a loaded machine):
# 1.2-1.3x `_fused`'s sweep of as many complete rows, with 5 % or 20 % of the
# entries missing at random or blocks of columns missing. The
# responsibilities are `_fused`'s.


@njit(**_JIT)
def _gather_rows(x, sample_weight, start, n_rows, centre, out, weights, gaps):
    """out[d, n] = x[start + n, d] - centre[d] (NaN where missing): rows as columns
    (D, block); ``weights`` (block,) the rows' weights (1 if ``sample_weight`` is
    empty), 0 for a row with nothing observed, which so takes no part;
    ``gaps[d]`` the number of NaN in feature d of the block."""
    n_features = x.shape[1]
    for n in range(n_rows):
        n_observed = 0
        for d in range(n_features):
            value = x[start + n, d] - centre[d]
            out[d, n] = value
            n_observed += value == value
        weight = sample_weight[start + n] if sample_weight.size else 1.0
        weights[n] = weight if n_observed else 0.0
    for d in range(n_features):  # a vectorised count per feature
        values = out[d]
        count = 0
        for n in range(n_rows):
            count += values[n] != values[n]
        gaps[d] = count


@njit(**_JIT)
def _masked_log_prob(xt, n_rows, gaps, means, half_log_2pi_var, precisions, log_weights, lp):
    """(1) for ``diag``: lp[k, n] = log w_k - 1/2 sum over observed d of
    log(2 pi sigma_kd^2) + (x_dn - mu_kd)^2 / sigma_kd^2; a NaN x_dn adds 0
    (a select, not a branch: the loop over the rows vectorises), in the
    features with NaN in the block (``gaps``) only."""
    n_components, n_features = means.shape
    for k in range(n_components):
        row = lp[k]
        for n in range(n_rows):
            row[n] = 0.0
        constant_k = log_weights[k]  # with the constants of the features without NaN
        for d in range(n_features):
            mean, constant = means[k, d], half_log_2pi_var[k, d]
            half = 0.5 * precisions[k, d]
            values = xt[d]
            if gaps[d]:
                for n in range(n_rows):
                    dev = values[n] - mean
                    term = constant + half * dev * dev
                    row[n] += term if dev == dev else 0.0
            else:
                constant_k -= constant
                for n in range(n_rows):
                    dev = values[n] - mean
                    row[n] += half * dev * dev
        for n in range(n_rows):
            row[n] = constant_k - row[n]


@njit(**_JIT)
def _masked_moments(xt, n_rows, gaps, means, resp, first, m2, missed):
    """Over observed entries first_kd += sum_n r_nk (x_dn - mu_kd) and
    m2_kd += sum_n r_nk (x_dn - mu_kd)^2; over missing ones missed_kd += sum_n r_nk;
    ``resp`` (K, block) the weighted responsibilities. Features without NaN in
    the block (``gaps``) skip the selects."""
    n_components, n_features = means.shape
    for k in range(n_components):
        r = resp[k]
        for d in range(n_features):
            mean = means[k, d]
            values = xt[d]
            total, squares, missing = 0.0, 0.0, 0.0
            if gaps[d]:
                for n in range(n_rows):
                    dev = values[n] - mean
                    seen = dev == dev
                    rd = r[n] * dev if seen else 0.0
                    total += rd
                    squares += rd * dev if seen else 0.0
                    missing += 0.0 if seen else r[n]
            else:
                for n in range(n_rows):
                    dev = values[n] - mean
                    rd = r[n] * dev
                    total += rd
                    squares += rd * dev
            first[k, d] += total
            m2[k, d] += squares
            missed[k, d] += missing


@njit(**_JIT)
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
    gaps = np.empty(n_features, dtype=np.int64)
    for start in range(0, x.shape[0], block):
        n_rows = min(block, x.shape[0] - start)
        _gather_rows(x, sample_weight, start, n_rows, centre, xt, weights, gaps)
        _masked_log_prob(xt, n_rows, gaps, means, half_log_2pi_var, precisions, log_weights,
                         lp)
        _fused._responsibilities(lp, n_rows, weights, 0, with_entropy, nk, totals, work)
        _masked_moments(xt, n_rows, gaps, means, lp, first, m2, missed)
    entropy = totals[2]
    for k in range(n_components):
        for d in range(n_features):
            m2[k, d] += missed[k, d] * variances[k, d]
            entropy -= missed[k, d] * (half_log_2pi_var[k, d] + 0.5)
    return nk, first, m2, totals[0], totals[1], entropy if with_entropy else 0.0


@njit(**_JIT)
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
    gaps = np.empty(n_features, dtype=np.int64)
    out = np.empty((x.shape[0], n_components))
    for start in range(0, x.shape[0], block):
        n_rows = min(block, x.shape[0] - start)
        _gather_rows(x, weights[:0], start, n_rows, centre, xt, weights, gaps)
        _masked_log_prob(xt, n_rows, gaps, means, half_log_2pi_var, precisions, log_weights,
                         lp)
        _fused._copy_out(lp, n_rows, start, out)
    return out


# Rows summed at a time by `any_nan`: a NaN among them stops the scan there. 64 was
# chosen, not tuned; the one alternative measured, runs of 4,096 entries over a flat
# view, took 2.3 ms against 1.05 ms for a block of 125,000 x 16 rows without NaN
# (thread CPU time, best of 11, load 3-4).
_NAN_SCAN_ROWS = 64


@njit(**_JIT)
def any_nan(x):
    """Whether the rows ``x`` (n, D) hold a NaN (or both infinities), from the sums of
    blocks of `_NAN_SCAN_ROWS` rows: the scan stops at the first block whose sum is
    NaN, so that a block of rows with NaN costs next to nothing, where NumPy's
    ``np.isnan(np.sum(x))`` took 6-15 % of the complete rows' sweep of 125,000 rows
    of 16 features (K 8, ``diag``); one without NaN costs a pass, 1.05 ms against
    NumPy's 0.82 (8 % of the sweep's 13.7 ms; thread CPU time, best of 11, load 2.9)."""
    for start in range(0, x.shape[0], _NAN_SCAN_ROWS):
        total = 0.0
        for row in range(start, min(start + _NAN_SCAN_ROWS, x.shape[0])):
            for d in range(x.shape[1]):
                total += x[row, d]
        if total != total:
            return True
    return False
