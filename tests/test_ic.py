"""GaussianMixtureIC: every candidate in the same passes, each equal to its standalone fit."""

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import check_estimator

from daskgmm import GaussianMixture, GaussianMixtureIC, load

from .conftest import COVARIANCE_TYPES, counted_array, make_mixture

FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


@pytest.fixture(scope="module")
def blobs():
    return make_mixture(n_samples=3000, n_features=3, n_components=3, seed=0, separation=6)[0]


def _candidate(ic, X, n_components, covariance_type):
    """A search's candidate as a fitted GaussianMixture (its lower bound from results_)."""
    search = GaussianMixtureIC(n_components, n_components, covariance_type=covariance_type,
                               random_state=ic.random_state, n_init=ic.n_init).fit(X)
    return search.best_estimator_


@pytest.mark.parametrize("as_dask", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_each_candidate_equals_its_standalone_fit(blobs, covariance_type, as_dask):
    X = da.from_array(blobs, chunks=700) if as_dask else blobs
    ic = GaussianMixtureIC(1, 4, covariance_type="all", n_init=2, random_state=0).fit(X)
    for k in range(1, 5):
        alone = GaussianMixture(k, covariance_type=covariance_type, n_init=2,
                                random_state=0).fit(X)
        row = (ic.results_["n_components"] == k) & (ic.results_["covariance_type"]
                                                     == covariance_type)
        assert ic.results_["lower_bound"][row][0] == pytest.approx(alone.lower_bound_, rel=1e-9)
        assert ic.results_["n_iter"][row][0] == alone.n_iter_
        assert ic.results_["bic"][row][0] == pytest.approx(alone.bic(X), rel=1e-9)
        assert ic.results_["aic"][row][0] == pytest.approx(alone.aic(X), rel=1e-9)
        if k == ic.n_components_ and covariance_type == ic.covariance_type_:
            for name in FITTED:
                np.testing.assert_allclose(getattr(ic.best_estimator_, name),
                                           getattr(alone, name), rtol=1e-9, atol=1e-300)


@pytest.mark.slow
def test_search_reads_each_chunk_init_passes_plus_slowest_plus_one(tmp_path, blobs):
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=blobs.shape, chunks=(500, 3), dtype="f8")[:] = blobs
    n_chunks = 6
    stored, reads = counted_array(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ic = GaussianMixtureIC(1, 6, random_state=0, cache=False).fit(stored)
    assert len(ic.results_["n_iter"]) == 24
    slowest = int(ic.results_["n_iter"].max())
    # k-means starts: one pass for the shared sample, one shared assignment pass.
    assert reads["count"] == (2 + slowest + 1) * n_chunks
    assert slowest < int(ic.results_["n_iter"].sum())


def test_finds_the_number_of_clusters_and_is_a_table(blobs):
    ic = GaussianMixtureIC(1, 6, random_state=0).fit(blobs)
    assert (ic.n_components_, ic.covariance_type_) == (3, "full")
    table = pd.DataFrame(ic.results_)
    assert table.shape == (24, 7)
    assert ic.criterion_ == table["bic"].min() == pytest.approx(ic.best_estimator_.bic(blobs))
    assert ic.bic(blobs) == ic.best_estimator_.bic(blobs)
    assert GaussianMixtureIC(1, 6, criterion="aic", random_state=0).fit(blobs).criterion_ \
        == pytest.approx(table["aic"].min())


def test_predict_on_dask_stays_lazy_and_save_loads_the_best(tmp_path, blobs):
    X = da.from_array(blobs, chunks=1000)
    ic = GaussianMixtureIC(2, 4, covariance_type=["full", "diag"], random_state=0).fit(X)
    labels = ic.predict(X)
    assert isinstance(labels, da.Array) and isinstance(ic.predict_proba(X), da.Array)
    np.testing.assert_array_equal(labels.compute(), ic.best_estimator_.predict(blobs))
    ic.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert isinstance(loaded, GaussianMixture)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ic.best_estimator_, name))


def test_unconverged_candidates_are_named(blobs):
    with pytest.warns(ConvergenceWarning, match=r"K=2 full"):
        GaussianMixtureIC(2, 2, covariance_type="full", max_iter=1, random_state=0).fit(blobs)


@pytest.mark.parametrize("params, match", [
    (dict(min_components=3, max_components=2), "must not exceed max_components"),
    (dict(covariance_type="round"), "covariance_type"),
    (dict(covariance_type=["full", "round"]), "covariance_type"),
    (dict(criterion="icl"), "criterion"),
    (dict(max_components=5000), "number of samples"),
    (dict(algorithm="stepwise"), "algorithm"),
    (dict(algorithm="incremental", n_blocks=0), "n_blocks"),
])
def test_bad_searches_are_value_errors_and_leave_the_fit(blobs, params, match):
    ic = GaussianMixtureIC(1, 2, random_state=0).fit(blobs)
    best = ic.best_estimator_
    with pytest.raises(ValueError, match=match):
        ic.set_params(**params).fit(blobs)
    assert ic.best_estimator_ is best


def test_statistics_too_large_name_the_candidates_to_drop():
    X = da.zeros((10_000, 2000), chunks=(1000, 2000))
    with pytest.raises(ValueError, match=r"GiB.*drop K=40 full, K=39 full"):
        GaussianMixtureIC(1, 40).fit(X)


@pytest.mark.slow
def test_check_estimator():
    estimator = GaussianMixtureIC(1, 3, covariance_type=["full", "diag"], random_state=0)
    failures = [r for r in check_estimator(estimator, on_fail=None) if r["status"] == "failed"]
    assert failures == []


def test_cli_select_prints_the_table_and_saves_the_best(tmp_path, blobs, capsys):
    from daskgmm.cli import main

    data, model, config = tmp_path / "x.npy", str(tmp_path / "model"), tmp_path / "local.yaml"
    np.save(data, blobs)
    config.write_text("cluster:\n  type: local\n  n_workers: 1\n  threads_per_worker: 1\n"
                      "  processes: false\n  dashboard_address: ':0'\n")
    assert main(["fit", str(data), "--select", "2:4", "--covariance-type", "full,diag",
                 "--random-state", "0", "--cluster", str(config), "--output", model]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.lstrip().startswith(("2 ", "3 ", "4 "))]
    assert "best: 3 full components" in out and len(rows) == 6
    assert load(model).means_.shape == (3, 3)
    with pytest.raises(SystemExit) as stopped:  # argparse's usage error, before any cluster
        main(["fit", str(data), "--select", "2-4", "--output", model])
    assert stopped.value.code == 2


def test_a_failed_candidate_records_the_log_likelihood_of_the_parameters_it_keeps():
    """A candidate whose first M-step fails (a component on five equal rows, reg_covar=0)
    keeps its start; its lower_bound is the mean log-likelihood of that start, as a
    standalone GaussianMixture with max_iter=0 scores it, not -inf."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (60, 2)), np.repeat([[8.0, 8.0]], 5, axis=0)])
    ic = GaussianMixtureIC(1, 3, covariance_type="full", reg_covar=0, random_state=0,
                           max_iter=20).fit(X)
    failed = np.isinf(ic.results_["bic"])
    assert list(ic.results_["n_components"][failed]) == [2, 3]
    for n_components, bound in zip(ic.results_["n_components"][failed],
                                   ic.results_["lower_bound"][failed]):
        start = GaussianMixture(int(n_components), reg_covar=0, max_iter=0,
                                random_state=0).fit(X)
        assert bound == pytest.approx(start.score(X), rel=1e-12)
