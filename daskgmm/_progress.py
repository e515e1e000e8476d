"""Progress bars for passes over the data, drawn by tqdm; off unless asked for.

Every pass goes through `daskgmm._graph.compute`, which asks this module for
a bar: on local schedulers a dask callback (`tqdm.dask.TqdmCallback`) counts
finished tasks; on a distributed cluster the scheduler's progress feed (the
one behind `distributed.progress`) does. `tqdm.auto` draws a text bar on a
terminal and a widget in Jupyter.
"""

import contextlib
from contextvars import ContextVar

from distributed.diagnostics.progressbar import ProgressBar
from tqdm.auto import tqdm
from tqdm.dask import TqdmCallback

__all__ = ["show_progress"]

# What every bar is labelled with (one bar per pass over the data).
DESCRIPTION = "pass over the data"

# Seconds between two updates from the scheduler: often enough to look live,
# rarely enough to cost the scheduler nothing measurable.
_INTERVAL = "200ms"

_enabled = ContextVar("daskgmm_progress", default=False)


@contextlib.contextmanager
def show_progress(enabled=True):
    """Show a progress bar during every pass over the data inside this block.

    Parameters
    ----------
    enabled : bool, default=True
        False turns bars off inside the block (for example in a block nested
        in one that turned them on).

    Examples
    --------
    >>> import daskgmm
    >>> with daskgmm.show_progress():            # doctest: +SKIP
    ...     gm = daskgmm.GaussianMixture(8).fit(X)
    """
    token = _enabled.set(bool(enabled))
    try:
        yield
    finally:
        _enabled.reset(token)


def enabled():
    """Whether passes over the data show a progress bar now."""
    return _enabled.get()


def _options():
    return {"desc": DESCRIPTION, "unit": "task", "leave": False}


def local_bar():
    """A context manager that draws a bar for the local scheduler's tasks (if enabled)."""
    if not enabled():
        return contextlib.nullcontext()
    return TqdmCallback(tqdm_class=tqdm, **_options())


class _SchedulerFeed(ProgressBar):
    """The scheduler's progress messages on the keys of ``futures``, drawn on ``bar``."""

    def __init__(self, futures, bar, scheduler):
        super().__init__(futures, scheduler=scheduler, interval=_INTERVAL)
        self._bar = bar

    def _draw_bar(self, remaining, all, **kwargs):  # noqa: A002 (distributed's name)
        self._bar.total = all
        self._bar.n = all - remaining
        self._bar.refresh()


def compute_on_client(client, lazy, **options):
    """Compute ``lazy`` collections on ``client`` with a bar fed by its scheduler.

    Parameters
    ----------
    client : distributed.Client
    lazy : sequence of dask collections
    **options
        Passed to ``client.compute`` (for example ``retries``).

    Returns
    -------
    tuple
        The computed values, as `dask.compute` returns them.
    """
    futures = client.compute(list(lazy), **options)
    with tqdm(**_options()) as bar:
        client.sync(_SchedulerFeed(futures, bar, client.scheduler.address).listen)
    return tuple(client.gather(futures))
