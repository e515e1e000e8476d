"""Initialisation strategies: the starting parameters of the models of a fit.

Starts are computed for a list of `Candidate` shapes (numbers of components
and covariance types) and ``n_init`` starts of each, in shared passes: one
sample of rows and one assignment pass serve every k-means start; one pass
draws every random start. Each candidate gets the start a standalone fit
with the same ``random_state`` would get: the random state after the shared
sample is copied for every number of components, and covariance types with
the same number of components share their k-means centres, as standalone
fits would.
"""

import copy
from typing import NamedTuple

import dask.array as da
import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.utils import check_random_state

from . import _graph, _kernels, _missing
from ._covariance import covariances_from_precision_cholesky, m2_shape
from ._em import cluster_failures, statistics
from ._mstep import Parameters, start_from_stats
from ._sklearn import precision_cholesky_from_precisions
from ._stats import Stats

# Rows (at most) and bytes (at most) drawn for k-means and k-means++ initialisation
# on Dask input.
KMEANS_SAMPLE_SIZE = 100_000
KMEANS_SAMPLE_BYTES = 2**27

# Under "marginalize" the initialisation uses the complete rows only when they are
# at least this share of the rows holding data (else every such row, filled): on
# the README's store (26 % complete rows) a start from the rows filled with column
# means lost a component (k-means found clusters of filled rows), one from the
# complete rows found the generating mixture.
COMPLETE_SHARE = 0.1


class Candidate(NamedTuple):
    """The shape of a model: its number of components and covariance type."""

    n_components: int
    covariance_type: str


def memory_starts(X, candidates, n_init, init_params, reg_covar, random_state, **user_init):
    """scikit-learn's own initialisation, for in-memory input.

    Returns ``{(candidate, init): Parameters}``; ``user_init`` holds
    ``weights_init``, ``means_init`` and ``precisions_init``.
    """
    base = check_random_state(random_state)
    starts = {}
    for candidate in candidates:
        stream = copy.deepcopy(base)
        for init in range(n_init):
            starts[candidate, init] = _sklearn_start(
                X, candidate, init_params, reg_covar, stream, user_init
            )
    return starts


def _sklearn_start(X, candidate, init_params, reg_covar, random_state, user_init):
    init = SklearnGaussianMixture(
        n_components=candidate.n_components,
        covariance_type=candidate.covariance_type,
        reg_covar=reg_covar,
        init_params=init_params,
        **user_init,
    )
    init._initialize_parameters(X, random_state)
    prec_chol = np.asarray(init.precisions_cholesky_, dtype=np.float64)
    covariances = getattr(init, "covariances_", None)
    if covariances is None:
        covariances = covariances_from_precision_cholesky(prec_chol, candidate.covariance_type)
    return Parameters(
        candidate.covariance_type,
        np.asarray(init.weights_, dtype=np.float64),
        np.asarray(init.means_, dtype=np.float64),
        np.asarray(covariances, dtype=np.float64),
        prec_chol,
    )


class _Responsibilities(SklearnGaussianMixture):
    """scikit-learn's initialisation, keeping the responsibilities it starts from."""

    def _initialize(self, X, resp):
        self.resp_ = resp


def memory_start_statistics(X, sample_weight, n_components, covariance_type, n_init,
                            init_params, random_state):
    """The statistics of scikit-learn's initial responsibilities, one per start.

    For in-memory input: the starts of scikit-learn's ``n_init`` loop for
    ``random_state`` (shared by its mixtures, variational ones included).
    """
    stream = check_random_state(random_state)
    stats = []
    for _ in range(n_init):
        init = _Responsibilities(n_components=n_components, init_params=init_params)
        init._initialize_parameters(X, stream)
        stats.append(_kernels.resp_statistics(X, sample_weight, init.resp_, covariance_type))
    return stats


# Starts whose responsibilities pick one row per component (the other rows have none).
POINT_STARTS = ("k-means++", "random_from_data")


def tied_as_sklearn(start, all_rows):
    """A tied start from ``POINT_STARTS`` with scikit-learn's scatter.

    scikit-learn's tied covariance estimate takes ``X.T @ X`` over every row,
    as if each row's responsibilities summed to 1, minus ``sum_k nk mu_k
    mu_k^T``; from a start that picks one row per component that is the
    second moment of every row about the origin. ``all_rows`` are the
    statistics of every row as one component in the ``"full"`` layout (see
    `data_moments`); the scatter is rebuilt from them, so that NumPy and Dask
    input start alike, where scikit-learn starts.
    """
    mean, nk = all_rows.mean[0], all_rows.nk[0]
    second_moment = all_rows.m2[0] + nk * np.outer(mean, mean)
    return start._replace(m2=second_moment - np.einsum("k,ki,kj->ij", start.nk, start.mean,
                                                       start.mean))


def with_user_init(start, covariance_type, weights_init, means_init, precisions_init):
    """``start`` (None: nothing) with parts replaced by the user's initial parameters."""
    parts = start._asdict() if start is not None else {}
    if weights_init is not None:
        parts["weights"] = np.asarray(weights_init, dtype=np.float64)
    if means_init is not None:
        parts["means"] = np.asarray(means_init, dtype=np.float64)
    if precisions_init is not None:
        parts["prec_chol"] = precision_cholesky_from_precisions(precisions_init, covariance_type)
        parts["covariances"] = covariances_from_precision_cholesky(
            parts["prec_chol"], covariance_type
        )
    parts["covariance_type"] = covariance_type
    return Parameters(**parts)


def class_start(data, labels, n_components, covariance_type, reg_covar, split_every, checkpoint):
    """The start of ``fit(X, y)``: each component from its class's statistics, in one pass."""
    lazy, layouts = _graph.label_statistics(data, labels, n_components, covariance_type,
                                            split_every)
    (stats,) = statistics(data, lazy, layouts, checkpoint)
    return start_from_stats(stats, reg_covar, covariance_type)


def _point_stats(points, covariance_type, n_samples):
    """Statistics of one unit-weight row per component (k-means++, random_from_data).

    The total weight is ``n_samples``, so that weights are ``1 / n_samples``
    as scikit-learn's.
    """
    n_components, n_features = points.shape
    m2 = np.zeros(m2_shape(n_components, n_features, covariance_type))
    return Stats(np.ones(n_components), points, m2, 0.0, float(n_samples))


def dask_starts(data, candidates, n_init, init_params, reg_covar, random_state, split_every,
                checkpoint):
    """Starts at scale, from a sample or one shared pass; never all rows in memory.

    Returns ``{(candidate, init): Parameters}`` (see the module docstring).
    """
    stats, _ = dask_start_statistics(data, candidates, n_init, init_params, random_state,
                                     split_every, checkpoint)
    return {(candidate, init): start_from_stats(start, reg_covar, candidate.covariance_type)
            for (candidate, init), start in stats.items()}


def dask_start_statistics(data, candidates, n_init, init_params, random_state, split_every,
                          checkpoint, moments=None):
    """The statistics of every start's initial responsibilities, at scale.

    Returns ``({(candidate, init): Stats}, all_rows)``. With ``moments`` (a
    covariance type), ``all_rows`` are the statistics of every row in one
    all-ones component, in that layout (the data's mean and scatter),
    computed in the pass of the starts ('kmeans', 'random') or in one pass
    of their own ('k-means++', 'random_from_data'); else None.
    """
    base = check_random_state(random_state)
    sizes = sorted({candidate.n_components for candidate in candidates})
    one_centre = [] if moments is None else [_one_centre(data, moments)]
    if init_params == "random":
        seeds = _per_size(base, sizes, lambda size, stream: stream.randint(2**31 - 1), n_init)
        starts = [(candidate, init) for candidate in candidates for init in range(n_init)]
        random_starts = [_graph.RandomStart(seeds[candidate.n_components][init], *candidate)
                         for candidate, init in starts]
        if moments is not None:  # one component: all responsibilities are 1
            random_starts.append(_graph.RandomStart(0, 1, moments))
        lazy, layouts = _graph.random_statistics(data, random_starts, split_every)
        return _with_moments(starts, statistics(data, lazy, layouts, checkpoint), moments)
    if init_params in ("random_from_data", "k-means++"):
        if init_params == "random_from_data":
            indices = _per_size(base, sizes, lambda size, stream: stream.choice(
                data.n_samples, size, replace=False), n_init)
            flat = np.concatenate([rows for size in sizes for rows in indices[size]])
            with cluster_failures(data, checkpoint):
                found = iter(np.split(_graph.take_rows(data, flat), np.cumsum(
                    [len(rows) for size in sizes for rows in indices[size]])[:-1]))
            points = {size: [next(found) for _ in range(n_init)] for size in sizes}
        else:
            _, sample = _sample(data, base, checkpoint)
            points = _per_size(base, sizes, lambda size, stream: kmeans_plusplus(
                sample, size, random_state=stream)[0], n_init)
        all_rows = None
        if moments is not None:
            all_rows = data_moments(data, moments, split_every, checkpoint)
        return {(candidate, init): _point_stats(points[candidate.n_components][init],
                                                candidate.covariance_type, data.n_samples)
                for candidate in candidates for init in range(n_init)}, all_rows
    _, sample = _sample(data, base, checkpoint)
    centres = _per_size(base, sizes, lambda size, stream: KMeans(
        n_clusters=size, n_init=1, random_state=stream).fit(sample).cluster_centers_, n_init)
    types = {size: tuple(candidate.covariance_type for candidate in candidates
                         if candidate.n_components == size) for size in sizes}
    centre_sets = [_graph.Centres(centres_of_init, types[size])
                   for size in sizes for centres_of_init in centres[size]]
    starts = [(Candidate(size, covariance_type), init) for size in sizes
              for init in range(n_init) for covariance_type in types[size]]
    lazy, layouts = _graph.nearest_statistics(data, centre_sets + one_centre, split_every)
    return _with_moments(starts, statistics(data, lazy, layouts, checkpoint), moments)


def _one_centre(data, moments):
    """One centre: its nearest-centre statistics are those of all rows."""
    return _graph.Centres(np.zeros((1, data.X.shape[1])), (moments,))


def data_moments(data, moments, split_every, checkpoint):
    """The statistics of all rows as one component, in the layout of ``moments``, in one pass."""
    lazy, layouts = _graph.nearest_statistics(data, [_one_centre(data, moments)], split_every)
    (all_rows,) = statistics(data, lazy, layouts, checkpoint)
    return all_rows


def _with_moments(starts, stats_list, moments):
    """``({start: Stats}, statistics of all rows or None)`` from one pass's statistics."""
    return dict(zip(starts, stats_list)), stats_list[-1] if moments is not None else None


def _per_size(base, sizes, draw, n_init):
    """``{size: [draw(size, stream) for each init]}``, each size from its own copy of ``base``."""
    draws = {}
    for size in sizes:
        stream = copy.deepcopy(base)
        draws[size] = [draw(size, stream) for _ in range(n_init)]
    return draws


def _sample(data, random_state, checkpoint):
    """A uniform sample of rows, read in one pass (all rows if few): ``(indices, rows)``."""
    n_samples = data.n_samples
    size = min(KMEANS_SAMPLE_SIZE, KMEANS_SAMPLE_BYTES // (8 * data.X.shape[1]))
    if n_samples <= size:
        indices = np.arange(n_samples)
    else:
        indices = np.unique(random_state.randint(0, n_samples, size))
    with cluster_failures(data, checkpoint):
        if data.nan_policy == "raise":
            sample = _graph.take_rows(data, indices)
        else:  # without the rows that take no part (see `initialisation_data`)
            indices, sample = sample_taking_part(data, indices)
    _missing.check_values(sample, "raise")  # a NaN here: nan_policy='raise' (see _missing)
    return indices, sample


def class_starts(data, X_memory, classes, n_components, covariance_type, n_init, init_params,
                 reg_covar, random_state, split_every, checkpoint):
    """The starts of a classifier's class models, each within its class's rows.

    Parameters
    ----------
    data : _graph.RowData
        With ``class_codes``, the index in ``classes`` of every row.
    X_memory : ndarray or None
        The rows when in memory.
    classes : ndarray
        The class labels (named in errors).

    Returns
    -------
    list of list of Parameters
        ``starts[code]``: the ``n_init`` starts of class ``classes[code]``
        (one with one component: the class statistics, in one pass for all
        classes). In memory: scikit-learn's start on the class's rows, as a
        standalone fit on them with the same ``random_state``. Dask: one
        sample pass serves every class; k-means centres from each class's
        sampled rows and one assignment pass for all classes, or (other
        ``init_params``) scikit-learn's start on the class's sampled rows.
    """
    codes = range(len(classes))
    if n_components == 1:
        centre_sets = [_graph.Centres(np.zeros((1, data.X.shape[1])), (covariance_type,))
                       for _ in codes]
        return [[start] for start in _assigned_starts(
            data, centre_sets, codes, reg_covar, covariance_type, split_every, checkpoint)]
    candidate = Candidate(n_components, covariance_type)
    if X_memory is not None:
        (row_codes,) = _graph.compute(data.class_codes, scheduler=data.scheduler)
        sampled, streams = X_memory, [random_state] * len(classes)
    else:
        base = check_random_state(random_state)
        indices, sampled = _sample(data, base, checkpoint)
        (row_codes,) = _graph.compute(data.class_codes[indices], scheduler=data.scheduler)
        streams = [copy.deepcopy(base) for _ in codes]  # each class as if alone
    rows_of = [sampled[row_codes == code] for code in codes]
    for label, rows in zip(classes.tolist(), rows_of):
        if len(rows) < n_components:
            raise ValueError(
                f"Class {label!r} has {len(rows)} rows in the sample of {len(sampled)} rows "
                f"drawn to initialise, fewer than n_components_per_class={n_components}; "
                "use fewer components per class."
            )
    if X_memory is not None or init_params != "kmeans":
        return [[starts[candidate, init] for init in range(n_init)] for starts in (
            memory_starts(rows, [candidate], n_init, init_params, reg_covar, stream)
            for rows, stream in zip(rows_of, streams))]
    centre_sets = [
        _graph.Centres(KMeans(n_clusters=n_components, n_init=1, random_state=stream)
                       .fit(rows).cluster_centers_, (covariance_type,))
        for rows, stream in zip(rows_of, streams) for _ in range(n_init)
    ]
    starts = _assigned_starts(data, centre_sets, [code for code in codes for _ in range(n_init)],
                              reg_covar, covariance_type, split_every, checkpoint)
    return [starts[code * n_init:(code + 1) * n_init] for code in codes]


def _assigned_starts(data, centre_sets, set_codes, reg_covar, covariance_type, split_every,
                     checkpoint):
    """One start per centre set, from the rows of its class (``set_codes``) assigned to
    their nearest centre, all in one pass."""
    lazy, layouts = _graph.nearest_statistics(data, centre_sets, split_every, set_codes)
    return [start_from_stats(stats, reg_covar, covariance_type)
            for stats in statistics(data, lazy, layouts, checkpoint)]


# ------------------------------------------------- initialisation on data with NaN


def _filled(x, fill):
    """Block ``x`` with its NaN replaced by the column values ``fill``."""
    return np.where(np.isnan(x), fill.astype(x.dtype), x)


def _column_means(data, X_memory):
    """Means of every column's observed entries, and whether the initialisation
    uses the complete rows only (``"omit"``, or `COMPLETE_SHARE`).

    In memory, from ``X_memory``; else in one pass. A column with no
    observed entry is a ValueError.
    """
    if X_memory is not None:
        missing = np.isnan(X_memory)
        counts, sums = (~missing).sum(axis=0), np.where(missing, 0, X_memory).sum(axis=0)
        n_complete = (~missing.any(axis=1)).sum()
        n_with_data = (~missing.all(axis=1)).sum()
    else:
        missing = da.isnan(data.X)
        counts, sums, n_complete, n_with_data = _graph.compute(
            (~missing).sum(axis=0), da.where(missing, 0, data.X).sum(axis=0, dtype=np.float64),
            (~missing.any(axis=1)).sum(), (~missing.all(axis=1)).sum(),
            scheduler=data.scheduler)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(
            f"X has no observed value in column(s) {empty.tolist()}: nothing can be learnt "
            "about them under any nan_policy; drop them."
        )
    if data.nan_policy == "omit" and n_complete == 0:
        raise ValueError(
            "Every row of X holds NaN, so nan_policy='omit' leaves no row to fit; use "
            "nan_policy='marginalize' to fit the observed entries."
        )
    complete_only = data.nan_policy == "omit" or n_complete >= COMPLETE_SHARE * n_with_data
    return sums / counts, complete_only


def initialisation_data(data, X_memory, labels=None, needs_data=True):
    """What an initialisation sees under ``data.nan_policy``: ``(data, X_memory, labels)``.

    The start uses the complete rows only under ``"omit"``, and under
    ``"marginalize"`` when they are at least `COMPLETE_SHARE` of the rows
    holding data; else every row holding data, with each NaN replaced by
    the mean of its column's observed entries. The column means and the
    counts cost one pass over Dask input, made only when ``needs_data``.
    The rows left out are removed in memory (from the rows and the class
    ``labels``, a Dask array aligned with them), so that under ``"omit"``
    the start is that of a fit on the complete rows; for Dask input they
    get weight 0 in the initialisation's passes, and `sample_taking_part`
    leaves them out of the k-means sample. So k-means, k-means++ and
    ``random_from_data`` work on the rows kept, ``random`` is unchanged,
    and class starts are the class statistics of the rows kept.
    """
    if data.nan_policy == "raise" or not needs_data:
        return data, X_memory, labels
    fill, complete_only = _column_means(data, X_memory)
    if X_memory is not None:
        missing = np.isnan(X_memory)
        kept = ~(missing.any(axis=1) if complete_only else missing.all(axis=1))
        weights = None if data.sample_weight is None else data.sample_weight.compute()[kept]
        X_memory = _filled(X_memory[kept], fill)
        if labels is not None:
            labels = labels[kept]
        view = _graph.from_numpy(X_memory, weights)
        if data.class_codes is not None:
            view = view._replace(class_codes=data.class_codes[kept].rechunk((view.X.chunks[0],)))
        return view._replace(nan_policy=data.nan_policy), X_memory, labels
    missing = data.X.map_blocks(np.isnan, dtype=bool)
    dropped = missing.any(axis=1) if complete_only else missing.all(axis=1)
    taking_part = (~dropped).astype(np.float64)
    weights = taking_part if data.sample_weight is None else taking_part * data.sample_weight
    return data._replace(X=data.X.map_blocks(_filled, fill, dtype=data.X.dtype),
                         sample_weight=weights), X_memory, labels


def sample_taking_part(data, indices):
    """The rows at sorted ``indices`` of an initialisation's data, without those of
    weight 0 (`initialisation_data`), read together in one pass: ``(indices, rows)``."""
    rows, weights = _graph.compute(data.X[indices], data.sample_weight[indices],
                                   scheduler=data.scheduler)
    kept = weights > 0
    return indices[kept], np.asarray(rows[kept], dtype=np.float64)
