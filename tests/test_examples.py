"""The examples run: the notebook executes cleanly and the cluster job script works."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest
import zarr

import daskgmm

from .conftest import make_mixture

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "jupyter_distributed.ipynb"
CLUSTER_JOB = ROOT / "examples" / "cluster_job.py"


def _env_with_package():
    """The environment, with this checkout importable from any working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_notebook_is_saved_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    for name, value in _env_with_package().items():
        monkeypatch.setenv(name, value)
    # The notebook's size parameter: 20,000 rows (of its 200,000) still separate its four
    # components, choose four full ones by BIC and leave most of the Bayesian mixture's ten
    # switched off, in a fifth of the time.
    monkeypatch.setenv("DASKGMM_EXAMPLE_SAMPLES", "20000")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError if any cell fails

    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    for cell in code_cells:
        assert not [out for out in cell.outputs if out.output_type == "error"]
    figure_cells = [cell for cell in code_cells if "plt.show()" in cell.source]
    assert len(figure_cells) == 3  # convergence, components, the search
    for cell in figure_cells:
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert images, f"no image from the cell:\n{cell.source[:200]}"

    printed = "".join(out.get("text", "") for cell in code_cells for out in cell.outputs)
    assert "Dashboard: http" in printed
    assert "chosen: 4 full components" in printed
    kept = re.search(r"components kept by the Bayesian mixture: (\d+) of 10", printed)
    assert kept and 4 <= int(kept.group(1)) < 10, "the prior switched no component off"
    # The part on data with holes: conditional expectations beat column means.
    filled = re.search(r"GaussianMixtureImputer ([0-9.]+), SimpleImputer\(mean\) ([0-9.]+)",
                       printed)
    assert filled and float(filled.group(1)) < float(filled.group(2))


def _tiny_store(tmp_path):
    X, _ = make_mixture(n_samples=2000, n_features=2, n_components=2, seed=1, separation=6.0)
    path = tmp_path / "data.zarr"
    zarr.create_array(store=path, data=X, chunks=(500, 2))
    return path


def _run_job(tmp_path, *target):
    output = tmp_path / "model"
    command = [
        sys.executable, str(CLUSTER_JOB), "--data", str(_tiny_store(tmp_path)),
        "--n-components", "2", "--covariance-type", "diag", "--output", str(output), *target,
    ]
    result = subprocess.run(
        command,
        check=False,
        cwd=tmp_path,
        env=_env_with_package(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "converged: True" in out
    assert "shape (2000, 2)" in out
    assert "component 0: weight" in out and "component 1: weight" in out
    assert "BIC:" in out
    if hasattr(daskgmm.GaussianMixture, "save"):
        assert f"model saved to {output}" in out
        assert output.exists()
        if hasattr(daskgmm, "load"):
            model = daskgmm.load(output)
            assert model.means_.shape == (2, 2)
            np.testing.assert_allclose(model.weights_.sum(), 1.0)
    else:
        assert "has no GaussianMixture.save" in out
        assert not output.exists()
    return out


@pytest.mark.slow
def test_cluster_job_with_local_cluster(tmp_path):
    # One worker process: the script's own LocalCluster, its count reported; a second
    # worker would cost 6 s of CPU importing (two workers: the test below).
    out = _run_job(tmp_path, "--local-workers", "1")
    assert "cluster: 1 workers" in out


@pytest.mark.slow
def test_cluster_job_with_scheduler_address(tmp_path, cluster):
    out = _run_job(tmp_path, "--address", cluster.scheduler_address)
    assert "cluster: 2 workers" in out
