"""The EM engine: every model of a list advances in the same pass over the data.

A pass serves a list of `Model` records, each with its own number of
components, covariance type and state. One task per row chunk computes the
E-step and the statistics of every running model (each in its own layout,
concatenated); a tree reduction merges them model by model; each model's
M-step then runs on its own reduced statistics. A model that has converged
leaves the next pass, so a fit costs as many passes as its slowest model.
``GaussianMixture`` (its ``n_init`` starts) and ``GaussianMixtureIC`` (every
candidate of a search) are layers on `run_em`.

Incremental EM (Neal & Hinton 1998; Thiesson, Meek & Heckerman 2001) runs on
the same engine: the rows are cut into blocks of whole row chunks
(`_graph.block_bounds`), each block is one computation of every running model's
statistics with the current parameters, and each model keeps the absolute
statistics of every block. After a block, its old statistics are replaced,
all blocks seen are merged in block order (so the result does not depend on
timing) and the M-step runs; an iteration is one lap over the blocks, i.e.
one pass. Blocks run one after the other: block b + 1 needs the parameters
after block b's M-step.

Plain incremental EM is Gauss-Seidel to batch EM's Jacobi: near the optimum,
where batch EM's error shrinks by a rate lambda per pass, a lap with many
blocks shrinks it by about 1 - 2 (1 - lambda), so at best half the passes.
Successive over-relaxation goes further (`relaxation`): a block's new
statistics replace its old ones over-relaxed, ``old + omega (new - old)``
with ``1 <= omega < 2``, a Chan merge with a negative weight.

A lap's bound is Neal & Hinton's free energy at its end (`free_energy`),
computed exactly from the blocks' statistics: a lower bound of the
log-likelihood under the lap's parameters that plain incremental EM never
lowers. Over-relaxed steps may lower it within a lap; one that would take it
below the last lap's bound is replaced by a plain one (`_swap_in`), so laps
never decrease, whatever omega.

Stepwise EM (`stepped`, for ``partial_fit``; Cappé & Moulines 2009) keeps one
set of running statistics per model, in the same centred form.
"""

import contextlib
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import _graph
from ._covariance import expected_log_likelihood
from ._mstep import (Parameters, Prior, m_step, model_statistics, variational_lower_bound,
                     variational_step)
from ._stats import merge, merge_all, scaled

# Largest sufficient statistics (all models of a pass together) a fit accepts.
MAX_STATISTICS_BYTES = 2**30

# relaxation='auto': plain laps before omega is estimated from their bounds (the
# first lap is special, see `_with_unseen`; two later changes give a rate).
RELAXATION_LAPS = 4

# relaxation='auto' stays below this: a mode that plain laps remove at once
# still shrinks only by omega - 1 per lap when over-relaxed.
MAX_RELAXATION = 1.8

# 'auto' caching persists Dask input taking at most this share of the workers' memory.
CACHE_FRACTION = 0.5


@dataclass
class Model:
    """One model's EM state: its parameters and where its iterations stand.

    A model with a ``class_code`` is fitted on the rows of that class only
    (``RowData.class_codes``); its lower bound is their mean log-likelihood.
    """

    label: str
    parameters: Parameters
    lower_bound: float = -np.inf
    history: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    error: Optional[str] = None  # why the model stopped when its M-step failed
    class_code: Optional[int] = None
    # Incremental EM: the absolute ``Stats`` of every block, None for a block not seen yet;
    # over-relaxed ones (see `relaxation`) where ``block_fresh`` holds the block's last
    # computed ``Stats`` (else None there).
    block_stats: list = field(default_factory=list)
    block_fresh: list = field(default_factory=list)

    @property
    def n_components(self):
        return self.parameters.n_components

    @property
    def covariance_type(self):
        return self.parameters.covariance_type

    @property
    def active(self):
        """Whether the model takes part in the next pass."""
        return not self.converged and self.error is None


@dataclass
class EMState:
    """Every model of a fit after ``iteration`` passes.

    ``blocks`` holds the ``(start, stop)`` rows of the blocks of incremental
    EM (None: batch EM), ``block`` the number of blocks done in the current lap.
    """

    models: list
    iteration: int = 0
    blocks: Optional[tuple] = None
    block: int = 0

    @property
    def active(self):
        """The models that still iterate."""
        return [model for model in self.models if model.active]


@dataclass(frozen=True)
class Settings:
    """How EM runs: scikit-learn's parameters and daskgmm's own.

    With ``drop_failed``, a model whose covariance becomes ill-defined stops
    (its ``error`` says why) while the others go on; else the error is raised.
    With a ``prior``, the models are variational mixtures: their M-step and
    lower bound are scikit-learn's ``BayesianGaussianMixture``'s.
    """

    tol: float
    reg_covar: float
    max_iter: int
    params: str = "wmc"
    split_every: Optional[int] = None
    verbose: int = 0
    verbose_interval: int = 10
    checkpoint: Optional[str] = None
    drop_failed: bool = False
    prior: Optional[Prior] = None
    relaxation: object = 1.0

    def print(self, message, level=1):
        if self.verbose >= level:
            print(message, flush=True)


@contextlib.contextmanager
def restored_on_error(estimator):
    """Leave ``estimator`` as it was when the block raises: a failed fit changes nothing."""
    state = estimator.__dict__.copy()
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


@contextlib.contextmanager
def cluster_failures(data, checkpoint, iteration=None):
    """A cluster that cannot run a pass is a RuntimeError saying where the fit stands.

    ``iteration`` is None for the initialisation passes.
    """
    on_cluster = _graph.on_cluster(data.scheduler)
    try:
        yield
    except _graph.CLUSTER_ERRORS as error:
        if not on_cluster:
            raise
        step = "the initialisation" if iteration is None else f"iteration {iteration}"
        resume = (f"fit again with checkpoint={checkpoint!r} to resume"
                  if checkpoint else "pass checkpoint=path to be able to resume")
        raise RuntimeError(
            f"The cluster could not run {step} of the fit ({type(error).__name__}: "
            f"{error}); the last completed iteration is {max(0, (iteration or 1) - 1)}; "
            f"{resume}."
        ) from error


def statistics(data, lazy, layouts, checkpoint, iteration=None):
    """One pass's statistics, one ``Stats`` per model (see `cluster_failures`)."""
    with cluster_failures(data, checkpoint, iteration):
        return _graph.merged(_graph.compute(*lazy, scheduler=data.scheduler), layouts)


def pass_statistics(data, models, split_every, checkpoint, iteration=None):
    """Statistics of one E-step of every model over ``data``, one absolute ``Stats`` each."""
    lazy, layouts = _graph.em_statistics(data, [model.parameters for model in models],
                                         split_every, _class_codes(models))
    return statistics(data, lazy, layouts, checkpoint, iteration)


def check_statistics_size(layouts, copies=1):
    """Refuse, before any pass, statistics too large for one task's memory.

    ``layouts`` maps each model's label to its `Layout`; ``copies`` sets of
    them are kept (one per block of incremental EM). The message names the
    models to drop, largest first, for the rest to fit.
    """
    sizes = {label: 8 * copies * layout.size for label, layout in layouts.items()}
    total = sum(sizes.values())
    if total <= MAX_STATISTICS_BYTES:
        return
    drop, left = [], total
    for label in sorted(sizes, key=sizes.get, reverse=True):
        if left <= MAX_STATISTICS_BYTES:
            break
        drop.append(label)
        left -= sizes[label]
    n_features = next(iter(layouts.values())).n_features
    kept = f" (kept for each of {copies} blocks)" if copies > 1 else ""
    raise ValueError(
        f"The sufficient statistics of {len(sizes)} model(s) in {n_features} dimensions{kept} take "
        f"{total / 2**30:.1f} GiB, more than the {MAX_STATISTICS_BYTES / 2**30:.0f} GiB one "
        f"task may hold; drop {', '.join(drop)}, or use fewer components or features, or a "
        "diagonal covariance."
    )


def cached(data, cache, settings):
    """The data persisted for the fit, or as it is when streaming.

    ``cache`` is the estimators' parameter: ``'auto'`` persists on the
    workers of a distributed cluster when the data takes at most
    ``CACHE_FRACTION`` of their memory; ``True`` persists on the active
    scheduler; ``False`` streams.
    """
    if data.scheduler is not None:  # in memory already
        return data
    size = f"{data.X.nbytes / 2**30:.2f} GiB"
    if cache is False:
        settings.print(f"cache: off, streaming the data ({size}) from its source every iteration")
        return data
    if cache == "auto":
        if not _graph.on_cluster():
            settings.print(f"cache: streaming the data ({size}); 'auto' persists on a "
                           "distributed cluster only, never in this process")
            return data
        budget = _graph.cluster_memory()
        if data.X.nbytes > CACHE_FRACTION * budget:
            settings.print(f"cache: streaming, the data ({size}) exceeds {CACHE_FRACTION:.0%} "
                           f"of the workers' memory ({budget / 2**30:.2f} GiB)")
            return data
    settings.print(f"cache: persisting the data ({size}) for the fit")
    return _graph.persist(data)


def _converged_message(model, settings):
    outcome = "converged" if model.converged else "did not converge"
    if model.error is not None:
        outcome = f"failed ({model.error})"
    bound = f" lower bound {model.lower_bound:.5f}." if settings.verbose >= 2 else ""
    return f"Initialization {model.label} {outcome}.{bound}"


def run_em(data, state, settings, save=None):
    """Run EM on every active model of ``state``, one pass per iteration for all.

    Parameters
    ----------
    data : _graph.RowData
    state : EMState
        Updated in place; ``state.iteration`` counts the passes done. With
        ``state.blocks``, every pass is a lap of incremental EM.
    settings : Settings
    save : callable, optional
        Called with ``state`` after every pass, and after every block of
        incremental EM (checkpoints).
    """
    n_models = len(state.models)
    if state.iteration == 0 and state.block == 0:
        for model in state.models:
            settings.print(f"Initialization {model.label}")
    blocks = None
    if state.blocks is not None:
        blocks = [_graph.row_block(data, start, stop) for start, stop in state.blocks]
        for model in state.models:
            model.block_stats = model.block_stats or [None] * len(blocks)
            model.block_fresh = model.block_fresh or [None] * len(blocks)
    for iteration in range(state.iteration + 1, settings.max_iter + 1):
        running = state.active
        if not running:
            break
        tic = time.perf_counter()
        if blocks is None:
            ended = [(model, _batch_step(model, stats, settings, iteration))
                     for model, stats in zip(running, pass_statistics(
                         data, running, settings.split_every, settings.checkpoint, iteration))]
        else:
            ended = _lap(blocks, state, settings, iteration, save)
        for model, bound in ended:
            change = record_bound(model, bound, settings, iteration)
            seconds = time.perf_counter() - tic
            if iteration % settings.verbose_interval == 0:
                prefix = f"{model.label}: " if n_models > 1 else ""
                settings.print(f"  {prefix}iteration {iteration}: lower bound "
                               f"{model.lower_bound:.6f}, change {change:.3e}, "
                               f"{seconds:.2f} s", level=2)
            if not model.active:
                settings.print(_converged_message(model, settings))
        state.iteration, state.block = iteration, 0
        still = len(state.active)
        # At verbose 2 a single model's line above reports the iteration.
        reported = settings.verbose >= 2 and n_models == 1
        if not reported and (iteration % settings.verbose_interval == 0 or still < len(running)):
            settings.print(f"  Iteration {iteration}" + (
                f": {still} of {n_models} models still running" if n_models > 1 else ""))
        if save is not None:
            save(state)
    for model in state.active:
        settings.print(_converged_message(model, settings))


def _class_codes(models):
    """The class code of every model, or None when they are fitted on all rows."""
    codes = [model.class_code for model in models]
    return None if None in codes else codes


def _lap(blocks, state, settings, iteration, save):
    """One lap of incremental EM from block ``state.block`` on.

    Runs the M-step after every block and returns ``[(model, bound of the
    lap)]`` (see `_swap_in`) for `run_em` to end the lap.
    On a distributed cluster the next block of the lap is read while a block
    computes and the client waits (`_graph.read_ahead`); the first block of a
    lap is not, so that a fit that converges reads no block it does not use.
    """
    block = blocks[state.block]
    for index in range(state.block, len(blocks)):
        running = state.active
        if not running:
            return []
        following = None
        if index + 1 < len(blocks):
            with cluster_failures(block, settings.checkpoint, iteration):
                following = _graph.read_ahead(blocks[index + 1])
        block_stats = pass_statistics(block, running, settings.split_every,
                                      settings.checkpoint, iteration)
        block = following
        ended = [(model, _swap_in(model, index, fresh, settings, iteration, state.blocks))
                 for model, fresh in zip(running, block_stats)]
        if index == len(blocks) - 1:
            return ended
        state.block = index + 1
        if save is not None:
            save(state)
    return []


def _swap_in(model, index, fresh, settings, iteration, blocks):
    """Put a block's new statistics in, merge all blocks and run the model's M-step.

    The new statistics go in over-relaxed when `relaxation` says so. If
    over-relaxed statistics (this block's or others') leave a component
    without weight, make the M-step fail or would take the free energy
    (`free_energy`) below the last lap's bound, every block goes back to its
    last computed statistics, the state of plain incremental EM, whose
    M-step cannot lower it (a safeguard after Salakhutdinov & Roweis 2003,
    checked against the lap's start: a check against the previous step
    rejected a relaxed step or two per lap on the 1 GB benchmark store, and
    each rejection, which resets every block, cost the relaxation's gain).
    By induction every step, hence every lap, ends at or above the last
    lap's bound. Returns the bound to record if the block ends the lap
    (else None): the mean free energy, or the M-step's variational bound.
    """
    visited = model.parameters
    if visited.posterior is None:
        fresh = fresh._replace(entropy=responsibility_entropy(visited, fresh))
    old, omega = model.block_stats[index], relaxation(model.history, settings)
    stats = fresh
    if old is not None and omega != 1:
        stats = merge(scaled(old, 1 - omega), scaled(fresh, omega), model.covariance_type)
        stats = stats._replace(weight=fresh.weight)
    relaxed = [seen is not None for seen in model.block_fresh]
    relaxed[index] = stats is not fresh
    computed = None  # all blocks' computed statistics: for the safeguard and the lap's bound
    if any(relaxed) or index == len(blocks) - 1:
        latest = _computed(model)
        latest[index] = fresh
        computed = merge_all([seen for seen in latest if seen is not None],
                             model.covariance_type)
    outcome = _step_on(model, index, stats, settings, iteration, blocks, fallible=any(relaxed),
                       computed=computed)
    if outcome is None or (outcome is _NO_BOUND and any(relaxed) and free_energy(
            model.parameters, computed) / _checked_weight(computed) < model.lower_bound):
        model.parameters = visited
        model.block_stats = _computed(model)
        model.block_fresh = [None] * len(model.block_fresh)
        outcome = _step_on(model, index, fresh, settings, iteration, blocks)
    else:
        model.block_fresh[index] = fresh if relaxed[index] else None
    if index < len(blocks) - 1:
        return None
    if outcome is not _NO_BOUND:
        return outcome
    return free_energy(model.parameters, computed) / _checked_weight(computed)


# `_step_on`'s outcome for a model without a variational bound (EM's is `free_energy`).
_NO_BOUND = object()


def _computed(model):
    """Every block's last computed statistics (None for a block not seen yet)."""
    return [latest if latest is not None else stats
            for stats, latest in zip(model.block_stats, model.block_fresh)]


def _expected(parameters, stats):
    """`expected_log_likelihood` of ``stats`` under a model's ``parameters``."""
    return expected_log_likelihood(stats, parameters.weights, parameters.means,
                                   parameters.prec_chol, parameters.covariance_type)


def responsibility_entropy(parameters, stats):
    """The sum of ``r log r`` over the rows of ``stats``, whose E-step had ``parameters``.

    Summed, ``r log r = r log(pi_k N_k) - r log p(x)``: Q minus the log-likelihood.
    """
    return _expected(parameters, stats) - float(stats.loglik)


def free_energy(parameters, computed):
    """Neal & Hinton's free energy F(q, theta), EM's lower bound of the log-likelihood.

    ``computed`` sums every block's statistics with the responsibilities q
    of its last E-step, and their ``sum r log r`` (``entropy``):
    F = Q(theta) - sum r log r. A block's E-step raises F to that block's
    log-likelihood, an M-step on computed statistics maximises Q: plain
    incremental EM never lowers F, and F at the end of a lap is at most the
    log-likelihood of the data under the lap's final parameters.
    """
    return _expected(parameters, computed) - float(computed.entropy)


def _step_on(model, index, stats, settings, iteration, blocks, fallible=False, computed=None):
    """`_swap_in` with ``stats`` for block ``index``: the M-step's variational bound,
    or `_NO_BOUND`.

    With ``fallible`` (over-relaxed statistics in play), returns None where
    they leave a component without weight or the M-step fails. A component
    that has no weight in the ``computed`` statistics either (one that EM
    has emptied: its responsibilities underflow to 0) is not a reason: it
    would make every relaxed step of the fit fall back, silently.
    """
    model.block_stats[index] = stats
    totals = merge_all([seen for seen in model.block_stats if seen is not None],
                       model.covariance_type)
    if not totals.weight > 0:  # nothing seen yet that carries weight
        return _NO_BOUND
    if fallible and not np.all((totals.nk > 0) | ((totals.nk == 0) & (computed.nk == 0))):
        return None
    step = totals if index == len(blocks) - 1 else _with_unseen(model, totals, blocks,
                                                                      settings.reg_covar)
    try:
        bound = m_step_model(model, step, settings, iteration,
                             drop_failed=settings.drop_failed and not fallible)
    except ValueError:
        if not fallible:
            raise
        return None
    return _NO_BOUND if bound is None else bound


def relaxation(history, settings):
    """The over-relaxation factor omega of incremental EM's next swap.

    ``settings.relaxation`` is a number, or ``'auto'``: the first
    ``RELAXATION_LAPS`` laps are plain (omega = 1); then, if the bound's
    last two changes of those laps shrank by a ratio rho, the per-lap rate
    of the error is ``r = sqrt(rho)`` (the bound's gap is quadratic in it),
    batch EM's rate about ``lambda = 1 - (1 - r) / 2`` (module docstring) and
    omega Young's ``2 / (1 + sqrt(1 - lambda))``, at most ``MAX_RELAXATION``.
    """
    if settings.relaxation != "auto":
        return float(settings.relaxation)
    if len(history) < RELAXATION_LAPS:
        return 1.0
    previous, last = np.diff(history[RELAXATION_LAPS - 3:RELAXATION_LAPS])
    if not 0 < last < previous:
        return 1.0
    rate = np.sqrt(last / previous)
    return float(min(MAX_RELAXATION, 2 / (1 + np.sqrt((1 - rate) / 2))))


def _with_unseen(model, seen, blocks, reg_covar):
    """The statistics of the blocks seen, plus the current model standing in for the others.

    In the first lap, the blocks not seen yet count as rows distributed as
    the current parameters say, of the seen weight per row: the M-step then
    moves the parameters by the seen share of the data, instead of fitting
    every component to the first blocks alone.
    """
    rows = np.array([stop - start for start, stop in blocks])
    unseen = np.array([stats is None for stats in model.block_stats])
    if not unseen.any():
        return seen
    stand_in = model_statistics(model.parameters,
                                seen.weight * rows[unseen].sum() / rows[~unseen].sum(),
                                reg_covar)
    return merge(seen, stand_in, model.covariance_type)


def stepped(running, batch, rho, covariance_type):
    """Stepwise EM's running statistics after a step of size ``rho`` towards a batch's.

    The running statistics describe a "dataset" of fixed weight W (that of
    the rows of the first step): the old rows count ``1 - rho`` times and
    the batch's rows ``rho * W / batch weight`` times, so that per-row
    averages follow Cappé & Moulines' ``s <- (1 - rho) s + rho s_batch``
    whatever the batch size, merged exactly (Chan).
    """
    return merge(scaled(running, 1 - rho), scaled(batch, rho * running.weight / batch.weight),
                 covariance_type)


def _checked_weight(stats):
    """The total weight of the rows the statistics sum, which must be positive."""
    if not stats.weight > 0:
        raise ValueError("sample_weight must not sum to zero.")
    return float(stats.weight)


def _mean_loglik(stats):
    """Batch EM's bound: the mean log-likelihood of the rows the statistics sum."""
    return float(stats.loglik) / _checked_weight(stats)


def _batch_step(model, stats, settings, iteration):
    """Batch EM's M-step on one pass's statistics; returns the bound of the pass.

    That is the mean log-likelihood before the step (scikit-learn's), or the
    variational bound after it.
    """
    mean_loglik = _mean_loglik(stats)
    variational_bound = m_step_model(model, stats, settings, iteration)
    return mean_loglik if variational_bound is None else variational_bound


def m_step_model(model, stats, settings, iteration, drop_failed=None):
    """The model's M-step; a failure stops the model with ``drop_failed``.

    ``drop_failed`` is ``settings.drop_failed`` unless given.

    Returns the variational lower bound after the step for a Bayesian model
    (``settings.prior``), else None (EM's bound is the mean log-likelihood).
    """
    try:
        if settings.prior is None:
            model.parameters = m_step(stats, settings.reg_covar, settings.params,
                                      model.parameters, iteration)
            return None
        model.parameters = variational_step(stats, settings.reg_covar, settings.prior,
                                            model.covariance_type, iteration)
        return variational_lower_bound(model.parameters, stats.entropy,
                                       settings.prior.weight_concentration_type)
    except ValueError as error:
        if not (settings.drop_failed if drop_failed is None else drop_failed):
            raise
        model.error = str(error)
        return None


def record_bound(model, bound, settings, iteration):
    """Record the model's mean log-likelihood of ``iteration``; returns its change."""
    change = bound - model.lower_bound
    model.lower_bound = bound
    model.history.append(bound)
    model.n_iter = iteration
    model.converged = model.error is None and abs(change) < settings.tol
    return change


def best_model(models, max_iter):
    """The model with the highest lower bound, as scikit-learn picks among its starts.

    With ``max_iter=0`` nothing has been scored: the last start is kept.
    """
    best, max_lower_bound = models[-1], -np.inf
    if max_iter > 0:
        for model in models:
            if model.lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                best, max_lower_bound = model, model.lower_bound
    return best


def score(data, models, checkpoint):
    """Log-likelihood of the data under every model, and the data's weight, in one pass.

    Returns one ``(total log-likelihood, total weight)`` per model; rows
    count with their ``sample_weight``, if any (else the weight is the
    number of rows).
    """
    return [(float(stats.loglik), float(stats.weight))
            for stats in pass_statistics(data, models, None, checkpoint)]
