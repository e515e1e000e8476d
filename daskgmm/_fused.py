"""Fused per-chunk kernels, compiled by numba: E-step and statistics in one sweep.

`_kernels` imports this module on first use only (numba takes about 0.5 s to
import), and holds everything around it: parameters in, ``Stats`` out. Each
covariance type has two compiled functions here, in ``KERNELS``:

``statistics(X, rows, sample_weight, resp, centre, means, params, const, with_entropy,
nk, first, m2, between, totals)``
    One sweep over the rows ``rows`` of ``X`` (all, in order, where ``rows`` is
    empty; ``sample_weight`` and ``resp`` are those of the rows swept) in
    blocks of ``block`` rows: each block
    is centred on ``centre`` (in float64, so float32 rows lose nothing), its
    log-densities, responsibilities and their statistics are computed while
    it is in cache, and added to the outputs ``nk`` (K,), ``first`` (K, D),
    ``m2`` (the layout of ``Stats.m2``), ``between`` (K, K, ``tied`` only)
    and ``totals`` (log-likelihood, weight, ``sum r log r``). Given ``resp``
    (rows, K), its rows are the responsibilities and the E-step is skipped.
``log_prob(X, centre, means, params, const, out)``
    log(pi_k) + log N(x | mu_k, Sigma_k) of every row and component, (rows, K).

Moments are exact however far the data lie from the origin and the
components from each other. ``full``, ``diag`` and ``spherical`` compute the
deviations d_nk = x_n - mu_k of every row from every component's mean for
their E-step anyway; their statistics are the sums of r_nk d_nk and
r_nk d_nk d_nk^T (their diagonals, or the squared norms) about each
component's own mean, made with the same deviations. ``tied`` whitens each
row once, so that its E-step costs D^2 / 2 + K D per row, not K D^2 / 2; its
pooled moments refer each row to the mean of its most responsible component
g(n), y_n = x_n - mu_g, as in

    sum_k r_nk d_nk d_nk^T = w_n y_n y_n^T + y_n v_n^T + v_n y_n^T
                             + sum_k r_nk (mu_g - mu_k)(mu_g - mu_k)^T,

with w_n = sum_k r_nk and v_n = sum_k r_nk (mu_g - mu_k): every term is small
where the result is, and the last one is added once per chunk from
``between`` (T_kg, the sum of r_nk over the rows of component g).
``diag`` and ``spherical`` at large K D instead expand the squares about the
centre c and run as two BLAS products per block (`_product_statistics`),
for the components whose parameters show that this cannot lose digits
(`_diag_parameters`; the others take exact sums beside the products); float32
rows take the E-step's product in float32, the moments' product in float64.

Responsibilities whose log (relative to the row's largest) is at most
``LOG_RESP_FLOOR`` are set to 0 (exp is never taken below it, so no
subnormal numbers arise). Statistics are accumulated in float64.

float32 rows are centred in float64 (exactly) for the moments, which run
in float64 as for float64 rows; their E-step runs in float32, on twice as
many values per instruction: the centred rows (or ``full``'s deviations
from each mean) rounded once to float32, whitened and compared with the
means in float32, and their responsibilities taken by a float32 exp (floor
``LOG_RESP_FLOOR_SINGLE``; `_kernels.em_statistics` sweeps a chunk again
in float64 where that leaves a component with no weight), then scaled into
float64. Their statistics so hold to float32's precision (about 1e-6
relative where components overlap), as scikit-learn's float32 fits, without
its raw float32 moments.

Each function is compiled for C-contiguous float64 and float32 rows (two
specialisations) and cached on disk (``cache=True``, next to this module, or
in numba's user-wide cache where that is read-only): the first fit after an
installation compiles its type's kernels (3-12 s of CPU), every later process
(Dask workers too) loads them (about 0.1 s each). No ``parallel=True``: Dask runs
chunks on separate threads or processes, and the kernels release the GIL.
"""

import math
from typing import Callable, NamedTuple

import numba
import numpy as np
from numba.extending import intrinsic, overload

# Compiler flags: reassociation lets LLVM vectorise the sums over rows (in
# lanes, then added); contraction fuses multiply-adds. No finite-math flags:
# NaN and infinity reach the caller, which raises on them; with NumPy's
# error model a division by zero gives them too, not an exception.
_JIT = dict(cache=True, nogil=True, error_model="numpy",
            fastmath={"reassoc", "contract", "nsz", "arcp"})

# Responsibilities whose log (relative to the row's largest) is at most this
# are set to 0, and exp is never taken below it: below about -708 exp gives
# subnormals, whose arithmetic is 5-40x slower (well-separated components made
# whole fits 2.5x slower). What it drops is below exp(-500) = 7e-218 of a
# row's weight.
LOG_RESP_FLOOR = -500.0


# The row index of a sweep over all the rows of X, in order.
_ALL_ROWS = np.empty(0, dtype=np.intp)


@numba.njit(**_JIT)
def _centred_columns(X, rows, start, n_rows, centre, out):
    """out[i, n] = X[r, i] - centre[i] in float64 for the swept rows r =
    ``rows[start + n]`` (``start + n`` where ``rows`` is empty): rows as columns,
    (D, block)."""
    indexed = rows.size > 0
    for n in range(n_rows):
        row = rows[start + n] if indexed else start + n
        for i in range(X.shape[1]):
            out[i, n] = np.float64(X[row, i]) - centre[i]


@numba.njit(**_JIT)
def _single_columns(xt, n_rows, out):
    """out[i, n] = xt[i, n] rounded to out's type: float32 rows' E-step columns, (D, block)."""
    for i in range(xt.shape[0]):
        for n in range(n_rows):
            out[i, n] = xt[i, n]


@numba.njit(**_JIT)
def _centred_rows(X, rows, start, n_rows, centre, out):
    """out[n, i] = X[r, i] - centre[i] in float64 (rows as `_centred_columns`), (block, D)."""
    indexed = rows.size > 0
    for n in range(n_rows):
        row = rows[start + n] if indexed else start + n
        for i in range(X.shape[1]):
            out[n, i] = np.float64(X[row, i]) - centre[i]


# exp(s) for LOG_RESP_FLOOR <= s <= 0 in a loop that LLVM vectorises
# (numba's math.exp is one libm call per value: it took 3/4 of ``diag``'s
# E-step at D 16, K 8): s = -m ln 2 + r with m a whole number and
# |r| <= ln(2) / 2 (Cody & Waite's split of ln 2, exact for m < 2^11), exp(r)
# by its Taylor series to r^13 / 13! (remainder below 5e-18), times 2^-m
# made from its exponent bits. m stays a float and becomes a 32-bit integer
# only for those bits: conversions between 64-bit integers and floats have
# no AVX2 instruction and made the loop scalar (2.3x slower). Within 1 ulp
# of NumPy's exp (tests/test_kernels.py).
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INVERSE_FACTORIALS = tuple(1.0 / math.factorial(k) for k in range(14))

# The same in float32, on twice as many values per instruction, for the
# log-probabilities of float32 rows: its floor at -87, as exp(-88) is below
# float32's smallest normal number (what it drops is below 1.7e-38 of a
# row's weight); ln 2 split with a high part of 9 bits (exact times m < 2^7);
# the series to r^7 / 7! (remainder below 6e-9, a tenth of float32's spacing).
LOG_RESP_FLOOR_SINGLE = np.float32(-87.0)
_LOG2E_SINGLE = np.float32(_LOG2E)
_LN2_HI_SINGLE = np.float32(0.693359375)
_LN2_LO_SINGLE = np.float32(math.log(2.0) - 0.693359375)
_INVERSE_FACTORIALS_SINGLE = tuple(np.float32(1.0 / math.factorial(k)) for k in range(8))

# Without reassociation, which would merge the two parts of ln 2; inlined
# into vectorised loops, its operations keep these flags.
_EXP_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@intrinsic
def _bits_as_float(typingctx, bits):
    """The float whose IEEE 754 bits are ``bits``: float64 of an int64, float32 of an int32."""
    result = numba.types.float64 if bits.bitwidth == 64 else numba.types.float32

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(result))
    return result(bits), codegen


@numba.njit(**_EXP_JIT)
def _exp(s):
    """exp(s) for s in [LOG_RESP_FLOOR, 0]."""
    c = _INVERSE_FACTORIALS
    halvings = np.floor(0.5 - s * _LOG2E)
    r = (s + halvings * _LN2_HI) + halvings * _LN2_LO
    p = c[len(c) - 1]
    for power in range(len(c) - 2, -1, -1):  # Horner; unrolled by LLVM
        p = p * r + c[power]
    return p * _bits_as_float((1023 - np.int64(np.int32(halvings))) << 52)


@numba.njit(**_EXP_JIT)
def _exp_single(s):
    """exp(s) in float32 for float32 s in [LOG_RESP_FLOOR_SINGLE, 0]."""
    c = _INVERSE_FACTORIALS_SINGLE
    halvings = np.floor(np.float32(0.5) - s * _LOG2E_SINGLE)
    r = (s + halvings * _LN2_HI_SINGLE) + halvings * _LN2_LO_SINGLE
    p = c[len(c) - 1]
    for power in range(len(c) - 2, -1, -1):
        p = p * r + c[power]
    return p * _bits_as_float(np.int32((127 - np.int32(halvings)) << 23))


def _floored_exp(shifted):
    """exp(shifted) above the floor of shifted's type (LOG_RESP_FLOOR, or
    LOG_RESP_FLOOR_SINGLE for float32), else 0; NaN gives 0."""


@overload(_floored_exp, jit_options=_EXP_JIT)
def _floored_exp_of_type(shifted):
    if shifted == numba.types.float32:
        def floored_exp_single(shifted):
            e = _exp_single(max(shifted, LOG_RESP_FLOOR_SINGLE))
            return e if shifted > LOG_RESP_FLOOR_SINGLE else np.float32(0.0)
        return floored_exp_single

    def floored_exp(shifted):
        e = _exp(max(shifted, LOG_RESP_FLOOR))
        return e if shifted > LOG_RESP_FLOOR else 0.0
    return floored_exp


@numba.njit(**_JIT)
def _responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk, totals, work):
    """Turn log-probabilities lp (K, block) into weighted responsibilities, in place
    (`_weighted_responsibilities`)."""
    _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk, totals,
                               work, lp)


@numba.njit(**_JIT)
def _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk, totals,
                               work, out):
    """Weighted responsibilities ``out`` (K, block) from log-probabilities lp (K, block).

    r_nk = exp(lp_nk - max_k lp_nk) / sum_k exp(...) times the row's weight;
    adds log p(x_n) = log sum_k exp(lp_nk) (log-sum-exp), the weight and
    sum_k r_nk log r_nk = sum_k r_nk s_nk - log sum_k exp(s_nk), with
    s = lp - max, to ``totals`` and r_nk to ``nk``. The exponentials are
    taken in lp's precision (float32 for float32 rows; lp is overwritten with
    them), ``work`` (3, block) of lp's type; ``out`` and the sums are float64.
    """
    n_components = lp.shape[0]
    top, total, spread = work[0], work[1], work[2]
    for n in range(n_rows):
        top[n] = lp[0, n]
        total[n] = 0.0
        spread[n] = 0.0
    for k in range(1, n_components):
        for n in range(n_rows):
            top[n] = max(top[n], lp[k, n])
    for k in range(n_components):
        row = lp[k]
        for n in range(n_rows):
            shifted = row[n] - top[n]
            # exp of every value (a branch would stop vectorisation), kept where
            # above the floor and not NaN, else 0; NaN rows keep NaN in top.
            e = _floored_exp(shifted)
            row[n] = e
            total[n] += e
            if with_entropy:
                spread[n] += e * shifted if e > 0.0 else 0.0
    weighted = sample_weight.shape[0] > 0
    loglik = 0.0
    weight = 0.0
    entropy = 0.0
    for n in range(n_rows):
        w = sample_weight[start + n] if weighted else 1.0
        row_total = np.float64(total[n])
        log_total = math.log(row_total)
        loglik += w * (log_total + top[n])
        weight += w
        if with_entropy:
            entropy += w * (spread[n] / row_total - log_total)
        total[n] = w / row_total
    totals[0] += loglik
    totals[1] += weight
    totals[2] += entropy
    for k in range(n_components):
        row, out_row = lp[k], out[k]
        sum_r = 0.0
        for n in range(n_rows):
            out_row[n] = np.float64(row[n]) * total[n]
            sum_r += out_row[n]
        nk[k] += sum_r


@numba.njit(**_JIT)
def _given_responsibilities(resp, n_rows, sample_weight, start, out, nk, totals):
    """out (K, block) = the rows' responsibilities ``resp`` times their weights."""
    weighted = sample_weight.shape[0] > 0
    for n in range(n_rows):
        weight = sample_weight[start + n] if weighted else 1.0
        totals[1] += weight
        for k in range(resp.shape[1]):
            r = resp[start + n, k] * weight
            out[k, n] = r
            nk[k] += r


@numba.njit(**_JIT)
def _add_upper_products(a, b, n_rows, out):
    """out[i, j] += sum_n a[i, n] b[j, n] for i <= j; the strict lower triangle is untouched.

    In tiles of 4 rows of a by 4 rows of b (`_add_tile`): sixteen sums over
    the rows from eight rows, so that each value loaded serves four
    multiply-adds; the last D % 4 columns one sum at a time. Measured (1
    thread, CPU time, blocks of 256 and 512 rows): 1.06x faster than 2 x 4
    tiles at D 16, 1.1-1.3x at D 32 and 64; a BLAS product of the whole
    (D, D), which packs both operands on every call and computes both
    triangles, 1.3-1.9x slower than 4 x 4 tiles at D 16 to 64. Inside ``full``'s
    moments (B, D 64): 0.91-1.06x the 2 x 4 tiles' time, within that machine's noise.
    """
    n_features = a.shape[0]
    whole = n_features - n_features % 4
    for i in range(0, whole, 4):
        for j in range(i, whole, 4):
            _add_tile(a, b, i, j, n_rows, out)
    for j in range(whole, n_features):
        last = b[j]
        for i in range(j + 1):
            row = a[i]
            total = 0.0
            for n in range(n_rows):
                total += row[n] * last[n]
            out[i, j] += total


@numba.njit(**_JIT)
def _add_tile(a, b, i, j, n_rows, out):
    """out[i:i + 4, j:j + 4] += a[i:i + 4, :n_rows] b[j:j + 4, :n_rows]^T, on and above
    the diagonal of ``out``."""
    a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
    b0, b1, b2, b3 = b[j], b[j + 1], b[j + 2], b[j + 3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
    for n in range(n_rows):
        x0, x1, x2, x3 = a0[n], a1[n], a2[n], a3[n]
        y0, y1, y2, y3 = b0[n], b1[n], b2[n], b3[n]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
    sums = (s00, s01, s02, s03, s10, s11, s12, s13,
            s20, s21, s22, s23, s30, s31, s32, s33)
    for p in range(4):
        for q in range(4):
            if i + p <= j + q:
                out[i + p, j + q] += sums[4 * p + q]


# ---------------------------------------------------------------- full

@numba.njit(**_JIT)
def _full_deviations(xc, n_rows, mean, first_feature, out):
    """out[n, i] = xc[n, first_feature + i] - mean[first_feature + i], rounded to out's
    type once (float32 for float32 rows)."""
    width = out.shape[1]
    part = mean[first_feature:first_feature + width]
    for n in range(n_rows):
        row, out_row = xc[n, first_feature:first_feature + width], out[n]
        for i in range(width):
            out_row[i] = row[i] - part[i]


@numba.njit(**_JIT)
def _full_log_prob_block(xc, n_rows, means, params, const, lp, buffers):
    """lp[k, n] = const_k - |(x_n - mu_k) L_k|^2 / 2 (sklearn's _estimate_log_gaussian_prob).

    The product with the upper-triangular L_k is BLAS products of the
    block's deviations d, in the precision of the factors (float32 for
    float32 rows; `_full_parameters`). Split at h features,
    L_k = [[A_k, B_k], [0, C_k]] and d = [d_1, d_2], it is
    [d_1 A_k, d_1 B_k + d_2 C_k]: three products that skip the zero block
    (h = 0: d C_k, the whole). Squares summed in float64, stored in lp's type;
    ``buffers`` from `_whitening_buffers`.
    """
    leading, coupling, trailing = params
    head, tail, white_head, white_tail, coupled = buffers
    split = leading.shape[1]
    for k in range(means.shape[0]):
        _full_deviations(xc, n_rows, means[k], 0, head)
        _full_deviations(xc, n_rows, means[k], split, tail)
        np.dot(tail, trailing[k], white_tail)
        if split:
            np.dot(head, leading[k], white_head)
            np.dot(head, coupling[k], coupled)
            for n in range(n_rows):
                for i in range(white_tail.shape[1]):
                    white_tail[n, i] += coupled[n, i]
        for n in range(n_rows):
            squares = 0.0
            for i in range(split):
                squares += np.float64(white_head[n, i]) * white_head[n, i]
            for i in range(white_tail.shape[1]):
                squares += np.float64(white_tail[n, i]) * white_tail[n, i]
            lp[k, n] = const[k] - 0.5 * squares


@numba.njit(**_JIT)
def _whitening_buffers(block, params):
    """The work arrays of `_full_log_prob_block` for ``block`` rows: deviations, their
    products and the coupling product, split as the factors in ``params``."""
    leading, _, trailing = params
    split, rest = leading.shape[1], trailing.shape[1]
    dtype = trailing.dtype
    return (np.zeros((block, split), dtype=dtype), np.zeros((block, rest), dtype=dtype),
            np.empty((block, split), dtype=dtype), np.empty((block, rest), dtype=dtype),
            np.empty((block, rest if split else 0), dtype=dtype))


@numba.njit(**_JIT)
def _full_moments_block(xt, n_rows, means, rt, first, m2, dev, weighted_dev):
    """first_k += sum_n r_nk d_nk, upper(m2_k) += upper(sum_n r_nk d_nk d_nk^T),
    d_nk = x_n - mu_k, from the rows as columns ``xt`` (D, block)."""
    n_components, n_features = means.shape
    for k in range(n_components):
        r = rt[k]
        for i in range(n_features):
            mean = means[k, i]
            x, d, rd = xt[i], dev[i], weighted_dev[i]
            total = 0.0
            for n in range(n_rows):
                d[n] = x[n] - mean
                rd[n] = r[n] * d[n]
                total += rd[n]
            first[k, i] += total
        _add_upper_products(weighted_dev, dev, n_rows, m2[k])


@numba.njit(**_JIT)
def _full_statistics(X, rows, sample_weight, resp, centre, means, params, const, with_entropy,
                     nk, first, m2, between, totals):
    """``statistics`` of ``full`` (module docstring)."""
    dtype = params[2].dtype
    n_components, n_features = means.shape
    block = _block_rows(n_components, n_features)
    xc = np.zeros((block, n_features))
    xt = np.empty((n_features, block + _PAD))
    dev = np.empty((n_features, block + _PAD))
    weighted_dev = np.empty((n_features, block + _PAD))
    lp = np.empty((n_components, block + _PAD), dtype=dtype)
    work = np.empty((3, block + _PAD), dtype=dtype)
    rt = np.empty((n_components, block + _PAD))
    buffers = _whitening_buffers(block, params)
    n_swept = rows.size if rows.size else X.shape[0]
    for start in range(0, n_swept, block):
        n_rows = min(block, n_swept - start)
        _centred_columns(X, rows, start, n_rows, centre, xt)
        if resp.shape[0]:
            _given_responsibilities(resp, n_rows, sample_weight, start, rt, nk, totals)
        else:
            _centred_rows(X, rows, start, n_rows, centre, xc)
            _full_log_prob_block(xc, n_rows, means, params, const, lp, buffers)
            _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk,
                                       totals, work, rt)
        _full_moments_block(xt, n_rows, means, rt, first, m2, dev, weighted_dev)


@numba.njit(**_JIT)
def _full_log_prob(X, centre, means, params, const, out):
    """``log_prob`` of ``full`` (module docstring)."""
    n_components, n_features = means.shape
    block = _block_rows(n_components, n_features)
    xc = np.zeros((block, n_features))
    lp = np.empty((n_components, block + _PAD))
    buffers = _whitening_buffers(block, params)
    for start in range(0, X.shape[0], block):
        n_rows = min(block, X.shape[0] - start)
        _centred_rows(X, _ALL_ROWS, start, n_rows, centre, xc)
        _full_log_prob_block(xc, n_rows, means, params, const, lp, buffers)
        _copy_out(lp, n_rows, start, out)


# ---------------------------------------------------------------- diag, spherical

@numba.njit(**_JIT)
def _diag_log_prob_block(xe, n_rows, means, half_precisions, const, lp, components):
    """lp[k, n] = const_k - sum_i p_ki (x_ni - mu_ki)^2 / 2, with precisions p = prec_chol^2,
    for the components k in ``components`` (the other rows of lp are left as they are).

    ``half_precisions`` (-p / 2) is (K, D) for ``diag``, (K, 1) for
    ``spherical``; all in the precision of ``xe``, ``means``,
    ``half_precisions`` and ``lp`` (float32 for float32 rows).
    """
    n_features = means.shape[1]
    per_feature = half_precisions.shape[1] > 1
    for k in components:
        row = lp[k]
        for n in range(n_rows):
            row[n] = 0.0
        for i in range(n_features):
            mean = means[k, i]
            half = half_precisions[k, i if per_feature else 0]
            x = xe[i]
            for n in range(n_rows):
                d = x[n] - mean
                row[n] += half * d * d
        for n in range(n_rows):
            row[n] += const[k]


@numba.njit(**_JIT)
def _diag_moments_block(xt, n_rows, means, rt, first, m2, components):
    """first_ki += sum_n r_nk d_nki, m2 += sum_n r_nk d_nki^2 (per feature, or summed over
    features where m2 is (K,)), d_nk = x_n - mu_k, for the components k in ``components``."""
    n_features = means.shape[1]
    per_feature = m2.ndim == 2
    for k in components:
        r = rt[k]
        squares_k = 0.0
        for i in range(n_features):
            mean = means[k, i]
            x = xt[i]
            total = 0.0
            squares = 0.0
            for n in range(n_rows):
                rd = r[n] * (x[n] - mean)
                total += rd
                squares += rd * (x[n] - mean)
            first[k, i] += total
            if per_feature:
                m2.reshape(-1)[k * n_features + i] += squares
            else:
                squares_k += squares
        if not per_feature:
            m2.reshape(-1)[k] += squares_k


def _in_products_precision(terms, products):
    """The buffer of the E-step's terms in the precision of ``products``: ``terms``
    itself for float64 products, an array of its shape for float32 ones."""


@overload(_in_products_precision, jit_options=_JIT)
def _in_products_precision_of_type(terms, products):
    if products.dtype == numba.types.float32:
        return lambda terms, products: np.zeros(terms.shape, dtype=np.float32)
    return lambda terms, products: terms


@numba.njit(**_JIT)
def _product_log_prob_block(X, start, n_rows, centre, params, const, terms, terms_e, lp):
    """lp = const + products terms: the quadratic form of ``diag`` and ``spherical``
    expanded about the centre c, one BLAS product per block,

        -sum_i p_ki (x_ni - mu_ki)^2 / 2
            = sum_i p_ki mu_ki x_ni - sum_i p_ki x_ni^2 / 2 - sum_i p_ki mu_ki^2 / 2,

    x and mu relative to c. ``terms`` (D + S + 1, block), float64, gets the
    block's rows as columns, then their squares (S = D per feature, or S = 1
    their sum), then ones; ``products`` is (K, D + S + 1), [p mu, -p / 2,
    -|mu|_p^2 / 2]. The product runs in the precision of ``products``: float32
    ones take ``terms`` rounded once into ``terms_e`` (`_in_products_precision`).
    The components in ``far`` (`_diag_parameters`) get the exact sum instead.
    """
    half_precisions, single_means, products, far = params
    n_features = X.shape[1]
    _centred_columns(X, _ALL_ROWS, start, n_rows, centre, terms)
    n_squares = terms.shape[0] - n_features - 1
    squares = terms[n_features:n_features + n_squares]
    for j in range(n_squares):
        for n in range(n_rows):
            squares[j, n] = 0.0
    for i in range(n_features):
        x, square = terms[i], squares[i if n_squares > 1 else 0]
        for n in range(n_rows):
            square[n] += x[n] * x[n]
    ones = terms[terms.shape[0] - 1]
    for n in range(n_rows):
        ones[n] = 1.0
    if products.itemsize < 8:
        _single_columns(terms, n_rows, terms_e)
    np.dot(products, terms_e, lp)
    for k in range(lp.shape[0]):
        row = lp[k]
        for n in range(n_rows):
            row[n] += const[k]
    _diag_log_prob_block(terms_e, n_rows, single_means, half_precisions, const, lp, far)


@numba.njit(**_JIT)
def _product_statistics(X, sample_weight, centre, means, params, const, with_entropy, nk,
                        first, m2, totals):
    """``statistics`` of ``diag`` and ``spherical`` by BLAS products (`_product_log_prob_block`).

    The E-step runs in the precision of ``products`` (the rows'); the moments,
    in float64, are summed
    about the centre, r^T [x, x^2, 1] (one product per block), then moved to
    each component's mean once:
    sum_n r_nk (x_n - mu_k) = F_k - w_k mu_k and
    sum_n r_nk (x_n - mu_k)^2 = M_k - 2 mu_k F_k + w_k mu_k^2;
    the components in ``far`` take the exact sums of `_diag_moments_block` instead.
    """
    products, far = params[2], params[3]
    n_components, n_features = means.shape
    exact = np.zeros(n_components, dtype=np.bool_)
    exact[far] = True
    width = products.shape[1]
    block = _block_rows(n_components, n_features)  # `_BLOCK_ELEMENTS`
    terms = np.zeros((width, block + _PAD))
    terms_e = _in_products_precision(terms, products)
    lp = np.zeros((n_components, block + _PAD), dtype=products.dtype)
    work = np.empty((3, block + _PAD), dtype=products.dtype)
    rt = np.zeros((n_components, block + _PAD))
    sums = np.zeros((n_components, width))
    part = np.empty((n_components, width))
    for start in range(0, X.shape[0], block):
        n_rows = min(block, X.shape[0] - start)
        _product_log_prob_block(X, start, n_rows, centre, params, const, terms, terms_e, lp)
        _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk, totals,
                                   work, rt)
        for k in range(n_components):  # columns past the block's rows add nothing
            for n in range(n_rows, rt.shape[1]):
                rt[k, n] = 0.0
        np.dot(rt, terms.T, part)
        sums += part
        _diag_moments_block(terms, n_rows, means, rt, first, m2, far)
    per_feature = m2.ndim == 2
    m2_flat = m2.reshape(-1)
    for k in range(n_components):
        if exact[k]:
            continue
        weight = sums[k, width - 1]
        squares_k = 0.0
        for i in range(n_features):
            mean = means[k, i]
            total = sums[k, i]
            first[k, i] += total - weight * mean
            square = mean * (weight * mean - 2.0 * total)
            if per_feature:
                m2_flat[k * n_features + i] += sums[k, n_features + i] + square
            else:
                squares_k += square
        if not per_feature:
            m2_flat[k] += sums[k, n_features] + squares_k


@numba.njit(**_JIT)
def _diag_statistics(X, rows, sample_weight, resp, centre, means, params, const, with_entropy,
                     nk, first, m2, between, totals):
    """``statistics`` of ``diag`` and ``spherical`` (module docstring); the rows
    ``rows`` of X (if not empty) are taken out first."""
    if rows.size:
        X = X[rows]
    half_precisions, single_means, products, _ = params
    if products.shape[0] and not resp.shape[0]:
        _product_statistics(X, sample_weight, centre, means, params, const, with_entropy,
                            nk, first, m2, totals)
        return
    n_components, n_features = means.shape
    everyone = np.arange(n_components)
    block = _block_rows(n_components, n_features)
    single = X.itemsize < 8
    xt = np.empty((n_features, block + _PAD))
    xe = np.empty((n_features, block + _PAD if single else 0), dtype=X.dtype)
    lp = np.empty((n_components, block + _PAD), dtype=half_precisions.dtype)
    work = np.empty((3, block + _PAD), dtype=half_precisions.dtype)
    rt = np.empty((n_components, block + _PAD))
    for start in range(0, X.shape[0], block):
        n_rows = min(block, X.shape[0] - start)
        _centred_columns(X, _ALL_ROWS, start, n_rows, centre, xt)
        if resp.shape[0]:
            _given_responsibilities(resp, n_rows, sample_weight, start, rt, nk, totals)
        else:
            if single:
                _single_columns(xt, n_rows, xe)
                _diag_log_prob_block(xe, n_rows, single_means, half_precisions, const, lp,
                                     everyone)
            else:
                _diag_log_prob_block(xt, n_rows, means, half_precisions, const, lp, everyone)
            _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk,
                                       totals, work, rt)
        _diag_moments_block(xt, n_rows, means, rt, first, m2, everyone)


@numba.njit(**_JIT)
def _diag_log_prob(X, centre, means, params, const, out):
    """``log_prob`` of ``diag`` and ``spherical`` (module docstring)."""
    half_precisions, single_means, products, _ = params
    n_components, n_features = means.shape
    if products.shape[0]:
        block = _block_rows(n_components, n_features)  # `_BLOCK_ELEMENTS`
        terms = np.zeros((products.shape[1], block + _PAD))
        terms_e = _in_products_precision(terms, products)
        lp = np.empty((n_components, block + _PAD), dtype=products.dtype)
        for start in range(0, X.shape[0], block):
            n_rows = min(block, X.shape[0] - start)
            _product_log_prob_block(X, start, n_rows, centre, params, const, terms, terms_e, lp)
            _copy_out(lp, n_rows, start, out)
        return
    block = _block_rows(n_components, n_features)
    xe = np.empty((n_features, block + _PAD), dtype=half_precisions.dtype)
    lp = np.empty((n_components, block + _PAD), dtype=half_precisions.dtype)
    everyone = np.arange(n_components)
    for start in range(0, X.shape[0], block):
        n_rows = min(block, X.shape[0] - start)
        _centred_columns(X, _ALL_ROWS, start, n_rows, centre, xe)
        _diag_log_prob_block(xe, n_rows, single_means, half_precisions, const, lp, everyone)
        _copy_out(lp, n_rows, start, out)


# ---------------------------------------------------------------- tied

@numba.njit(**_JIT)
def _tied_log_prob_block(xe, n_rows, prec_chol, means_white, const, lp, ye):
    """lp[k, n] = const_k - |y_n - m_k|^2 / 2, y_n = x_n L, m_k = mu_k L (L upper-triangular),
    in the precision of ``xe``, ``prec_chol``, ``means_white``, ``ye`` (D, block) and
    ``lp`` (float32 for float32 rows)."""
    n_components, n_features = means_white.shape
    for j in range(n_features):
        y = ye[j]
        for n in range(n_rows):
            y[n] = 0.0
        for i in range(j + 1):
            coefficient = prec_chol[i, j]
            x = xe[i]
            for n in range(n_rows):
                y[n] += coefficient * x[n]
    for k in range(n_components):
        row = lp[k]
        for n in range(n_rows):
            row[n] = 0.0
        for j in range(n_features):
            mean = means_white[k, j]
            y = ye[j]
            for n in range(n_rows):
                d = y[n] - mean
                row[n] += d * d
        for n in range(n_rows):
            row[n] = const[k] - 0.5 * row[n]


@numba.njit(**_JIT)
def _tied_moments_block(xt, n_rows, means, rt, first, m2, between, yt, vt, ut, own, row_weight):
    """Local coordinates (module docstring): y_n = x_n - mu_g(n), and
    first_k += sum_n r_nk y_n, T_kg += r_nk, upper(m2) += sum_n y_n u_n^T + v_n y_n^T
    with u_n = w_n y_n + v_n, mirrored by the caller."""
    n_components, n_features = means.shape
    for n in range(n_rows):  # g(n), the first of the largest, and w_n
        best = 0
        total = rt[0, n]
        for k in range(1, n_components):
            total += rt[k, n]
            if rt[k, n] > rt[best, n]:
                best = k
        own[n] = best
        row_weight[n] = total
        for k in range(n_components):
            between[k, best] += rt[k, n]
    for i in range(n_features):  # ut holds mu_g until the end
        for n in range(n_rows):
            ut[i, n] = means[own[n], i]
            yt[i, n] = xt[i, n] - ut[i, n]
            vt[i, n] = 0.0
    for k in range(n_components):
        r = rt[k]
        for i in range(n_features):
            mean = means[k, i]
            y, v, own_mean = yt[i], vt[i], ut[i]
            total = 0.0
            for n in range(n_rows):
                total += r[n] * y[n]
                v[n] += r[n] * (own_mean[n] - mean)
            first[k, i] += total
    for i in range(n_features):
        for n in range(n_rows):
            ut[i, n] = row_weight[n] * yt[i, n] + vt[i, n]
    _add_upper_products(yt, ut, n_rows, m2)
    _add_upper_products(vt, yt, n_rows, m2)


@numba.njit(**_JIT)
def _tied_statistics(X, rows, sample_weight, resp, centre, means, params, const, with_entropy,
                     nk, first, m2, between, totals):
    """``statistics`` of ``tied`` (module docstring)."""
    prec_chol, means_white = params
    n_components, n_features = means.shape
    block = _block_rows(n_components, n_features)
    single = X.itemsize < 8
    xt = np.empty((n_features, block + _PAD))
    xe = np.empty((n_features, block + _PAD if single else 0), dtype=X.dtype)
    ye = np.empty((n_features, block + _PAD), dtype=prec_chol.dtype)
    lp = np.empty((n_components, block + _PAD), dtype=prec_chol.dtype)
    work = np.empty((3, block + _PAD), dtype=prec_chol.dtype)
    yt = np.empty((n_features, block + _PAD))
    vt = np.empty((n_features, block + _PAD))
    ut = np.empty((n_features, block + _PAD))
    rt = np.empty((n_components, block + _PAD))
    own = np.empty(block, dtype=np.intp)
    row_weight = np.empty(block)
    n_swept = rows.size if rows.size else X.shape[0]
    for start in range(0, n_swept, block):
        n_rows = min(block, n_swept - start)
        _centred_columns(X, rows, start, n_rows, centre, xt)
        if resp.shape[0]:
            _given_responsibilities(resp, n_rows, sample_weight, start, rt, nk, totals)
        else:
            if single:
                _single_columns(xt, n_rows, xe)
                _tied_log_prob_block(xe, n_rows, prec_chol, means_white, const, lp, ye)
            else:
                _tied_log_prob_block(xt, n_rows, prec_chol, means_white, const, lp, ye)
            _weighted_responsibilities(lp, n_rows, sample_weight, start, with_entropy, nk,
                                       totals, work, rt)
        _tied_moments_block(xt, n_rows, means, rt, first, m2, between, yt, vt, ut, own,
                            row_weight)


@numba.njit(**_JIT)
def _tied_log_prob(X, centre, means, params, const, out):
    """``log_prob`` of ``tied`` (module docstring)."""
    prec_chol, means_white = params
    n_components, n_features = means.shape
    block = _block_rows(n_components, n_features)
    xe = np.empty((n_features, block + _PAD), dtype=prec_chol.dtype)
    ye = np.empty((n_features, block + _PAD), dtype=prec_chol.dtype)
    lp = np.empty((n_components, block + _PAD), dtype=prec_chol.dtype)
    for start in range(0, X.shape[0], block):
        n_rows = min(block, X.shape[0] - start)
        _centred_columns(X, _ALL_ROWS, start, n_rows, centre, xe)
        _tied_log_prob_block(xe, n_rows, prec_chol, means_white, const, lp, ye)
        _copy_out(lp, n_rows, start, out)


# ---------------------------------------------------------------- shared

# Rows per block: every buffer of a block holds at most this many float64
# (max(K, D) x block), so that a block's buffers stay in a core's L2 cache;
# the products' terms (D + S + 1, block) up to about twice as many: sized by
# their D + S + 1 instead, blocks of 127 rows took 1.04-1.12x the time of
# blocks of 256 at K 16 and K 64, D 64 (1-thread CPU time, float64 / float32).
_BLOCK_ELEMENTS = 2**14
# Padding of the rows of (K or D, block) buffers, in float64: with a row
# length of a multiple of 4 KiB (1024 rows), the elements of one column all
# fall in the same set of the L1 cache and evict each other (measured at D 16,
# K 8: the transposing copy of a block and the responsibilities several times
# slower).
_PAD = 8
# ... and no block makes padded rows of a multiple of this many float64 (1 KiB):
# every fourth row then shares the sets (measured at ``spherical`` K 16 D 64:
# blocks of 248 and 504 rows, padded to 2 and 4 KiB, took 1.8-2.1x the time of
# blocks of 240 or 256).
_ALIASED_ROW_ELEMENTS = 128
# Fewest and most rows per block: short blocks make the per-block work
# (and, for ``full``, BLAS calls) dominate, long ones gain nothing.
_BLOCK_ROWS = (32, 1024)


# ``full`` whitens in three products that skip the zero block of L_k
# (`_full_log_prob_block`) from this many features; fewer: one product.
_SPLIT_MIN_FEATURES = 32


# BLAS products replace the sweep of ``diag`` where the products' K (2 D + 1)
# is at least this, of ``spherical`` (and ``diag`` of one feature) where K (D + 2)
# is: the products take 4 K (D + S + 1) multiply-adds a row, the sweep about
# 7 K D at a lower rate. Measured (products / sweep, 1-thread CPU time of 50 000
# rows, float64 / float32, interleaved best of 11, load 1.3-2.1): ``diag`` 1.22 /
# 1.09 at K 4 D 4 (36), 1.04 / 1.11 at K 8 D 8 (136), 1.02 / 1.03 at K 8 D 16
# (264), 0.86 / 0.88 at K 16 D 16 (528), 0.77-0.90 / 0.70-1.05 at K 16 D 64
# (2064); ``spherical`` 0.96 / 1.01 at K 4 D 4 (24), 0.81 / 0.80 at K 8 D 8 (80),
# 0.68-0.75 / 0.75-0.81 at K 8 D 16 (144), 0.61-0.82 / 0.68-0.77 at K 16 D 64
# (1056); earlier, float64 ``diag`` 0.72-0.89 at K 64 D 64, 0.45-0.63 at K 256 D 128.
_PRODUCTS_MIN_SIZE = 512
_SPHERICAL_PRODUCTS_MIN_SIZE = 64
# ... for the components where eps |mu_k - c|_p^2, the relative error that
# expanding the squares about the centre c adds to the log-densities and to the
# moments (in the components' standard deviations), is at most this: 10 times
# below the 1e-12 to which the far-apart tests hold the statistics.
_PRODUCTS_MAX_ERROR = 1e-13
# float32 rows take the E-step's product in float32 (the moments' product stays
# float64) for the components with |mu_k - c|_p^2 <= this times D: expanded in
# float32, a log-density's
# rounding error grows from about eps32 |x - mu_k|_p^2 (the float32 sweep's, ~ eps32 D
# at a row of the component) by eps32 (|x - c|_p^2 + |mu_k - c|_p^2). Measured
# (K 16-64, D 64, offset 1e4, against the float64 kernel): the statistics' largest
# relative error equal to the float32 sweep's (2e-8-3e-8 for separate components,
# 1e-6-3e-6 for heavily overlapping ones) up to |mu_k - c|_p^2 = 25 D, 4x it at 54 D.
_SINGLE_PRODUCTS_MAX_DISTANCE = 16.0
# The other (far) components take the exact sums beside the products, which then
# compute their rows for nothing; where more than this share of the components is
# far, the sweep runs for all (chosen, not measured: the products path then costs
# at most the products plus half the sweep).
_PRODUCTS_MAX_FAR_SHARE = 0.5


@numba.njit(**_JIT)
def _block_rows(n_components, n_features):
    rows = _BLOCK_ELEMENTS // max(n_components, n_features, 1)
    rows = min(max(rows, _BLOCK_ROWS[0]), _BLOCK_ROWS[1])
    if (rows + _PAD) % _ALIASED_ROW_ELEMENTS == 0:
        rows -= _PAD
    return rows


@numba.njit(**_JIT)
def _copy_out(lp, n_rows, start, out):
    for n in range(n_rows):
        for k in range(lp.shape[0]):
            out[start + n, k] = lp[k, n]


def _full_parameters(means, prec_chol, dtype):
    """(A_k, B_k, C_k), the blocks of L_k = [[A_k, B_k], [0, C_k]] split at h = D // 2
    features (`_full_log_prob_block`), in the rows' precision (float32 rows: float32
    products); h = 0, C_k = L_k below ``_SPLIT_MIN_FEATURES`` features. The factors
    are upper-triangular, as scikit-learn's (`_covariance.log_det` takes their diagonals)."""
    prec_chol = np.asarray(prec_chol, dtype=dtype)
    n_features = prec_chol.shape[-1]
    split = n_features // 2 if n_features >= _SPLIT_MIN_FEATURES else 0
    return tuple(np.ascontiguousarray(part) for part in (
        prec_chol[:, :split, :split], prec_chol[:, :split, split:],
        prec_chol[:, split:, split:]))


def _tied_parameters(means, prec_chol, dtype):
    """(L, mu_k L) in the rows' precision: rows are whitened once, then compared with the
    whitened means."""
    prec_chol = np.asarray(prec_chol, dtype=np.float64)
    return (np.ascontiguousarray(prec_chol, dtype=dtype),
            np.ascontiguousarray(means @ prec_chol, dtype=dtype))


def _diag_parameters(means, prec_chol, dtype):
    """(-P / 2, means, products, far) for the E-step in the rows' precision: the
    precisions P = prec_chol^2, (K, D) for ``diag``, (K, 1) for ``spherical``, and
    the means, both rounded to ``dtype``; [p mu, -p / 2, -|mu|_p^2 / 2] of
    `_product_log_prob_block` in ``dtype``, and the components too far from the
    centre c, in their standard deviations, for the products to keep the digits of
    the rows' precision (float64: eps max_k |mu_k - c|_p^2 <= ``_PRODUCTS_MAX_ERROR``;
    float32: ``_SINGLE_PRODUCTS_MAX_DISTANCE``): those take the exact sums, their
    rows of the products 0. Products (0, 0) where the exact sweep runs for every
    component: small K (D + S + 1), or too many components far."""
    precisions = np.square(prec_chol, dtype=np.float64).reshape(len(prec_chol), -1)
    n_components, n_features = means.shape
    sweep = (np.ascontiguousarray(-0.5 * precisions, dtype=dtype),
             np.ascontiguousarray(means, dtype=dtype))
    distances = np.sum(precisions * np.square(means), axis=1)  # |mu_k - c|_p^2
    if dtype == np.float32:
        far = distances > _SINGLE_PRODUCTS_MAX_DISTANCE * n_features
    else:
        far = np.finfo(np.float64).eps * distances > _PRODUCTS_MAX_ERROR
    min_size = (_PRODUCTS_MIN_SIZE if precisions.shape[1] > 1
                else _SPHERICAL_PRODUCTS_MIN_SIZE)
    if (n_components * (n_features + precisions.shape[1] + 1) < min_size
            or np.count_nonzero(far) > _PRODUCTS_MAX_FAR_SHARE * n_components):
        return *sweep, np.empty((0, 0), dtype=dtype), np.empty(0, dtype=np.intp)
    products = np.hstack([precisions * means, -0.5 * precisions, -0.5 * distances[:, None]])
    products[far] = 0.0
    return *sweep, np.ascontiguousarray(products, dtype=dtype), np.flatnonzero(far)


def _mirrored(first, m2, between, means):
    """The sweeps summed the upper triangles: mirrored, m2 is exactly symmetric."""
    return first, np.triu(m2) + np.swapaxes(np.triu(m2, 1), -1, -2)


def _tied_finish(first, m2, between, means):
    """Mirrored, plus the between-component part: [k, g] mu_g - mu_k weighted by T_kg."""
    first, m2 = _mirrored(first, m2, between, means)
    apart = means[None, :, :] - means[:, None, :]
    first = first + np.einsum("kg,kgi->ki", between, apart)
    return first, m2 + np.einsum("kg,kgi,kgj->ij", between, apart, apart)


def _as_summed(first, m2, between, means):
    return first, m2


class Kernel(NamedTuple):
    """One covariance type's compiled sweeps and what they need of the parameters."""

    # (centred means, prec_chol, the rows' dtype) -> the tuple of arrays both sweeps take.
    parameters: Callable
    statistics: Callable
    log_prob: Callable
    # (first, m2, T, centred means) -> the sums about each mean, from what the sweep left.
    finish: Callable


KERNELS = {
    "full": Kernel(_full_parameters, _full_statistics, _full_log_prob, _mirrored),
    "tied": Kernel(_tied_parameters, _tied_statistics, _tied_log_prob, _tied_finish),
    "diag": Kernel(_diag_parameters, _diag_statistics, _diag_log_prob, _as_summed),
    "spherical": Kernel(_diag_parameters, _diag_statistics, _diag_log_prob, _as_summed),
}
