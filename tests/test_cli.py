"""The daskgmm command line, end to end on real zarr stores and a local cluster."""

import subprocess

import numpy as np
import pytest
import yaml
import zarr

import daskgmm
from daskgmm.cli import main


@pytest.fixture(scope="module")
def local_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "local.yaml"
    path.write_text(yaml.safe_dump({"cluster": {
        "type": "local", "n_workers": 2, "threads_per_worker": 1, "processes": True,
        "dashboard_address": ":0"}}))
    return str(path)


def test_make_data_fit_predict_score_info(tmp_path, local_config, capsys):
    data, model = str(tmp_path / "data.zarr"), str(tmp_path / "model.zarr")
    labels, proba = str(tmp_path / "labels.zarr"), str(tmp_path / "proba.zarr")
    assert main(["make-data", data, "--n-samples", "20000", "--n-features", "3",
                 "--n-components", "3", "--chunk-rows", "5000"]) == 0
    stored = zarr.open_array(data, mode="r")
    assert stored.shape == (20000, 3) and stored.chunks == (5000, 3)

    assert main(["fit", data, "--n-components", "3", "--covariance-type", "diag",
                 "--random-state", "0", "--cluster", local_config, "--output", model]) == 0
    out, err = capsys.readouterr()
    assert "iteration 1: lower bound" in out and "saved to" in out
    assert "Dask dashboard: http" in err
    gm = daskgmm.load(model)
    assert gm.covariance_type == "diag" and gm.means_.shape == (3, 3)

    assert main(["predict", model, data, "--output", labels, "--probabilities", proba,
                 "--cluster", local_config]) == 0
    X = stored[:]
    np.testing.assert_array_equal(zarr.open_array(labels, mode="r")[:], gm.predict(X))
    np.testing.assert_allclose(zarr.open_array(proba, mode="r")[:], gm.predict_proba(X))

    capsys.readouterr()
    assert main(["score", model, data, "--cluster", local_config]) == 0
    out = capsys.readouterr().out
    assert f"{gm.score(X):.6f}" in out
    # One pass gives all three; BIC and AIC are scikit-learn's, from that one score.
    assert f"BIC {gm.bic(X):.2f}" in out and f"AIC {gm.aic(X):.2f}" in out

    assert main(["info", model]) == 0
    out = capsys.readouterr().out
    assert "components 3, features 3, covariance diag" in out


def test_npy_input(tmp_path, local_config):
    X = np.random.default_rng(0).normal(size=(500, 2))
    np.save(tmp_path / "x.npy", X)
    assert main(["fit", str(tmp_path / "x.npy"), "--n-components", "1", "--cluster",
                 local_config, "--output", str(tmp_path / "m.zarr")]) == 0
    np.testing.assert_allclose(daskgmm.load(str(tmp_path / "m.zarr")).means_[0], X.mean(0))


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2
    assert "daskgmm info: error:" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.zarr"), "--n-components", "2",
                 "--output", str(tmp_path / "m.zarr")]) == 2


def test_demo_runs_as_installed(tmp_path):
    result = subprocess.run(
        ["daskgmm", "demo", "--n-samples", "20000", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "fitted 4 full components" in result.stdout
    error = float(result.stdout.split("true means: ")[1].split()[0])
    assert error < 0.2
