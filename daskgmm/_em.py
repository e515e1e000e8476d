"""The EM engine: every model of a list advances in the same pass over the data.

A pass serves a list of `Model` records, each with its own number of
components, covariance type and state. One task per row chunk computes the
E-step and the statistics of every running model (each in its own layout,
concatenated); a tree reduction merges them model by model; each model's
M-step then runs on its own reduced statistics. A model that has converged
leaves the next pass, so a fit costs as many passes as its slowest model.
``GaussianMixture`` (its ``n_init`` starts) and ``GaussianMixtureIC`` (every
candidate of a search) are layers on `run_em`.

What a model is, its E-step on a block and its M-step are its family's
(``_family``, ``Settings.family``): the engine knows no family by name.

Incremental EM and stepwise EM are in `_incremental` (`run_em` runs a lap
of incremental EM with its ``lap``).
"""

import contextlib
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import _graph
from ._family import MAXIMUM_LIKELIHOOD, Family, checked_weight
from ._mstep import Parameters

# Largest sufficient statistics (all models of a pass together) a fit accepts.
MAX_STATISTICS_BYTES = 2**30


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
    ``family`` (a ``_family.Family``) gives the models' E-step on a block,
    M-step and bound: EM's by default (the estimators pass theirs, wrapped by
    their ``nan_policy``).
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
    family: Family = MAXIMUM_LIKELIHOOD
    relaxation: object = 1.0

    def print(self, message, level=1):
        if self.verbose >= level:
            print(message, flush=True)


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


def pass_statistics(data, models, family, split_every, checkpoint, iteration=None):
    """Statistics of one E-step of every model over ``data``, one absolute ``Stats`` each,
    by the models' ``family`` (``_family.Family``)."""
    lazy, layouts = _graph.em_statistics(data, [model.parameters for model in models], family,
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


def _converged_message(model, settings):
    outcome = "converged" if model.converged else "did not converge"
    if model.error is not None:
        outcome = f"failed ({model.error})"
    bound = f" lower bound {model.lower_bound:.5f}." if settings.verbose >= 2 else ""
    return f"Initialization {model.label} {outcome}.{bound}"


def run_em(data, state, settings, save=None, lap=None):
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
    lap : callable, optional
        Runs one lap of incremental EM (`_incremental.lap`); needed with ``state.blocks``.
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
            ended = [(model, m_step_model(model, stats, settings, iteration))
                     for model, stats in zip(running, pass_statistics(
                         data, running, settings.family, settings.split_every,
                         settings.checkpoint, iteration))]
        else:
            ended = lap(blocks, state, settings, iteration, save)
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


def m_step_model(model, stats, settings, iteration, drop_failed=None):
    """The family's M-step of the model; returns the bound of the pass (see ``_family``).

    A failure stops the model with ``drop_failed`` (``settings.drop_failed``
    unless given): its ``error`` says why, it keeps its parameters, and the
    bound returned is theirs (``Family.failed_bound``). Statistics without
    weight are an error in any case.
    """
    checked_weight(stats)
    try:
        model.parameters, bound = settings.family.update(
            stats, model.parameters, settings.reg_covar, settings.params, iteration)
    except ValueError as error:
        if not (settings.drop_failed if drop_failed is None else drop_failed):
            raise
        model.error = str(error)
        return settings.family.failed_bound(stats, model.lower_bound)
    return bound


def record_bound(model, bound, settings, iteration):
    """Record the model's bound of ``iteration`` (its family's); returns its change."""
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


def score(data, models, family, checkpoint):
    """Log-likelihood of the data under every model of ``family``, and the data's
    weight, in one pass.

    Returns one ``(total log-likelihood, total weight)`` per model; rows
    count with their ``sample_weight``, if any (else the weight is the
    number of rows).
    """
    return [(float(stats.loglik), float(stats.weight))
            for stats in pass_statistics(data, models, family, None, checkpoint)]
