"""`daskgmm.show_progress`: a tqdm bar for every pass, on local threads and on a cluster."""

import re

import dask.array as da
import numpy as np

import daskgmm
from daskgmm._progress import DESCRIPTION, enabled

from .conftest import make_mixture


def _bars(text):
    """How many bars the local scheduler started in ``text`` (first drawn at 0 of n)."""
    return len(re.findall(rf"{DESCRIPTION}: +0%\|[^|]*\| 0/\d+ ", text))


def test_off_by_default(capsys):
    X, _ = make_mixture(500)
    daskgmm.GaussianMixture(2, max_iter=2, random_state=0).fit(X)
    assert not enabled() and DESCRIPTION not in capsys.readouterr().err


def test_one_bar_per_pass_on_threads(capsys):
    X, _ = make_mixture(2000)
    gm = daskgmm.GaussianMixture(2, max_iter=3, tol=0, random_state=0)
    with daskgmm.show_progress():
        assert enabled()
        with daskgmm.show_progress(False):
            assert not enabled()
        gm.fit(da.from_array(X, chunks=(250, 3)))
    assert not enabled()
    # kmeans: a sample pass and an assignment pass, then one pass per iteration.
    assert _bars(capsys.readouterr().err) == 2 + 3


def test_bar_on_a_cluster_and_same_result(client, capsys):
    X, _ = make_mixture(2000)
    X = da.from_array(X, chunks=(250, 3))
    expected = daskgmm.GaussianMixture(2, max_iter=2, tol=0, random_state=0).fit(X)
    capsys.readouterr()
    with daskgmm.show_progress():
        gm = daskgmm.GaussianMixture(2, max_iter=2, tol=0, random_state=0).fit(X)
        score = gm.score(X)
    err = capsys.readouterr().err
    # At least the two passes of the start, two iterations and the score (caching the
    # data on the workers adds passes); the scheduler reports every bar's completion.
    started = err.count(f"{DESCRIPTION}: 0task ")  # a bar's first draw, before the first report
    assert started >= 2 + 2 + 1 and err.count("100%|") == started
    np.testing.assert_allclose(gm.means_, expected.means_, rtol=1e-12)
    assert score == expected.score(X)
