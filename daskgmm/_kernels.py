"""Per-block NumPy kernels: E-step and partial sufficient statistics.

Everything here works on one in-memory block of rows and knows nothing of
Dask. Rows are first centred on one point ``c`` near the data (the weighted
mean of the component means), so that data far from the origin loses no
digits; a block is then processed in sub-blocks of rows small enough for the
temporaries to stay in cache. The statistics a block returns are centred on
the block's own weighted means (see ``_stats``).

Each covariance type has one class below, which gives the Mahalanobis
distances of rows to every component and the responsibility-weighted second
moments. ``full`` takes the deviations of the rows from every component's
mean (K, rows, D) and whitens them in one batched product, keeping its
second moments exact about each mean. ``tied``, ``diag`` and ``spherical``
work on the centred rows (rows, D) alone, through matrix products whose
width is K, expanding (x - mu)' L (x - mu) = x'Lx - 2 x'L mu + mu'L mu.

Responsibilities are held component-major, shape (K, rows).
"""

import functools
import sys
import threading

import numpy as np
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import assert_all_finite
from threadpoolctl import threadpool_info

from ._covariance import m2_shape, weighted_outer
from ._stats import Stats

LOG_2PI = np.log(2 * np.pi)

# Elements of the largest temporary of a sub-block: (K, rows, D) for ``full``,
# (rows, max(K, D)) for the others; the large ones live in ``_Workspace``
# buffers. Sub-blocks must be long enough for NumPy calls to outweigh the
# Python between them, which holds the GIL on threads, and short enough to
# stay in cache (measured in benchmarks/RESULTS.md: for ``full``, 2048 rows
# best at D 16, K 8 and 256 at D 64, K 16; for the others, 2**19 elements
# were slower, on threads too).
_SUB_BLOCK_ELEMENTS = {"full": 2**18, "rows": 2**17}

# Multiply-adds of one matrix product over rows. OpenBLAS runs products of
# up to 10**6 through small-matrix kernels on the architectures below (it
# picks SkylakeX on Zen 4), 1.5-2.4x faster on these tall, narrow shapes
# than its general path; ``tied``, ``diag`` and ``spherical`` then cut a
# sub-block's products into pieces of that size, all in one batched
# ``np.matmul`` call (one GIL release, however many pieces). Elsewhere
# (OpenBLAS's Haswell kernels on Zen 3, measured: the pieces 5-16 % slower,
# or another BLAS) the products stay whole.
_SMALL_PRODUCT = 10**6
_SMALL_MATRIX_ARCHITECTURES = {"skylakex", "cooperlake", "sapphirerapids"}

# Below this many features the per-component products of ``full`` are not
# cut in halves. From it on, they skip the zero block of the triangular
# prec_chol and the mirrored block of the symmetric moments: 3 of 4 half-size
# blocks (measured: -23 % per product at D 64, slower at D 16).
_FEW_FEATURES = 32

# Each thread's last ``_Workspace``.
_THREAD = threading.local()

# Responsibilities whose log (relative to the row's largest) is at most this
# are set to 0 without calling ``exp`` on it: below about -708 ``exp`` returns
# subnormals at 5-40x the cost (well-separated components made whole fits
# 2.5x slower), and products with them are slow too. What it drops is below
# exp(-500) = 7e-218 of a row's weight.
_LOG_RESP_FLOOR = -500.0

# Rows per block of the random generator in ``random_resp``: the random
# responsibilities of a row depend on its index only, not on the chunking.
_RANDOM_ROWS = 4096


def _column_major(coefficients):
    """(K, D) coefficients in column-major order, for ``coefficients @ rows.T``.

    OpenBLAS's small-matrix kernel runs that product 1.6x faster than
    with row-major coefficients (measured at D 64, K 16: 51 against 31
    GFLOP/s per core).
    """
    return np.asfortranarray(coefficients)


class _Full:
    """One upper-triangular precision Cholesky factor (D, D) per component."""

    @staticmethod
    def product_width(n_components, n_features):
        return n_features

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(-1)

    @staticmethod
    def coefficients(means, prec_chol, const):
        half = means.shape[1] // 2
        if means.shape[1] < _FEW_FEATURES:
            return means, prec_chol, None, const[:, None]
        # The blocks of prec_chol that the halved product uses, contiguous.
        halves = (np.ascontiguousarray(prec_chol[:, :half, :half]),
                  np.ascontiguousarray(prec_chol[:, :, half:]))
        return means, prec_chol, halves, const[:, None]

    @staticmethod
    def in_float32(coefficients):
        """The coefficients for whitening in float32 (see `em_statistics`)."""
        means, prec_chol, halves, const = coefficients
        halves = None if halves is None else tuple(h.astype(np.float32) for h in halves)
        return means, prec_chol.astype(np.float32), halves, const

    @staticmethod
    def log_prob(xc, coefficients, workspace):
        means, prec_chol, halves, const = coefficients
        xd = workspace.deviations(xc, means)
        single = prec_chol.dtype == np.float32
        if single:  # the float64 deviations, exact, rounded once to float32
            xd = workspace.in_float32(xd)
        y = workspace.scratch(xd)
        if halves is None:
            np.matmul(xd, prec_chol, out=y)
        else:  # the lower-left block of prec_chol is zero
            upper_left, right = halves
            half = upper_left.shape[-1]
            np.matmul(xd[..., :half], upper_left, out=y[..., :half])
            np.matmul(xd, right, out=y[..., half:])
        log_prob = workspace.by_component(xc, means, 0)
        if single:
            squares = np.einsum("kni,kni->kn", y, y, out=workspace.in_float32(log_prob))
            np.multiply(squares, -0.5, out=log_prob)
        else:
            np.einsum("kni,kni->kn", y, y, out=log_prob)
            log_prob *= -0.5
        log_prob += const
        return log_prob

    @staticmethod
    def add_moments(moments, xc, resp, workspace):
        """Add sum_n r_nk (x_n - mu_k) and sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T, exactly."""
        means = moments.means
        xd = workspace.deviations(xc, means)
        rxd = np.multiply(xd, resp[:, :, None], out=workspace.scratch(xd))
        moments.first += rxd.sum(axis=1)
        m2 = workspace.moments(means)
        n_features = means.shape[1]
        if n_features < _FEW_FEATURES:
            moments.m2 += np.matmul(rxd.transpose(0, 2, 1), xd, out=m2)
            return
        # Symmetric: the upper-left, upper-right and lower-right blocks, then a mirror.
        first, second = slice(None, n_features // 2), slice(n_features // 2, None)
        for rows, columns in ((first, first), (first, second), (second, second)):
            np.matmul(rxd[..., rows].transpose(0, 2, 1), xd[..., columns],
                      out=m2[:, rows, columns])
        np.copyto(m2[:, second, first], m2[:, first, second].transpose(0, 2, 1))
        moments.m2 += m2


class _Rows:
    """The kinds whose E-step works on the rows alone, through products of width K.

    Their second moments are taken in local coordinates, so that they are
    exact however far the components lie from each other: each row is
    referred to the mean of its most responsible component, ref_n = mu_g(n),
    y_n = x_n - ref_n, and for every component k

        sum_n r_nk (x_n - mu_k)^2 = sum_n r_nk y_n^2
                                    + 2 sum_n o_nk (ref_n - mu_k) y_n
                                    + sum_g T_kg (mu_g - mu_k)^2,

    where o is ``resp`` without each row's own component (for which
    ref_n - mu_k = 0) and T_kg sums o_nk over the rows of component g: the
    between-component part is added once per block, from T. Every term is
    small where the result is small, unlike x^2 - 2 x mu + mu^2 about one
    centre, which loses (distance / spread)^2 * eps.
    """

    @classmethod
    def add_moments(cls, moments, xc, resp, workspace):
        """Add this sub-block's first and second moments and its T."""
        means = moments.means
        top = _first_largest(resp, workspace.by_component_flags(resp))
        own = top.astype(np.float64)
        indices = np.dot(np.arange(means.shape[0], dtype=np.float64), own).astype(np.intp)
        ref = np.take(means, indices, axis=0, out=workspace.local(xc))
        other = workspace.by_component(xc, means, 1)
        np.multiply(resp, ~top, out=other)
        moments.between += np.dot(other, own.T)
        y = np.subtract(xc, ref, out=workspace.row_scratch(xc))
        moments.first += sum_times_rows(resp, y, workspace.piece)
        cls.add_local(moments, y, ref, resp, other, workspace)


def _first_largest(resp, flags):
    """One-hot (K, rows) flags of each row's largest responsibility, the first of ties."""
    is_top = np.equal(resp, np.maximum.reduce(resp, axis=0), out=flags)
    seen = is_top[0].copy()
    for row in is_top[1:]:
        np.logical_and(row, ~seen, out=row)
        seen |= row
    return is_top


class _Tied(_Rows):
    """One precision Cholesky factor (D, D) shared by all components."""

    @staticmethod
    def product_width(n_components, n_features):
        return max(n_components, n_features)

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(np.diagonal(prec_chol)).sum()

    @staticmethod
    def coefficients(means, prec_chol, const):
        """With y = x L and m_k = mu_k L: log p = m_k . y - |y|^2 / 2 + c_k - |m_k|^2 / 2."""
        means_y = means @ prec_chol
        const = const - 0.5 * np.einsum("ki,ki->k", means_y, means_y)
        return _column_major(means_y), prec_chol, const[:, None]

    @staticmethod
    def log_prob(xc, coefficients, workspace):
        means_y, prec_chol, const = coefficients
        y = workspace.row_scratch(xc)
        times_rows(prec_chol.T, xc, y.T, workspace.piece)
        log_prob = times_rows(means_y, y, workspace.by_component(xc, means_y, 0),
                              workspace.piece)
        log_prob -= 0.5 * np.einsum("ni,ni->n", y, y)
        log_prob += const
        return log_prob

    @staticmethod
    def add_local(moments, y, ref, resp, other, workspace):
        """Pooled: with w_n = sum_k r_nk and v_n = sum_k o_nk (ref_n - mu_k),
        sum_n w_n y_n y_n^T + V + V^T, where V = sum_n v_n y_n^T."""
        n_rows, n_features = y.shape
        weighted = np.multiply(y, resp.sum(axis=0)[:, None],
                               out=workspace.columns(0, n_rows, n_features))
        away = np.multiply(ref, other.sum(axis=0)[:, None],
                           out=workspace.columns(1, n_rows, n_features))
        away -= np.dot(other.T, moments.means)
        cross = sum_times_rows(away.T, y, workspace.piece)
        moments.m2 += sum_times_rows(weighted.T, y, workspace.piece) + cross + cross.T


class _Diag(_Rows):
    """A vector of precision square roots (D,) per component.

    The E-step is two products of width K: with precisions P (K, D),
    log p = x (P mu)^T - x^2 P^T / 2 + c_k - sum(P mu^2) / 2.
    """

    @staticmethod
    def product_width(n_components, n_features):
        return n_components

    @staticmethod
    def log_det(prec_chol, n_features):
        return np.log(prec_chol).sum(-1)

    @staticmethod
    def squares(xc, out):
        """The squared features that the quadratic term multiplies, (rows, D)."""
        return np.square(xc, out=out)

    @staticmethod
    def quadratic(precisions):
        return -0.5 * precisions

    @staticmethod
    def precisions(prec_chol, n_features):
        return np.square(prec_chol)

    @classmethod
    def coefficients(cls, means, prec_chol, const):
        precisions = np.broadcast_to(cls.precisions(prec_chol, means.shape[1]), means.shape)
        linear = precisions * means
        const = const - 0.5 * np.einsum("ki,ki->k", linear, means)
        return _column_major(linear), _column_major(cls.quadratic(precisions)), const[:, None]

    @classmethod
    def log_prob(cls, xc, coefficients, workspace):
        linear, quadratic, const = coefficients
        log_prob = times_rows(linear, xc, workspace.by_component(xc, linear, 0), workspace.piece)
        log_prob += cls.quadratic_term(quadratic, workspace.squares(xc),
                                       workspace.by_component(xc, linear, 1), workspace.piece)
        log_prob += const
        return log_prob

    @staticmethod
    def quadratic_term(quadratic, squares, out, piece):
        """-P/2 (K, D) times the squared features, (K, rows)."""
        return times_rows(quadratic, squares, out, piece)

    @staticmethod
    def pairwise(a, b, out):
        """a_i * b_i per feature, (n, D) for a and b (n, D)."""
        return np.multiply(a, b, out=out)

    @staticmethod
    def width(n_features):
        """Columns of ``pairwise``."""
        return n_features

    @staticmethod
    def column_sums(left, columns, piece):
        """left (K, rows) @ columns (rows, D)."""
        return sum_times_rows(left, columns, piece)

    @classmethod
    def add_local(cls, moments, y, ref, resp, other, workspace):
        """sum_n r_nk y_n^2 + 2 (sum_n o_nk ref_n y_n - mu_k sum_n o_nk y_n), per feature."""
        n_rows, n_features = y.shape
        width, piece = cls.width(n_features), workspace.piece
        squares = cls.pairwise(y, y, workspace.columns(0, n_rows, width))
        local = cls.column_sums(resp, squares, piece)
        towards = cls.column_sums(other, cls.pairwise(ref, y, workspace.columns(1, n_rows, width)),
                                  piece)
        towards -= cls.pairwise(moments.means, sum_times_rows(other, y, piece),
                                np.empty_like(towards))
        moments.m2 += (local + 2 * towards).reshape(moments.m2.shape)


class _Spherical(_Diag):
    """One precision square root per component; moments summed over features."""

    @staticmethod
    def log_det(prec_chol, n_features):
        return n_features * np.log(prec_chol)

    @staticmethod
    def squares(xc, out):
        """Squared row norms, (rows, 1)."""
        norms = out.reshape(-1)[: xc.shape[0], None]
        np.einsum("ni,ni->n", xc, xc, out=norms[:, 0])
        return norms

    @staticmethod
    def quadratic(precisions):
        return -0.5 * precisions[:, :1]

    @staticmethod
    def precisions(prec_chol, n_features):
        return np.square(prec_chol)[:, None]

    @staticmethod
    def quadratic_term(quadratic, norms, out, piece):
        """-P/2 (K, 1) times the squared norms: a product of depth 1, in one call.

        ``np.matmul`` does not hand depth-1 products to BLAS (5-7x slower here).
        """
        return np.dot(quadratic, norms.T, out=out)

    @staticmethod
    def pairwise(a, b, out):
        """a . b per row, (n, 1) for a and b (n, D)."""
        np.einsum("ni,ni->n", a, b, out=out[:, 0])
        return out

    @staticmethod
    def width(n_features):
        return 1

    @staticmethod
    def column_sums(left, columns, piece):
        """left (K, rows) @ columns (rows, 1): ``np.matmul`` would not use BLAS."""
        return np.dot(left, columns[:, 0])[:, None]


COVARIANCE_KINDS = {"full": _Full, "tied": _Tied, "diag": _Diag, "spherical": _Spherical}


@functools.lru_cache(maxsize=1)
def _small_matrix_kernels():
    """Whether the BLAS that NumPy uses has OpenBLAS's small-matrix kernels."""
    return any(
        info.get("internal_api") == "openblas"
        and str(info.get("architecture")).lower() in _SMALL_MATRIX_ARCHITECTURES
        for info in threadpool_info()
    )


def _piece_rows(kind, n_components, n_features):
    """Rows of one product within OpenBLAS's small-matrix kernels (all rows where none)."""
    if not _small_matrix_kernels():
        return sys.maxsize
    return max(16, _SMALL_PRODUCT // (n_features * kind.product_width(n_components, n_features)))


def _sub_block_rows(kind, n_components, n_features):
    if kind is _Full:
        return max(16, _SUB_BLOCK_ELEMENTS["full"] // (n_components * n_features))
    rows = max(16, _SUB_BLOCK_ELEMENTS["rows"] // max(n_components, n_features))
    piece = _piece_rows(kind, n_components, n_features)
    return rows - rows % piece if piece <= rows else rows


def _pieces(rows, count):
    """``rows`` (n, m), n a multiple of ``count``, viewed as (count, n / count, m)."""
    return rows.reshape(count, -1, rows.shape[1])


def _batches(n_rows, piece):
    """(rows, number of pieces) of the batched products that cover ``n_rows``."""
    whole = n_rows - n_rows % piece
    if whole:
        yield slice(0, whole), whole // piece
    if whole < n_rows:
        yield slice(whole, n_rows), 1


def times_rows(coefficients, rows, out, piece):
    """``out`` (M, n) = coefficients (M, D) @ rows.T, rows (n, D), in products of ``piece`` rows."""
    if rows.shape[0] <= piece:
        return np.matmul(coefficients, rows.T, out=out)
    for batch, count in _batches(rows.shape[0], piece):
        np.matmul(coefficients, _pieces(rows[batch], count).transpose(0, 2, 1),
                  out=_pieces(out[:, batch].T, count).transpose(0, 2, 1))
    return out


def sum_times_rows(left, rows, piece):
    """left (M, n) @ rows (n, D), as a sum of products of ``piece`` rows."""
    if rows.shape[0] <= piece:
        return np.dot(left, rows)
    total = 0
    for batch, count in _batches(rows.shape[0], piece):
        products = np.matmul(_pieces(left[:, batch].T, count).transpose(0, 2, 1),
                             _pieces(rows[batch], count))
        total = total + products.sum(axis=0)
    return total


def _sub_blocks(kind, n_samples, n_components, n_features):
    step = _sub_block_rows(kind, n_components, n_features)
    for start in range(0, n_samples, step):
        yield slice(start, min(start + step, n_samples))


class _Workspace:
    """Buffers reused by every sub-block, and by every block on one thread.

    Workers started by ``distributed`` set ``MALLOC_TRIM_THRESHOLD_``, under
    which every temporary over 128 KiB is a fresh ``mmap`` whose pages fault
    in again (measured in benchmarks/RESULTS.md); reusing buffers avoids that.
    A thread keeps the workspace of the last shapes it saw, a few MB.
    """

    def __init__(self, kind, n_components, n_features):
        self.kind = kind
        rows = _sub_block_rows(kind, n_components, n_features)
        self.piece = _piece_rows(kind, n_components, n_features)
        self.rows = (np.empty(rows * n_features), np.empty(rows * n_features))
        self.local_rows = None
        self.wide = [None, None]
        self.flags = None
        self.top_flags = None
        self.singles = None
        self.components = (np.empty(rows * n_components), np.empty(rows * n_components))
        self.per_component = None
        self.per_component_moments = None
        self.last_deviations = None
        self.last_squares = None

    @classmethod
    def of_thread(cls, kind, n_components, n_features):
        """This thread's workspace for these shapes, made on first use."""
        key = (kind, n_components, n_features)
        if getattr(_THREAD, "workspace_key", None) != key:
            _THREAD.workspace, _THREAD.workspace_key = cls(*key), key
        return _THREAD.workspace

    def centred(self, x, centre):
        """``x - centre`` in a buffer."""
        return np.subtract(x, centre, out=self.rows[0][: x.size].reshape(x.shape))

    def by_component(self, xc, means, index):
        """Buffer ``index`` (0 or 1) shaped (K, rows) for rows ``xc``."""
        size = means.shape[0] * xc.shape[0]
        return self.components[index][:size].reshape(means.shape[0], xc.shape[0])

    def row_scratch(self, like):
        """A second buffer of rows, shaped like ``like``."""
        return self.rows[1][: like.size].reshape(like.shape)

    def by_component_flags(self, like):
        """A boolean buffer shaped like ``like`` (K, rows), apart from ``negligible``'s."""
        if self.top_flags is None or self.top_flags.size < like.size:
            self.top_flags = np.empty(like.size, dtype=bool)
        return self.top_flags[: like.size].reshape(like.shape)

    def negligible(self, like):
        """A boolean buffer shaped like ``like`` (K, rows)."""
        if self.flags is None or self.flags.size < like.size:
            self.flags = np.empty(like.size, dtype=bool)
        return self.flags[: like.size].reshape(like.shape)

    def local(self, like):
        """A third buffer of rows, shaped like ``like``."""
        if self.local_rows is None:
            self.local_rows = np.empty_like(self.rows[0])
        return self.local_rows[: like.size].reshape(like.shape)

    def columns(self, index, n_rows, width):
        """Buffer ``index`` (0 or 1) shaped (n_rows, width), kept for the largest seen."""
        size = n_rows * width
        if self.wide[index] is None or self.wide[index].size < size:
            self.wide[index] = np.empty(size)
        return self.wide[index][:size].reshape(n_rows, width)

    def squares(self, xc):
        """The kind's squared features of rows ``xc``, computed once per rows."""
        last = self.last_squares
        if last is not None and last[0] is xc:
            return last[1]
        squares = self.kind.squares(xc, self.row_scratch(xc))
        self.last_squares = (xc, squares)
        return squares

    def deviations(self, xc, means):
        """``xc - means[k]`` for every component, (K, rows, D), computed once per rows."""
        last = self.last_deviations
        if last is not None and last[0] is xc and last[1] is means:
            return last[2]
        shape = (means.shape[0], *xc.shape)
        if self.per_component is None:
            size = means.shape[0] * _sub_block_rows(self.kind, *means.shape) * means.shape[1]
            self.per_component = (np.empty(size), np.empty(size))
        xd = np.subtract(xc[None, :, :], means[:, None, :],
                         out=self.per_component[0][: np.prod(shape)].reshape(shape))
        self.last_deviations = (xc, means, xd)
        return xd

    def moments(self, means):
        """A (K, D, D) buffer."""
        if self.per_component_moments is None:
            self.per_component_moments = np.empty((means.shape[0], means.shape[1], means.shape[1]))
        return self.per_component_moments

    def scratch(self, like):
        """A second (K, rows, D) buffer, shaped and typed like ``like``."""
        if like.dtype == np.float32:
            return self.singles[1][: like.size].reshape(like.shape)
        return self.per_component[1][: like.size].reshape(like.shape)

    def in_float32(self, values):
        """``values`` (K, rows, D) or (K, rows) rounded to float32, in a buffer."""
        if self.singles is None:
            self.singles = tuple(np.empty(self.per_component[0].size, dtype=np.float32)
                                 for _ in range(3))
        buffer = self.singles[0 if values.ndim == 3 else 2]
        out = buffer[: values.size].reshape(values.shape)
        np.copyto(out, values, casting="same_kind")
        return out


def check_finite(X):
    """Raise scikit-learn's ValueError if X holds NaN or infinity."""
    assert_all_finite(X, input_name="X")


def _coefficients(kind, weights, means_c, prec_chol, log_weights=None):
    """What ``kind.log_prob`` needs of the parameters, computed once per block.

    ``kind.log_prob`` then gives, for centred rows, the (K, rows) array of
    log(pi_k) + log N(x | mu_k, Sigma_k), or ``log_weights`` instead of log(pi_k).
    """
    n_features = means_c.shape[1]
    if log_weights is None:
        log_weights = np.log(weights)
    const = log_weights + kind.log_det(prec_chol, n_features) - 0.5 * n_features * LOG_2PI
    return kind.coefficients(means_c, prec_chol, const)


class _Moments:
    """Running responsibility sums and moments of centred rows.

    Rows are centred on ``centre`` (D,); ``means`` (K, D) are the components'
    centred means, about which the moments are taken: ``first`` sums
    r_nk (x_n - mu_k) and ``m2`` the second moments in the layout of
    ``Stats.m2``. For the kinds of ``_Rows``, ``first`` and ``m2`` are in
    local coordinates until ``stats`` adds the between-component part from
    ``between`` (T).
    """

    def __init__(self, covariance_type, centre, means):
        self.covariance_type = covariance_type
        self.kind = COVARIANCE_KINDS[covariance_type]
        self.centre = centre
        self.means = means
        n_components = means.shape[0]
        self.nk = np.zeros(n_components)
        self.first = np.zeros(means.shape)
        self.m2 = np.zeros(m2_shape(*means.shape, covariance_type))
        self.between = None if self.kind is _Full else np.zeros((n_components, n_components))
        self.loglik = 0.0
        self.weight = 0.0
        self.entropy = 0.0

    def add(self, xc, resp, workspace):
        """Add centred rows ``xc`` (rows, D) with responsibilities ``resp`` (K, rows)."""
        self.nk += resp.sum(axis=1)
        self.kind.add_moments(self, xc, resp, workspace)

    def stats(self, relative=False):
        """The block's statistics, re-centred on its weighted means.

        With ``relative``, the means are given relative to ``centre + means``
        (see `reference_means`): blocks that share them merge their means as
        small offsets, exactly, however far the data lie from the origin.
        """
        first, m2 = self.first, self.m2
        if self.between is not None:
            # [k, g]: mu_g - mu_k, weighted by T_kg.
            apart = self.means[None, :, :] - self.means[:, None, :]
            first = first + np.einsum("kg,kgi->ki", self.between, apart)
            pooled = self.covariance_type == "tied"
            m2 = m2 + weighted_outer(self.between, apart, self.covariance_type).sum(
                axis=0 if pooled else 1)
        has_weight = self.nk > 0
        safe_nk = np.where(has_weight, self.nk, 1)[:, None]
        offset = np.where(has_weight[:, None], first / safe_nk, 0)
        return Stats(
            self.nk,
            offset if relative else self.centre + self.means + offset,
            m2 - weighted_outer(self.nk, offset, self.covariance_type),
            np.float64(self.loglik),
            np.float64(self.weight),
            np.float64(self.entropy),
        )


def _rows(X, sample_weight, rows):
    x = np.asarray(X[rows], dtype=np.float64)
    if sample_weight is None:
        return x, None
    return x, np.asarray(sample_weight[rows], dtype=np.float64)


def _centre(weights, means):
    """A point near the data: the weighted mean of the component means."""
    return weights @ means / weights.sum()


def reference_means(weights, means):
    """The points that `em_statistics`' means are relative to: ``means`` as
    the kernels round them, ``c + (means - c)`` for the centre c."""
    centre = _centre(weights, means)
    return centre + (means - centre)


def em_statistics(X, sample_weight, weights, means, prec_chol, covariance_type,
                  log_weights=None):
    """E-step and partial statistics of a block of rows, in one go.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        float32 rows are whitened in float32 for ``full``, its costliest
        product, from deviations from the means taken in float64; everything
        else, and all of the other kinds (whose E-step expands about one
        centre, too inexact in float32), runs in float64.
    sample_weight : ndarray of shape (n_rows,) or None
        Finite and non-negative (checked by the caller).
    weights, means, prec_chol : current mixture parameters
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    log_weights : ndarray of shape (n_components,), default=None
        Per-component log constants used instead of ``log(weights)`` (a
        variational mixture's); with them the block's ``sum r log r`` is
        computed too, else it is 0 at no cost.

    Returns
    -------
    Stats
        Responsibility sums, weighted means relative to
        ``reference_means(weights, means)``, block-centred moments, the
        block's sum of ``log p(x)`` and, with ``log_weights``, of
        ``sum_k r log r`` (both weighted by ``sample_weight``).
    """
    kind = COVARIANCE_KINDS[covariance_type]
    centre = _centre(weights, means)
    means_c = means - centre
    with_entropy = log_weights is not None
    coefficients = _coefficients(kind, weights, means_c, prec_chol, log_weights)
    if X.dtype == np.float32 and kind is _Full:
        coefficients = _Full.in_float32(coefficients)
    moments = _Moments(covariance_type, centre, means_c)
    workspace = _Workspace.of_thread(kind, *means.shape)
    ones = np.ones(means.shape[0])
    for rows in _sub_blocks(kind, X.shape[0], *means.shape):
        x, sw = _rows(X, sample_weight, rows)
        xc = workspace.centred(x, centre)
        log_prob = kind.log_prob(xc, coefficients, workspace)
        # logsumexp over components. On these shapes np.maximum.reduce and
        # np.dot run on two threads at once better than np.max and np.sum,
        # which mostly hold the GIL (measured: 1.2-1.6x against 1.0-1.1x).
        top = np.maximum.reduce(log_prob, axis=0)
        log_prob -= top
        negligible = np.less_equal(log_prob, _LOG_RESP_FLOOR, out=workspace.negligible(log_prob))
        np.maximum(log_prob, _LOG_RESP_FLOOR, out=log_prob)
        if with_entropy:  # buffer 1 is free between log_prob and add_moments
            shifted = workspace.by_component(xc, means, 1)
            np.copyto(shifted, log_prob)
        resp = np.exp(log_prob, out=log_prob)
        np.copyto(resp, 0.0, where=negligible)
        total = np.dot(ones, resp)
        resp /= total
        log_prob_norm = np.log(total, out=total)
        # sum_k r log r = sum_k r (shifted log prob) - log(total), as sum_k r = 1.
        row_entropy = (np.dot(ones, np.multiply(shifted, resp, out=shifted)) - log_prob_norm
                       if with_entropy else None)
        log_prob_norm += top
        if sw is None:
            moments.loglik += log_prob_norm.sum()
            moments.weight += x.shape[0]
            if with_entropy:
                moments.entropy += row_entropy.sum()
        else:
            resp *= sw
            moments.loglik += np.dot(log_prob_norm, sw)
            moments.weight += sw.sum()
            if with_entropy:
                moments.entropy += np.dot(row_entropy, sw)
        moments.add(xc, resp, workspace)
    if not np.isfinite(moments.loglik):
        check_finite(X)
    return moments.stats(relative=True)


def _weighted_resp(resp, sample_weight):
    """Responsibilities (rows, K) times the rows' weights, as (K, rows)."""
    return resp.T if sample_weight is None else resp.T * sample_weight


def resp_statistics(X, sample_weight, resp, covariance_type):
    """Partial statistics of a block of rows for given responsibilities ``resp`` (n_rows, K).

    The moments are taken about the components' weighted means in the
    block, found first by a pass over the block (rows centred on its first
    row), so that they are exact wherever the components lie.
    """
    kind = COVARIANCE_KINDS[covariance_type]
    n_components = resp.shape[1]
    shape = (n_components, X.shape[1])
    centre = np.asarray(X[0] if X.shape[0] else np.zeros(X.shape[1]), dtype=np.float64)
    sums, nk = np.zeros(shape), np.zeros(n_components)
    workspace = _Workspace.of_thread(kind, *shape)
    for rows in _sub_blocks(kind, X.shape[0], *shape):
        x, sw = _rows(X, sample_weight, rows)
        r = _weighted_resp(resp[rows], sw)
        nk += r.sum(axis=1)
        sums += r @ workspace.centred(x, centre)
    means = np.where(nk[:, None] > 0, sums / np.where(nk > 0, nk, 1)[:, None], 0)
    moments = _Moments(covariance_type, centre, means)
    for rows in _sub_blocks(kind, X.shape[0], *shape):
        x, sw = _rows(X, sample_weight, rows)
        moments.weight += x.shape[0] if sw is None else sw.sum()
        moments.add(workspace.centred(x, centre), _weighted_resp(resp[rows], sw), workspace)
    stats = moments.stats()
    if not np.isfinite(stats.m2).all():
        check_finite(X)
    return stats


def one_hot(labels, n_components):
    """Responsibilities (n_rows, K) that put each row in its labelled component."""
    return np.eye(n_components)[labels]


def nearest_resp(X, centres):
    """Hard responsibilities of the nearest centre (Euclidean), as k-means."""
    check_finite(X)
    if X.shape[0] == 0:
        return np.zeros((0, centres.shape[0]))
    return one_hot(pairwise_distances_argmin(X, centres), centres.shape[0])


def random_resp(start, stop, n_components, seed):
    """Uniform random responsibilities, rows normalised, for rows start:stop.

    Each row's values depend only on ``seed`` and its global index.
    """
    first = start // _RANDOM_ROWS
    last = (stop - 1) // _RANDOM_ROWS
    parts = [
        np.random.default_rng([seed, block]).random((_RANDOM_ROWS, n_components))
        for block in range(first, last + 1)
    ]
    resp = np.concatenate(parts)[start - first * _RANDOM_ROWS : stop - first * _RANDOM_ROWS]
    return resp / resp.sum(axis=1, keepdims=True)


def estimate_weighted_log_prob(X, weights, means, prec_chol, covariance_type, log_weights=None):
    """log(pi_k) + log N(x | mu_k, Sigma_k) for every row and component, (n, K).

    ``log_weights``, when given, replaces log(pi_k) (see `em_statistics`).
    """
    kind = COVARIANCE_KINDS[covariance_type]
    centre = _centre(weights, means)
    means_c = means - centre
    coefficients = _coefficients(kind, weights, means_c, prec_chol, log_weights)
    out = np.empty((X.shape[0], means.shape[0]))
    workspace = _Workspace.of_thread(kind, *means.shape)
    for rows in _sub_blocks(kind, X.shape[0], *means.shape):
        xc = workspace.centred(np.asarray(X[rows], dtype=np.float64), centre)
        out[rows] = kind.log_prob(xc, coefficients, workspace).T
    return out
