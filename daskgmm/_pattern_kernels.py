"""Numba kernels for rows with missing entries, one missingness pattern at a time.

Imported lazily by ``_missing`` (numba's compilation costs seconds, once per
machine thanks to ``cache=True``). Every kernel takes the rows of a block
sorted by pattern: ``observed`` (P, D) holds each pattern's observed
features, the rows of pattern p are ``starts[p]:starts[p + 1]``. Rows and
means are centred on one point near the data (see ``_missing``).

For pattern p, observed features o and missing ones m, and each covariance
Sigma of ``covariances`` (F of them: K, or 1 when shared by all components,
``tied``), `_factorise` computes once (Ghahramani & Jordan 1994, eq. 11-12)

    the lower Cholesky factor L of Sigma_oo,
    the regression Bt = Sigma_oo^-1 Sigma_om (its transpose is
    Sigma_mo Sigma_oo^-1), by two triangular solves,
    the Schur complement C = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om,

in O(|o|^3 + |o|^2 |m| + |o| |m|^2) operations per covariance. Each row of
the pattern then costs O(K |o|^2) for its marginal log-density
log N(x_o; mu_o, Sigma_oo) and O(K |o| |m|) for its conditional means
mu_m + Bt^T (x_o - mu_o): a block with P patterns costs O(P F D^3 + n K D^2).
"""

import numpy as np
from numba import njit

LOG_2PI = np.log(2 * np.pi)

# Responsibilities whose log (relative to the row's largest) is at most this
# are 0, as in ``_kernels``: below about -708 ``exp`` returns slow subnormals;
# what is dropped is below exp(-500) = 7e-218 of a row's weight.
LOG_RESP_FLOOR = -500.0


@njit(cache=True, nogil=True)
def _cholesky(matrix, rows, out):
    """Lower Cholesky factor of ``matrix[rows][:, rows]`` into ``out[:n, :n]``;
    returns the sum of the logs of its diagonal (half the log-determinant)."""
    n = rows.size
    half_log_det = 0.0
    for i in range(n):
        for j in range(i + 1):
            total = matrix[rows[i], rows[j]]
            for t in range(j):
                total -= out[i, t] * out[j, t]
            if i == j:
                if total <= 0.0:
                    raise ValueError("a covariance is not positive definite")
                out[i, i] = np.sqrt(total)
                half_log_det += np.log(out[i, i])
            else:
                out[i, j] = total / out[j, j]
    return half_log_det


@njit(cache=True, nogil=True)
def _factorise(cov, obs, mis, chol, bt, cond):
    """L of Sigma_oo into ``chol``, Bt = Sigma_oo^-1 Sigma_om into ``bt`` (|o|, |m|),
    and the Schur complement C into ``cond`` (|m|, |m|), exactly symmetric.

    Returns the sum of log diag(L).
    """
    n_obs, n_mis = obs.size, mis.size
    half_log_det = _cholesky(cov, obs, chol)
    for c in range(n_mis):
        for i in range(n_obs):  # L y = Sigma_om[:, c]
            total = cov[obs[i], mis[c]]
            for t in range(i):
                total -= chol[i, t] * bt[t, c]
            bt[i, c] = total / chol[i, i]
        for i in range(n_obs - 1, -1, -1):  # L^T b = y
            total = bt[i, c]
            for t in range(i + 1, n_obs):
                total -= chol[t, i] * bt[t, c]
            bt[i, c] = total / chol[i, i]
    for a in range(n_mis):
        for b in range(a + 1):
            total = cov[mis[a], mis[b]]
            for t in range(n_obs):
                total -= 0.5 * (cov[mis[a], obs[t]] * bt[t, b] + cov[mis[b], obs[t]] * bt[t, a])
            cond[a, b] = total
            cond[b, a] = total
    return half_log_det


@njit(cache=True, nogil=True)
def _pattern_factors(covariances, obs, mis, chols, bts, conds, half_log_dets):
    for f in range(covariances.shape[0]):
        half_log_dets[f] = _factorise(covariances[f], obs, mis, chols[f], bts[f], conds[f])


@njit(cache=True, nogil=True)
def _row_log_prob(x, obs, means, chols, half_log_dets, log_weights, dev_o, z, log_prob):
    """log w_k + log N(x_o; mu_ko, Sigma_k,oo) into ``log_prob`` (K,); the observed
    deviations x_o - mu_ko into ``dev_o`` (K, |o|)."""
    n_obs = obs.size
    shared = chols.shape[0] == 1
    for k in range(means.shape[0]):
        f = 0 if shared else k
        quad = 0.0
        for i in range(n_obs):
            dev_o[k, i] = x[obs[i]] - means[k, obs[i]]
            total = dev_o[k, i]
            for t in range(i):
                total -= chols[f, i, t] * z[t]
            z[i] = total / chols[f, i, i]
            quad += z[i] * z[i]
        log_prob[k] = log_weights[k] - half_log_dets[f] - 0.5 * (n_obs * LOG_2PI + quad)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _conditional_deviation(k, f, obs, mis, dev_o, bts, dev):
    """x_hat - mu_k for row deviations ``dev_o[k]``: observed entries as they
    are, missing ones Bt^T (x_o - mu_o), into ``dev`` (D,)."""
    for i in range(obs.size):
        dev[obs[i]] = dev_o[k, i]
    for a in range(mis.size):
        total = 0.0
        for i in range(obs.size):
            total += bts[f, i, a] * dev_o[k, i]
        dev[mis[a]] = total


@njit(cache=True, nogil=True)
def _buffers(n_factors, n_components, n_features):
    """Per-pattern factors (F of each) and per-row scratch of the kernels."""
    square = (n_factors, n_features, n_features)
    return (np.zeros(square), np.zeros(square), np.zeros(square), np.zeros(n_factors),
            np.empty((n_components, n_features)), np.empty(n_features),
            np.empty(n_components), np.empty(n_components), np.empty(n_features))


@njit(cache=True, nogil=True)
def pattern_statistics(xc, sample_weight, observed, starts, means, covariances, log_weights):
    """E-step and statistics of rows with missing entries (module docstring).

    Rows whose entries are all missing take no part. Returns ``(nk (K,),
    first (K, D), m2 (K, D, D), loglik, weight, entropy)``: first sums
    r (x_hat - mu_k), m2 sums r ((x_hat - mu_k)(x_hat - mu_k)^T + C_k), both
    about each component's own mean, so that they stay exact wherever it
    lies; entropy sums r log r; all weighted by ``sample_weight``.
    """
    n_features = xc.shape[1]
    n_components = means.shape[0]
    chols, bts, conds, half_log_dets, dev_o, z, log_prob, resp, dev = _buffers(
        covariances.shape[0], n_components, n_features)
    shared = covariances.shape[0] == 1
    nk = np.zeros(n_components)
    first = np.zeros((n_components, n_features))
    m2 = np.zeros((n_components, n_features, n_features))
    weight_of_pattern = np.zeros(n_components)
    loglik = weight = entropy = 0.0
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        mis = np.flatnonzero(~observed[p])
        if obs.size == 0:
            continue
        _pattern_factors(covariances, obs, mis, chols, bts, conds, half_log_dets)
        weight_of_pattern[:] = 0.0
        for row in range(starts[p], starts[p + 1]):
            _row_log_prob(xc[row], obs, means, chols, half_log_dets, log_weights, dev_o, z,
                          log_prob)
            log_norm, row_entropy = _responsibilities(log_prob, resp)
            w = sample_weight[row]
            loglik += w * log_norm
            weight += w
            entropy += w * row_entropy
            for k in range(n_components):
                rw = resp[k] * w
                if rw == 0.0:
                    continue
                _conditional_deviation(k, 0 if shared else k, obs, mis, dev_o, bts, dev)
                nk[k] += rw
                weight_of_pattern[k] += rw
                for i in range(n_features):
                    scaled = rw * dev[i]
                    first[k, i] += scaled
                    for j in range(i + 1):
                        m2[k, i, j] += scaled * dev[j]
        for k in range(n_components):
            f = 0 if shared else k
            for a in range(mis.size):
                for b in range(a + 1):
                    m2[k, mis[a], mis[b]] += weight_of_pattern[k] * conds[f, a, b]
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i):
                m2[k, j, i] = m2[k, i, j]
    return nk, first, m2, loglik, weight, entropy


@njit(cache=True, nogil=True)
def pattern_log_prob(xc, observed, starts, means, covariances, log_weights):
    """log w_k + log N(x_o; mu_ko, Sigma_k,oo) of every row, (n, K); a row with
    no observed entry gets ``log_weights``."""
    n_features = xc.shape[1]
    n_components = means.shape[0]
    chols, bts, conds, half_log_dets, dev_o, z, _, _, _ = _buffers(
        covariances.shape[0], n_components, n_features)
    out = np.empty((xc.shape[0], n_components))
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        half_log_dets[:] = 0.0
        _pattern_factors(covariances, obs, np.empty(0, np.int64), chols, bts, conds,
                         half_log_dets)
        for row in range(starts[p], starts[p + 1]):
            _row_log_prob(xc[row], obs, means, chols, half_log_dets, log_weights, dev_o, z,
                          out[row])
    return out


@njit(cache=True, nogil=True)
def pattern_impute(xc, observed, starts, means, covariances, log_weights, uniforms, normals):
    """Rows with their missing entries filled, (n, D).

    Without draws (``uniforms`` empty): sum_k p(k | x_o) (mu_km + Bt_k^T (x_o - mu_ko)).
    With them: component k drawn by the row's uniform from p(k | x_o), then
    x_m = mu_km + Bt_k^T (x_o - mu_ko) + chol(C_k) e_m for the row's standard
    normals e. A row with no observed entry gets p(k) = the weights.
    """
    n_features = xc.shape[1]
    n_components = means.shape[0]
    chols, bts, conds, half_log_dets, dev_o, z, log_prob, resp, dev = _buffers(
        covariances.shape[0], n_components, n_features)
    shared = covariances.shape[0] == 1
    draw = uniforms.size > 0
    cond_chols = np.zeros((covariances.shape[0], n_features, n_features))
    out = xc.copy()
    for p in range(observed.shape[0]):
        obs = np.flatnonzero(observed[p])
        mis = np.flatnonzero(~observed[p])
        if mis.size == 0:
            continue
        _pattern_factors(covariances, obs, mis, chols, bts, conds, half_log_dets)
        if draw:
            for f in range(covariances.shape[0]):
                _cholesky(conds[f], np.arange(mis.size), cond_chols[f])
        for row in range(starts[p], starts[p + 1]):
            _row_log_prob(xc[row], obs, means, chols, half_log_dets, log_weights, dev_o, z,
                          log_prob)
            _responsibilities(log_prob, resp)
            for a in range(mis.size):
                out[row, mis[a]] = 0.0
            if draw:
                k, cumulative = n_components - 1, 0.0
                for c in range(n_components):
                    cumulative += resp[c]
                    if uniforms[row] < cumulative:
                        k = c
                        break
                f = 0 if shared else k
                _conditional_deviation(k, f, obs, mis, dev_o, bts, dev)
                for a in range(mis.size):
                    noise = 0.0
                    for b in range(a + 1):
                        noise += cond_chols[f, a, b] * normals[row, mis[b]]
                    out[row, mis[a]] = means[k, mis[a]] + dev[mis[a]] + noise
                continue
            for k in range(n_components):
                if resp[k] == 0.0:
                    continue
                _conditional_deviation(k, 0 if shared else k, obs, mis, dev_o, bts, dev)
                for a in range(mis.size):
                    out[row, mis[a]] += resp[k] * (means[k, mis[a]] + dev[mis[a]])
    return out
