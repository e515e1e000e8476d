"""Incremental and stepwise EM on the engine of `_em`.

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

A lap's bound is its family's free energy at its end
(``_family.Family.free_energy``), computed exactly from the blocks'
statistics, which hold their ``sum r log r``: for EM, Neal & Hinton's, a
lower bound of the log-likelihood under the lap's parameters; for the
variational mixture, the evidence lower bound of incremental variational
Bayes (Sato 2001). Plain incremental EM never lowers either. Over-relaxed
steps may lower it within a lap; one that would take it below the last lap's
bound is replaced by a plain one (`_swap_in`), so laps never decrease,
whatever omega (the variational mixture takes omega = 1 only: its closed-form
bound holds for statistics of responsibilities, which relaxed ones are not).

Stepwise EM (`stepped`, for ``partial_fit``; Cappé & Moulines 2009) keeps one
set of running statistics per model, in the same centred form.
"""

import numpy as np

from . import _graph
from ._em import cluster_failures, m_step_model, pass_statistics
from ._mstep import model_statistics
from ._stats import merge, merge_all, scaled

# relaxation='auto': plain laps before omega is estimated from their bounds (the
# first lap is special, see `_with_unseen`; two later changes give a rate).
RELAXATION_LAPS = 4

# relaxation='auto' stays below this: a mode that plain laps remove at once
# still shrinks only by omega - 1 per lap when over-relaxed.
MAX_RELAXATION = 1.8


def lap(blocks, state, settings, iteration, save):
    """One lap of incremental EM from block ``state.block`` on.

    Runs the M-step after every block and returns ``[(model, bound of the
    lap)]`` (see `_swap_in`) for `_em.run_em` to end the lap.
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
        block_stats = pass_statistics(block, running, settings.family, settings.split_every,
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
    without weight, make the M-step fail or would take the family's free
    energy (``Family.free_energy``) below the last lap's bound, every block
    goes back to its last computed statistics, the state of plain
    incremental EM, whose M-step cannot lower it (a safeguard after
    Salakhutdinov & Roweis 2003, checked against the lap's start: a check
    against the previous step rejected a relaxed step or two per lap on the
    1 GB benchmark store, and each rejection, which resets every block, cost
    the relaxation's gain). By induction every step, hence every lap, ends
    at or above the last lap's bound. Returns the lap's bound, the free
    energy of all blocks' computed statistics, if the block ends the lap
    (else None).
    """
    family, visited = settings.family, model.parameters
    fresh = family.block_statistics(visited, fresh)
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
    if not _step_on(model, index, stats, settings, iteration, blocks, fallible=any(relaxed),
                    computed=computed) or (any(relaxed) and family.free_energy(
                        model.parameters, computed) < model.lower_bound):
        model.parameters = visited
        model.block_stats = _computed(model)
        model.block_fresh = [None] * len(model.block_fresh)
        _step_on(model, index, fresh, settings, iteration, blocks)
    else:
        model.block_fresh[index] = fresh if relaxed[index] else None
    if index < len(blocks) - 1:
        return None
    return family.free_energy(model.parameters, computed)


def _computed(model):
    """Every block's last computed statistics (None for a block not seen yet)."""
    return [latest if latest is not None else stats
            for stats, latest in zip(model.block_stats, model.block_fresh)]


def _step_on(model, index, stats, settings, iteration, blocks, fallible=False, computed=None):
    """`_swap_in` with ``stats`` for block ``index``; returns whether the step stands.

    With ``fallible`` (over-relaxed statistics in play), returns False where
    they leave a component without weight or the M-step fails. A component
    that has no weight in the ``computed`` statistics either (one that EM
    has emptied: its responsibilities underflow to 0) is not a reason: it
    would make every relaxed step of the fit fall back, silently.
    """
    model.block_stats[index] = stats
    totals = merge_all([seen for seen in model.block_stats if seen is not None],
                       model.covariance_type)
    if not totals.weight > 0:  # nothing seen yet that carries weight
        return True
    if fallible and not np.all((totals.nk > 0) | ((totals.nk == 0) & (computed.nk == 0))):
        return False
    step = totals if index == len(blocks) - 1 else _with_unseen(model, totals, blocks,
                                                                      settings.reg_covar)
    try:
        m_step_model(model, step, settings, iteration,
                     drop_failed=settings.drop_failed and not fallible)
    except ValueError:
        if not fallible:
            raise
        return False
    return True


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
