"""A fit through the shipped cluster config slurm.yaml on a real SLURM (started by .ci/slurm-up)."""

import os
import shutil
import subprocess
from pathlib import Path

import dask
import numpy as np
import pytest
import yaml
import zarr

from daskgmm import GaussianMixture
from daskgmm._cluster import connect, read_config
from daskgmm.datasets import make_mixture

SHIPPED = Path(__file__).resolve().parents[1] / "cluster_configs" / "slurm.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("sinfo") is None and not os.environ.get("CI"),
        reason="SLURM is not installed (run .ci/slurm-up)",
    ),
]


def _node_states():
    """States of the SLURM nodes as sinfo prints them; none when sinfo is missing."""
    if shutil.which("sinfo") is None:
        return []
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return result.stdout.split()


def _slurm_config(tmp_path):
    """The shipped config sized to one small node, its job files kept in tmp_path."""
    config = read_config(SHIPPED)
    config["cluster"].update(
        jobs=1,
        cores=1,
        processes=1,
        memory="1GiB",
        walltime="00:05:00",
        queue="debug",
        # The shipped --exclusive would make two runs on this node wait for each other.
        job_extra_directives=[f"--chdir={tmp_path}"],
        job_script_prologue=[],
        log_directory=str(tmp_path / "logs"),
        local_directory=str(tmp_path / "worker"),
        dashboard_address=":0",
    )
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_on_slurm_equals_a_local_fit(tmp_path):
    states = _node_states()
    assert {"idle", "mix", "alloc"} & set(states), (
        f"no SLURM node is up (sinfo: {states}); run `bash .ci/slurm-up`"
    )
    X, (weights, means, covariances) = make_mixture(4000, 3, 2, chunk_rows=1000, seed=3)
    store = str(tmp_path / "x.zarr")
    X.to_zarr(store)
    stored = zarr.open_array(store, mode="r")
    kwargs = dict(n_components=2, covariance_type="full", weights_init=weights,
                  means_init=means, precisions_init=np.linalg.inv(covariances))
    with dask.config.set(scheduler="threads"):
        local = GaussianMixture(**kwargs).fit(stored)

    with connect(_slurm_config(tmp_path)) as client:
        client.wait_for_workers(1, timeout=60)
        job_ids = set(client.run(lambda: os.environ.get("SLURM_JOB_ID")).values())
        running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"],
                                 capture_output=True, text=True, check=True).stdout.split()
        on_slurm = GaussianMixture(**kwargs).fit(stored)

    assert len(job_ids) == 1 and job_ids <= set(running), (job_ids, running)
    for name in ["weights_", "means_", "covariances_", "precisions_cholesky_"]:
        np.testing.assert_allclose(getattr(on_slurm, name), getattr(local, name), rtol=1e-9)
    assert on_slurm.lower_bounds_ == pytest.approx(local.lower_bounds_, rel=1e-9)
