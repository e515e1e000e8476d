"""GaussianMixtureImputer and ``daskgmm impute``: filled values against the naive
reference of test_missing, input types, reproducible draws, a Pipeline, the CLI."""

import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
import zarr
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

import daskgmm
from daskgmm import GaussianMixtureImputer
from daskgmm.cli import main

from .conftest import COVARIANCE_TYPES, make_mixture
from .test_missing import _as_full, _naive_e_step, _precisions, _start, _with_gaps


@pytest.fixture(scope="module")
def complete_and_gaps():
    X, labels = make_mixture(n_samples=600, n_features=4, n_components=3, seed=11)
    return X, _with_gaps(X, 0.2, seed=12), labels


def _imputer(covariance_type="full", **kwargs):
    weights, means, covariances = _start(covariance_type)
    return GaussianMixtureImputer(
        3, covariance_type=covariance_type, weights_init=weights, means_init=means,
        precisions_init=_precisions(covariances, covariance_type), max_iter=20,
        **kwargs)


def _fit(imputer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return imputer.fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fills_the_conditional_expectation(complete_and_gaps, covariance_type):
    _, gaps, _ = complete_and_gaps
    imputer = _fit(_imputer(covariance_type), gaps)
    mixture = imputer.gaussian_mixture_
    assert mixture.nan_policy == "marginalize"
    full = _as_full(mixture.covariances_, covariance_type, gaps.shape[1])
    resp, x_hat, _, _ = _naive_e_step(gaps, mixture.weights_, mixture.means_, full)
    expected = np.einsum("nk,nkd->nd", resp, x_hat)
    nothing = np.isnan(gaps).all(axis=1)  # the mixture's mean
    expected[nothing] = mixture.weights_ @ mixture.means_
    filled = imputer.transform(gaps)
    missing = np.isnan(gaps)
    np.testing.assert_allclose(filled[missing], expected[missing], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(filled[~missing], gaps[~missing])
    chunked = imputer.transform(da.from_array(gaps, chunks=(70, 4)))
    assert isinstance(chunked, da.Array) and chunked.chunks == ((70,) * 8 + (40,), (4,))
    np.testing.assert_array_equal(chunked.compute(), filled)


def test_draws_follow_the_conditional_distribution():
    """One component: the draws for copies of one row have the Schur complement's spread."""
    rng = np.random.default_rng(0)
    covariance = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, 0.2], [0.3, 0.2, 0.5]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], covariance, size=4000)
    imputer = GaussianMixtureImputer(1, sample_posterior=True, random_state=3).fit(X)
    mixture = imputer.gaussian_mixture_
    row = np.array([[0.4, np.nan, np.nan]])
    draws = imputer.transform(np.repeat(row, 20000, axis=0))[:, 1:]
    sigma, mu = mixture.covariances_[0], mixture.means_[0]
    regression = sigma[1:, :1] / sigma[0, 0]
    mean = mu[1:] + regression[:, 0] * (0.4 - mu[0])
    spread = sigma[1:, 1:] - regression @ sigma[:1, 1:]
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=4 * np.sqrt(spread.max() / 20000))
    np.testing.assert_allclose(np.cov(draws.T), spread, rtol=0.05, atol=0.01)


def test_draws_are_reproducible_and_independent_of_chunking(complete_and_gaps):
    _, gaps, _ = complete_and_gaps
    imputer = _fit(_imputer(sample_posterior=True, random_state=5), gaps)
    first = imputer.transform(gaps)
    np.testing.assert_array_equal(imputer.transform(gaps), first)
    for chunks in ((100, 4), ((1, 299, 300), (4,))):
        np.testing.assert_array_equal(imputer.transform(da.from_array(gaps, chunks=chunks)),
                                      first)
    other = _imputer(sample_posterior=True, random_state=6).fit(gaps).transform(gaps)
    assert not np.array_equal(other, first)
    np.testing.assert_array_equal(first[~np.isnan(gaps)], gaps[~np.isnan(gaps)])


def test_frames_and_data_arrays_come_back_as_such(complete_and_gaps):
    _, gaps, _ = complete_and_gaps
    imputer = _fit(_imputer(), gaps)
    expected = imputer.transform(gaps)
    frame = pd.DataFrame(gaps, columns=list("abcd"), index=np.arange(600) * 3)
    out = _fit(_imputer(), frame).transform(frame)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_index_equal(out.index, frame.index)
    assert list(out.columns) == list("abcd")
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12)
    array = xr.DataArray(da.from_array(gaps, chunks=(200, 4)), dims=("time", "feature"),
                         coords={"time": np.arange(600) * 2.0})
    out = imputer.transform(array)
    assert isinstance(out, xr.DataArray) and isinstance(out.data, da.Array)
    assert out.dims == ("time", "feature")
    np.testing.assert_array_equal(out["time"], array["time"])
    np.testing.assert_allclose(out.values, expected, rtol=1e-12)


def test_in_a_pipeline(complete_and_gaps):
    _, gaps, labels = complete_and_gaps
    pipeline = make_pipeline(GaussianMixtureImputer(3, random_state=0),
                             LogisticRegression(max_iter=1000))
    assert pipeline.fit(gaps, labels).score(gaps, labels) > 0.9
    fitted = GaussianMixtureImputer(3, random_state=0)
    np.testing.assert_array_equal(fitted.fit_transform(gaps), fitted.transform(gaps))


@pytest.mark.slow
def test_scikit_learn_estimator_checks_pass():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(GaussianMixtureImputer(2, max_iter=20), on_fail=None)
    assert [r["check_name"] for r in results if r["status"] == "failed"] == []


def test_better_than_column_means_on_correlated_data():
    rng = np.random.default_rng(1)
    factor = rng.normal(size=(5, 5))
    X = np.concatenate([rng.normal(size=(1500, 5)) @ factor,
                        rng.normal(size=(1500, 5)) @ factor.T + 4])
    gaps = _with_gaps(X, 0.2, seed=2, all_missing_rows=())
    missing = np.isnan(gaps)

    def rmse(filled):
        return np.sqrt(np.mean((filled[missing] - X[missing]) ** 2))

    mixture = rmse(GaussianMixtureImputer(2, random_state=0).fit_transform(gaps))
    assert mixture < 0.6 * rmse(SimpleImputer().fit_transform(gaps))


@pytest.mark.slow
def test_cli_fits_with_gaps_and_imputes_a_store(tmp_path, complete_and_gaps, capsys):
    """The command line's refusal, fit and imputations, run in this process (the installed
    command runs as a process of its own in test_cli.py: each imports scikit-learn, Dask
    and numba again)."""
    _, gaps, _ = complete_and_gaps
    data, model = str(tmp_path / "gaps.zarr"), str(tmp_path / "model.zarr")
    zarr.create_array(data, shape=gaps.shape, chunks=(150, 4), dtype="f8")[:] = gaps
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"cluster": {
        "type": "local", "n_workers": 2, "threads_per_worker": 1, "processes": False,
        "dashboard_address": ":0"}}))
    assert main(["fit", data, "--n-components", "3", "--output", model, "--quiet",
                 "--cluster", str(config)]) == 2
    assert "nan_policy" in capsys.readouterr().err
    assert main(["fit", data, "--n-components", "3", "--nan-policy", "marginalize",
                 "--random-state", "0", "--output", model, "--quiet", "--cluster",
                 str(config)]) == 0
    gm = daskgmm.load(model)
    assert gm.nan_policy == "marginalize"
    reference = daskgmm.GaussianMixture(3, nan_policy="marginalize", random_state=0).fit(
        da.from_array(gaps, chunks=(150, 4)))
    np.testing.assert_allclose(gm.means_, reference.means_, rtol=1e-9)
    for extra, sample in (([], False), (["--sample", "--random-state", "4"], True)):
        out = str(tmp_path / f"filled-{sample}.zarr")
        assert main(["impute", model, data, "--output", out, "--quiet", "--cluster",
                     str(config), *extra]) == 0
        stored = zarr.open_array(out, mode="r")
        assert stored.chunks == (150, 4)
        expected = GaussianMixtureImputer(sample_posterior=sample, random_state=4)
        expected.gaussian_mixture_ = gm
        np.testing.assert_allclose(stored[:], expected.transform(gaps), rtol=1e-12)
