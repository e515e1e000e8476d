"""The Dask graphs: one task per row chunk, then a tree reduction.

Every pass over the data has the same shape: each row chunk becomes one task
that runs a per-block kernel (E-step and statistics, or statistics of given
responsibilities) and returns its packed partial statistics; a
``dask.array.reduction`` then merges them pairwise-in-order with fan-in
``split_every``. With few chunks there is no tree: their statistics come to
the client, which merges them. Either way the grouping follows block order,
so the result does not depend on which task finishes first. Small
parameters travel inside the tasks, large ones as one graph key per pass.
"""

import math
import os
from concurrent.futures import CancelledError
from functools import lru_cache, partial
from typing import NamedTuple, Optional

import dask
import dask.array as da
import numpy as np
from dask.sizeof import sizeof
from distributed import KilledWorker
from threadpoolctl import ThreadpoolController

from . import _kernels, _missing, _progress
from ._stats import Layout, Layouts

# 'auto' caching persists Dask input taking at most this share of the workers' memory.
CACHE_FRACTION = 0.5

# Times a distributed task is retried after an error (a transient failure of a worker).
RETRIES = 2

# Priority of the reads ahead of incremental EM (`read_ahead`): below the
# default 0 of every pass's tasks, so that a read only takes an idle thread.
READ_AHEAD_PRIORITY = -1

# Errors of a cluster that can no longer run the fit (workers or scheduler gone).
CLUSTER_ERRORS = (OSError, TimeoutError, CancelledError, KilledWorker)

# n_blocks='auto' of incremental EM uses at most this many blocks (see `block_bounds`).
MAX_AUTO_BLOCKS = 16

# n_blocks='auto' puts this many row chunks in a block (see `block_bounds`).
AUTO_CHUNKS_PER_BLOCK = 4

# In-memory input is cut into row chunks of at most this many bytes.
_NUMPY_CHUNK_BYTES = 32 * 2**20

# The statistics of at most this many chunks, and this many bytes, come to the
# client and merge there, without a tree: no task then waits for statistics
# from another worker. On a 2-worker LocalCluster a pass over 8 chunks took
# 75-79 ms against 97-98 ms through dask's tree (fan-in 4; medians).
_CLIENT_MERGE_CHUNKS = 32
_CLIENT_MERGE_BYTES = 2**24

# Parameters up to this size travel inside every task; larger ones as one graph
# key that each worker fetches once. A key held by one worker makes it a
# candidate for every task, and the scheduler then moves whole chunks to even
# out its estimate of queued work (seen as 5 / 3 splits of 8 chunks).
_INLINE_BYTES = 2**20


# Dask's optimisation on local threads: no low-level fusion. A fused task orders
# its inner graph (``dask.order``) each time it runs, and holds the GIL meanwhile;
# without fusion, and with the few chunks' statistics computed as one array (one
# collection, not one Delayed per chunk, see `_reduce`), a pass over 20 chunks of
# in-memory Dask input took 0.27-0.30 ms of CPU per chunk less than the 0.51-0.55 ms
# before (2 threads, diag and spherical, D 16 K 8, 200 rows a chunk; loaded machine).
_LOCAL_OPTIMIZATION = {"optimization.fuse.active": False}


class RowData(NamedTuple):
    """Validated input: rows chunked any way, features in one chunk.

    ``class_codes`` (ints aligned with the rows of ``X``), when given, let
    the statistics of a model be restricted to the rows of one class (see
    `em_statistics`).
    """

    X: da.Array
    sample_weight: Optional[da.Array]
    scheduler: Optional[str]
    class_codes: Optional[da.Array] = None
    # Whether the arrays are held in memory by the scheduler (`persist`).
    persisted: bool = False
    # What a NaN in X means to the initialisations (see ``_init``; the E-step's
    # is the model family's, ``_missing.NAN_POLICIES``).
    nan_policy: str = "raise"

    @property
    def n_samples(self):
        return self.X.shape[0]


def from_numpy(X, sample_weight=None, row_chunks=None):
    """Wrap in-memory arrays, processed on local threads, in ``row_chunks`` (sizes).

    By default, in chunks of equal rows, at least one per CPU.
    """
    n_samples, n_features = X.shape
    if row_chunks is None:
        n_chunks = max(os.cpu_count() or 1, math.ceil(X.nbytes / _NUMPY_CHUNK_BYTES))
        row_chunks = max(1, math.ceil(n_samples / n_chunks))
    X = da.from_array(X, chunks=(row_chunks, n_features), name=False)
    if sample_weight is not None:
        sample_weight = da.asarray(sample_weight).rechunk((X.chunks[0],))
    return RowData(X, sample_weight, "threads")


def from_dask(X, sample_weight=None):
    """Rechunk a Dask array (lazily) so that each row chunk holds all features."""
    X = X.rechunk({1: -1})
    if sample_weight is not None:
        sample_weight = da.asarray(sample_weight).rechunk((X.chunks[0],))
    return RowData(X, sample_weight, None)


def row_block(data, start, stop):
    """The rows ``start:stop`` of ``data`` (lazily; whole chunks when at chunk boundaries)."""
    def rows(values):
        return None if values is None else values[start:stop]

    return data._replace(X=data.X[start:stop], sample_weight=rows(data.sample_weight),
                         class_codes=rows(data.class_codes))


def compute(*lazy, scheduler=None):
    """Compute on ``scheduler`` (None: the active one).

    On local threads BLAS gets one thread per task; on a distributed
    cluster a task that fails is retried ``RETRIES`` times. Inside
    `daskgmm.show_progress` every call draws a progress bar.
    """
    get = dask.base.get_scheduler(scheduler=scheduler, collections=lazy)
    if get is dask.threaded.get:
        with _blas_threads().limit(limits=1, user_api="blas"), _progress.local_bar(), \
                dask.config.set(_LOCAL_OPTIMIZATION):
            return dask.compute(*lazy, scheduler=scheduler)
    if on_cluster(scheduler):
        if _progress.enabled():
            return _progress.compute_on_client(_active_client(), lazy, retries=RETRIES)
        return dask.compute(*lazy, retries=RETRIES)
    with _progress.local_bar():
        return dask.compute(*lazy, scheduler=scheduler)


@lru_cache(maxsize=1)
def _blas_threads():
    """The BLAS libraries loaded (found once: looking them up costs milliseconds)."""
    return ThreadpoolController()


def _active_client():
    try:
        from distributed import default_client

        return default_client()
    except ValueError:
        return None


def on_cluster(scheduler=None):
    """Whether computing on ``scheduler`` (None: the active one) goes to a distributed client."""
    client = _active_client()
    return client is not None and dask.base.get_scheduler(scheduler=scheduler) == client.get


def n_threads(scheduler=None):
    """Threads that run tasks on ``scheduler`` (None: the active one)."""
    if on_cluster(scheduler):
        workers = _active_client().scheduler_info(n_workers=-1)["workers"].values()
        return sum(worker["nthreads"] for worker in workers)
    get = dask.base.get_scheduler(scheduler=scheduler)
    if get is dask.local.get_sync:
        return 1
    return os.cpu_count() or 1


def cluster_memory():
    """Total memory limit of the active distributed client's workers."""
    workers = _active_client().scheduler_info(n_workers=-1)["workers"].values()
    return sum(worker["memory_limit"] for worker in workers)


def persist(data):
    """The data persisted on the active scheduler (the workers, or local memory)."""
    X, sample_weight, class_codes = dask.persist(data.X, data.sample_weight, data.class_codes)
    return data._replace(X=X, sample_weight=sample_weight, class_codes=class_codes,
                         persisted=True)


def read_ahead(data):
    """``data`` being read into the memory of the distributed workers, behind their work.

    The reads run at `READ_AHEAD_PRIORITY`, below every pass's tasks, so that
    they fill the threads that would wait (for the client between two blocks
    of incremental EM) without delaying the block under way. Elsewhere (local
    schedulers, data persisted already) returns ``data`` as it is.
    """
    if data.persisted or not on_cluster(data.scheduler):
        return data
    arrays = {name: value for name, value in data._asdict().items()
              if isinstance(value, da.Array)}
    read = _active_client().persist(list(arrays.values()), priority=READ_AHEAD_PRIORITY,
                                    retries=RETRIES)
    return data._replace(**dict(zip(arrays, read)), persisted=True)


def _packed(block_stats, layout, x, *args):
    if x.shape[0] == 0:  # an empty chunk: no weight, merges as nothing
        return np.zeros((1, layout.size))
    return layout.pack(block_stats(x, *args))[None, :]


def _unweighted(block_stats, x, *args):
    return block_stats(x, None, *args)


def _keep(x, axis, keepdims):
    return x


def _merge(layout, x, axis, keepdims):
    merged = layout.merge_rows(x)
    return merged[None, :] if keepdims else merged


def _reduce(data, block_stats, layout, args, split_every):
    """Lazy packed statistics of all rows, for `merged`: a list of Dask
    collections, each of whose values is a (rows, size) array of packed
    statistics.

    ``block_stats(x, sample_weight, *args)`` gives the statistics of a chunk.
    ``args`` are ``(value, index)`` pairs for ``da.blockwise``: index ``"i"``
    for per-row Dask arrays aligned with ``data.X``, ``None`` for a Delayed
    handed whole to every task. Plain values are better bound into
    ``block_stats``: every blockwise argument costs dask time per task when
    it builds the graph.
    """
    arrays = [data.X, "ij"]
    if data.sample_weight is None:
        block_stats = partial(_unweighted, block_stats)
    else:
        arrays += [data.sample_weight, "i"]
    per_block = da.blockwise(
        partial(_packed, block_stats, layout),
        "ij",
        *arrays,
        *[item for pair in args for item in pair],
        adjust_chunks={"i": 1, "j": layout.size},
        dtype=np.float64,
        meta=np.empty((0, 0)),
        concatenate=True,
    )
    n_chunks = per_block.numblocks[0]
    if n_chunks <= _CLIENT_MERGE_CHUNKS and 8 * n_chunks * layout.size <= _CLIENT_MERGE_BYTES:
        if not on_cluster(data.scheduler):
            return [per_block]  # on local threads one collection (`_LOCAL_OPTIMIZATION`)
        return list(per_block.to_delayed().ravel())
    return [da.reduction(
        per_block,
        chunk=_keep,
        combine=partial(_merge, layout),
        aggregate=partial(_merge, layout),
        axis=0,
        keepdims=True,
        dtype=np.float64,
        meta=np.empty((0, 0)),
        split_every=split_every,
        concatenate=True,
        name="gmm-statistics",
    )]


def merged(parts, layout):
    """The ``Stats`` of all rows, one per model, from the values of `_reduce`'s collections."""
    return layout.absolute(layout.unpack(layout.merge_rows(np.concatenate(parts))))


def _for_every_task(block_stats, name, value):
    """``block_stats`` given ``value`` as its argument ``name`` in every task.

    Returns ``(block_stats, args)`` for `_reduce`: ``value`` bound into the
    function when small, else passed as one Delayed key.
    """
    if sizeof(value) <= _INLINE_BYTES:
        return partial(block_stats, **{name: value}), []
    return block_stats, [(dask.delayed(value, pure=True, traverse=False), None)]


def _each_on_its_class(block_stats, x, sample_weight, class_codes, items, classes):
    """``block_stats(x, sample_weight, items)``, each item given only the rows
    whose class code is its entry of ``classes``."""
    stats = []
    for item, code in zip(items, classes):
        rows = class_codes == code
        stats += block_stats(x[rows], None if sample_weight is None else sample_weight[rows],
                             [item])
    return stats


def _per_task(data, block_stats, name, items, classes):
    """``(block_stats, args)`` for `_reduce` of ``block_stats(x, sample_weight, items)``.

    ``items`` is ``block_stats``' argument ``name``. With ``classes`` (one
    class code per item), each item sees only the rows of its class
    (``data.class_codes``); None: all rows.
    """
    if classes is None:
        return _for_every_task(block_stats, name, items)
    block, args = _for_every_task(
        partial(_each_on_its_class, block_stats, classes=tuple(classes)), "items", items
    )
    return block, [(data.class_codes, "i"), *args]


def _em_block(x, sample_weight, models, family):
    return [family.statistics(x, sample_weight, model) for model in models]


def em_statistics(data, models, family, split_every=None, classes=None):
    """Lazy statistics of one EM iteration of every model, all in the same pass.

    ``models`` is a list of ``_mstep.Parameters``, of any numbers of
    components and covariance types, whose E-step on a block is the model
    family's (``family.statistics``, see ``_family``). With ``classes``, one class code per
    model, each model sees only the rows of its class in
    ``data.class_codes`` (its responsibilities, log-likelihood and weight
    are those of its class's rows). Returns ``(lazy, Layouts)``, ``lazy``
    as for `merged`.
    """
    n_features = data.X.shape[1]
    layouts = Layouts(tuple(
        Layout(model.n_components, n_features, model.covariance_type,
               _kernels.reference_means(model.weights, model.means))
        for model in models))
    models = [model._replace(covariances=None) for model in models]  # not needed by the E-step
    block, args = _per_task(data, partial(_em_block, family=family), "models", models,
                            classes)
    return _reduce(data, block, layouts, args, split_every), layouts


def _label_block(x, sample_weight, labels, n_components, covariance_type):
    _missing.check_values(x, "raise")  # initialisations see NaN only under nan_policy='raise'
    resp = _kernels.one_hot(labels, n_components)
    return [_kernels.resp_statistics(x, sample_weight, resp, covariance_type)]


def label_statistics(data, labels, n_components, covariance_type, split_every=None):
    """Lazy statistics of hard assignments ``labels`` (Dask ints aligned with rows)."""
    layouts = Layouts((Layout(n_components, data.X.shape[1], covariance_type),))
    labels = labels.rechunk((data.X.chunks[0],))
    block = partial(_label_block, n_components=n_components, covariance_type=covariance_type)
    return _reduce(data, block, layouts, [(labels, "i")], split_every), layouts


class Centres(NamedTuple):
    """A set of k-means centres, and the covariance types whose statistics it starts."""

    centres: np.ndarray
    covariance_types: tuple


def _nearest_block(x, sample_weight, centre_sets):
    _missing.check_values(x, "raise")  # as in `_label_block`
    stats = []
    for centre_set in centre_sets:
        resp = _kernels.nearest_resp(x, centre_set.centres)
        stats += [_kernels.resp_statistics(x, sample_weight, resp, covariance_type)
                  for covariance_type in centre_set.covariance_types]
    return stats


def nearest_statistics(data, centre_sets, split_every=None, classes=None):
    """Lazy statistics of the assignment of every row to its nearest centre.

    ``centre_sets`` is a list of `Centres`; each row is assigned once per
    set, and the statistics come once per set and covariance type, in that
    order, all in one pass. With ``classes`` (one class code per set), a
    set sees only the rows of its class, as in `em_statistics`.
    """
    n_features = data.X.shape[1]
    layouts = Layouts(tuple(
        Layout(len(centre_set.centres), n_features, covariance_type)
        for centre_set in centre_sets for covariance_type in centre_set.covariance_types
    ))
    block, args = _per_task(data, _nearest_block, "centre_sets", centre_sets, classes)
    return _reduce(data, block, layouts, args, split_every), layouts


class RandomStart(NamedTuple):
    """Uniform random responsibilities drawn from ``seed`` for one model."""

    seed: int
    n_components: int
    covariance_type: str


def _random_block(x, sample_weight, row_index, random_starts):
    _missing.check_values(x, "raise")  # as in `_label_block`
    start = int(row_index[0])
    return [
        _kernels.resp_statistics(
            x,
            sample_weight,
            _kernels.random_resp(start, start + x.shape[0], random.n_components, random.seed),
            random.covariance_type,
        )
        for random in random_starts
    ]


def random_statistics(data, random_starts, split_every=None):
    """Lazy statistics of uniform random responsibilities, one set per `RandomStart`."""
    layouts = Layouts(tuple(Layout(random.n_components, data.X.shape[1], random.covariance_type)
                            for random in random_starts))
    row_index = da.arange(data.n_samples, chunks=(data.X.chunks[0],))
    block = partial(_random_block, random_starts=tuple(random_starts))
    return _reduce(data, block, layouts, [(row_index, "i")], split_every), layouts


def take_rows(data, indices):
    """The rows at ``indices`` (sorted or not), read from their chunks only."""
    order = np.argsort(indices)
    rows = compute(data.X[np.asarray(indices)[order]], scheduler=data.scheduler)[0]
    out = np.empty_like(rows, dtype=np.float64)
    out[order] = rows
    return out


def map_rows(X, func, n_columns=None, dtype=np.float64):
    """Lazily apply ``func`` to every row chunk: (n, n_columns) or (n,) out."""
    if n_columns is None:
        return X.map_blocks(func, drop_axis=1, dtype=dtype, meta=np.empty((0,), dtype))
    return X.map_blocks(
        func, chunks=(X.chunks[0], (n_columns,)), dtype=dtype, meta=np.empty((0, 0), dtype)
    )


def block_bounds(data, n_blocks):
    """The ``(start, stop)`` rows of the blocks of incremental EM.

    Blocks are contiguous groups of whole row chunks, as equal in numbers of
    chunks as can be. ``n_blocks='auto'`` depends on the chunks only, never
    on the cluster, so that the same data gives the same fit anywhere:
    ``AUTO_CHUNKS_PER_BLOCK`` chunks per block, at least 2 blocks and at
    most ``MAX_AUTO_BLOCKS``. One block would be batch EM (with the free
    energy for its bound): a ValueError, as is X in one row chunk.
    """
    chunks = data.X.chunks[0]
    n_chunks = len(chunks)
    if n_blocks == 1:
        raise ValueError(
            "n_blocks=1 is batch EM, not incremental EM: use algorithm='batch', or "
            "n_blocks >= 2."
        )
    if n_blocks == "auto":
        if n_chunks < 2:
            raise ValueError(
                "X has 1 row chunk; incremental EM needs at least 2 blocks of whole row "
                "chunks: rechunk X along rows (X.rechunk({0: rows})), or use algorithm='batch'."
            )
        n_blocks = max(2, min(MAX_AUTO_BLOCKS, n_chunks // AUTO_CHUNKS_PER_BLOCK))
    elif n_blocks > n_chunks:
        raise ValueError(
            f"n_blocks={n_blocks} exceeds the {n_chunks} row chunks of X: a block is a group "
            "of whole chunks. Use fewer blocks or rechunk X along rows."
        )
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    cuts = [int(edges[(block * n_chunks) // n_blocks]) for block in range(n_blocks + 1)]
    return tuple(zip(cuts[:-1], cuts[1:]))


def blocks(data, in_memory, n_blocks):
    """`block_bounds` of the data of a fit; in memory, cut by `in_memory_chunks`."""
    return block_bounds(data, in_memory_blocks(data.n_samples, n_blocks) if in_memory
                        else n_blocks)


def in_memory_blocks(n_samples, n_blocks):
    """Blocks of incremental EM on in-memory input: ``MAX_AUTO_BLOCKS`` for 'auto'."""
    return min(MAX_AUTO_BLOCKS if n_blocks == "auto" else n_blocks, n_samples)


def in_memory_chunks(n_samples, n_blocks):
    """Row chunk sizes for in-memory input of incremental EM in ``n_blocks`` blocks.

    The blocks hold equal numbers of rows whatever the machine, so that the
    fit does not depend on it; each is cut into as many chunks, two per CPU
    (fewer for tiny data), for the threads.
    """
    n_blocks = in_memory_blocks(n_samples, n_blocks)
    per_block = max(1, min(2 * (os.cpu_count() or 1), n_samples // n_blocks))
    return tuple(len(piece) for block in np.array_split(np.arange(n_samples), n_blocks)
                 for piece in np.array_split(block, per_block))


def cached(data, cache, report):
    """The data persisted for the fit, or as it is when streaming.

    ``report(message)`` says which (verbose output). ``cache`` is the
    estimators' parameter: ``'auto'`` persists on the workers of a
    distributed cluster when the data takes at most ``CACHE_FRACTION`` of
    their memory; ``True`` persists on the active
    scheduler; ``False`` streams.
    """
    if data.scheduler is not None:  # in memory already
        return data
    size = f"{data.X.nbytes / 2**30:.2f} GiB"
    if cache is False:
        report(f"cache: off, streaming the data ({size}) from its source every iteration")
        return data
    if cache == "auto":
        if not on_cluster():
            report(f"cache: streaming the data ({size}); 'auto' persists on a "
                           "distributed cluster only, never in this process")
            return data
        budget = cluster_memory()
        if data.X.nbytes > CACHE_FRACTION * budget:
            report(f"cache: streaming, the data ({size}) exceeds {CACHE_FRACTION:.0%} "
                           f"of the workers' memory ({budget / 2**30:.2f} GiB)")
            return data
    report(f"cache: persisting the data ({size}) for the fit")
    return persist(data)
