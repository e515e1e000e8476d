"""Tests of the cluster configuration files and of `daskgmm._cluster`."""

import fnmatch
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dask.array as da
import pytest
import yaml
from dask.system import CPU_COUNT
from dask.utils import parse_bytes

from daskgmm import _cluster
from daskgmm._cluster import (
    CONFIG_DIR,
    cluster_from_config,
    config_path,
    connect,
    kubernetes_spec,
    read_config,
    shipped_configs,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(Path(CONFIG_DIR).glob("*.yaml"))


def _write(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


def _check_computation(client, n_workers):
    client.wait_for_workers(n_workers, timeout=30)
    assert len(client.scheduler_info()["workers"]) == n_workers
    x = da.ones((200, 50), chunks=(20, 50))
    assert client.compute(x.sum()).result() == 200 * 50


def test_shipped_configs_cover_every_type():
    types = {read_config(path)["cluster"]["type"] for path in SHIPPED}
    assert types == {"local", "scheduler", "slurm", "pbs", "kubernetes"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_parses(path):
    config = read_config(path)
    assert config["cluster"]["type"] == path.stem
    assert read_config(path.stem) == read_config(path.name) == config


def test_shipped_configs_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["daskgmm"]
    package = ROOT / "daskgmm"
    for path in SHIPPED:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    assert shipped_configs() == ["kubernetes", "local", "pbs", "scheduler", "slurm"]


def test_top_level_cluster_configs_are_the_one_source():
    """Users read and copy ``cluster_configs/``; the package's folder is a link to
    it, not a second copy that could drift."""
    top_level = ROOT / "cluster_configs"
    assert top_level.is_dir() and not top_level.is_symlink()
    assert (ROOT / "daskgmm" / "cluster_configs").is_symlink()
    assert (ROOT / "daskgmm" / "cluster_configs").resolve() == top_level
    assert sorted(path.name for path in top_level.glob("*.yaml")) == [
        f"{name}.yaml" for name in shipped_configs()]


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path):
    """A wheel built from the source holds the files of the top-level folder, and an
    installed wheel finds them."""
    import os
    import shutil

    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".*_cache",
        "dask-worker-space", "dask-scratch-space", "*.zarr"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(tmp_path / "wheel"),
         "--no-deps", "-q"], capture_output=True, text=True, timeout=600)
    if built.returncode and "No matching distribution" in built.stderr:
        pytest.skip(f"no build backend to install (offline?): {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        shipped = {name: archive.read(name) for name in archive.namelist()
                   if name.startswith("daskgmm/cluster_configs/")}
    assert shipped == {f"daskgmm/cluster_configs/{path.name}": path.read_bytes()
                       for path in (ROOT / "cluster_configs").glob("*.yaml")}
    # Installed by pip into a folder of its own, first on the path of the Python that runs
    # the program (a new venv would cost 5 s of CPU for its own pip, and find the same).
    installed = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(installed), str(wheel)], check=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(installed))
    program = ("import daskgmm._cluster as c; print(c.__file__); "
               "print(' '.join(c.shipped_configs())); print(c.config_path('slurm'))")
    found = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env, check=True,
    ).stdout.splitlines()
    assert found[0].startswith(str(installed))
    assert found[1] == "kubernetes local pbs scheduler slurm"
    assert Path(found[2]).read_bytes() == (ROOT / "cluster_configs" / "slurm.yaml").read_bytes()


def test_config_path_prefers_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_path("local") == CONFIG_DIR / "local.yaml"
    _write(tmp_path / "local", {"cluster": {"type": "local", "n_workers": 1}})
    assert config_path("local") == "local"
    assert read_config("local") == {"cluster": {"type": "local", "n_workers": 1}}
    with pytest.raises(FileNotFoundError, match="kubernetes, local, pbs, scheduler, slurm"):
        config_path("lokal")


@pytest.mark.slow
def test_shipped_local_config_is_sized_to_the_machine():
    options = read_config("local")["cluster"]
    assert "n_workers" not in options and "memory_limit" not in options
    with cluster_from_config({"cluster": dict(options, dashboard_address=":0")}) as cluster:
        assert len(cluster.workers) == CPU_COUNT


@pytest.mark.slow
def test_local_config_end_to_end(tmp_path, capsys):
    config = read_config("local")
    config["cluster"].update(
        n_workers=2, threads_per_worker=1, memory_limit="1GiB", dashboard_address=":0"
    )
    path = _write(tmp_path / "local.yaml", config)
    with connect(path) as client:
        _check_computation(client, 2)
        threads = client.nthreads()
        assert sorted(threads.values()) == [1, 1]
        cluster = client.cluster
        # The dashboard link works: bokeh is installed with daskgmm.
        with urllib.request.urlopen(client.dashboard_link, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200 and "Bokeh" in page and "needs bokeh" not in page
    assert cluster.status.name == "closed"
    assert "Dask dashboard: http" in capsys.readouterr().err


@pytest.mark.slow
def test_default_cluster_is_sized_to_the_machine(monkeypatch):
    monkeypatch.setattr(_cluster, "CPU_COUNT", 2)
    with connect() as client:
        _check_computation(client, 2)
        assert sorted(client.nthreads().values()) == [1, 1]
        limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
        assert limits == {_cluster.MEMORY_LIMIT // 2}


def _wait_for_file(path, process, timeout=30):
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"scheduler did not write {path}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def running_scheduler(tmp_path_factory):
    """A scheduler and two single-threaded workers started as subprocesses."""
    directory = tmp_path_factory.mktemp("scheduler")
    scheduler_file = directory / "scheduler.json"
    logs = (directory / "log").open("w")
    processes = []
    try:
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                stdout=logs,
                stderr=logs,
            )
        )
        _wait_for_file(scheduler_file, processes[0])
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                    ],
                    stdout=logs,
                    stderr=logs,
                )
            )
        yield scheduler_file
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logs.close()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["address", "scheduler_file"])
def test_existing_scheduler(running_scheduler, tmp_path, target):
    address = json.loads(running_scheduler.read_text())["address"]
    value = address if target == "address" else str(running_scheduler)
    path = _write(tmp_path / "scheduler.yaml", {"cluster": {"type": "scheduler", target: value}})
    with connect(path) as client:
        assert client.scheduler.address == address
        _check_computation(client, 2)


@pytest.mark.parametrize(
    ("name", "formatter", "expected"),
    [
        (
            "slurm",
            "dask_jobqueue.slurm:slurm_format_bytes_ceil",
            [
                "#SBATCH --cpus-per-task={cores}",
                "#SBATCH --mem={memory}",
                "#SBATCH -t {walltime}",
                "#SBATCH -p {queue}",
                "#SBATCH -A {account}",
            ],
        ),
        (
            "pbs",
            "dask_jobqueue.pbs:pbs_format_bytes_ceil",
            [
                "#PBS -l select=1:ncpus={cores}:mem={memory}",
                "#PBS -l walltime={walltime}",
                "#PBS -q {queue}",
                "#PBS -A {account}",
            ],
        ),
    ],
)
def test_jobqueue_job_script(name, formatter, expected):
    pytest.importorskip("dask_jobqueue")
    module, function = formatter.split(":")
    format_bytes = getattr(pytest.importorskip(module), function)
    config = read_config(CONFIG_DIR / f"{name}.yaml")
    config["cluster"]["dashboard_address"] = ":0"
    options = dict(config["cluster"], memory=format_bytes(parse_bytes(config["cluster"]["memory"])))
    with cluster_from_config(config) as cluster:
        script = cluster.job_script()
        assert not cluster.workers
    for line in expected:
        assert line.format(**options) in script
    for directive in options["job_extra_directives"]:
        assert directive in script


def test_kubernetes_spec():
    pytest.importorskip("dask_kubernetes")
    config = read_config(CONFIG_DIR / "kubernetes.yaml")
    options = config["cluster"]
    spec = kubernetes_spec(config)
    assert spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"] == options["name"]
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == options["n_workers"]
    [container] = worker["spec"]["containers"]
    assert container["image"] == options["image"]
    assert container["resources"] == options["resources"]
    assert container["env"] == [{"name": k, "value": v} for k, v in options["env"].items()]
    [scheduler] = spec["spec"]["scheduler"]["spec"]["containers"]
    assert scheduler["image"] == options["image"]


def test_kubernetes_spec_rejects_other_types():
    pytest.importorskip("dask_kubernetes")
    with pytest.raises(ValueError, match="kubernetes"):
        kubernetes_spec({"cluster": {"type": "local"}})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("- a\n- b\n", "cluster"),
        ("just a string\n", "cluster"),
        ("", "cluster"),
        ("other: 1\n", "cluster"),
        ("cluster: {type: local}\nextra: 1\n", "extra"),
        ("cluster: local\n", "cluster"),
        ("cluster: {n_workers: 2}\n", "type"),
        ("cluster: {type: yarn}\n", "yarn"),
        ("cluster: {type: [local]}\n", "type"),
        ("cluster: {type: local, workers: 2}\n", "workers"),
        ("cluster: {type: local, n_workers: two}\n", "n_workers"),
        ("cluster: {type: local, n_workers: 0}\n", "n_workers"),
        ("cluster: {type: local, n_workers: true}\n", "n_workers"),
        ("cluster: {type: local, memory_limit: [1]}\n", "memory_limit"),
        ("cluster: {type: local, memory_limit: lots}\n", "memory_limit"),
        ("cluster: {type: local, processes: 'yes'}\n", "processes"),
        ("cluster: {type: scheduler}\n", "address"),
        ("cluster: {type: scheduler, address: 'tcp://h:1', scheduler_file: f}\n", "scheduler_file"),
        ("cluster: {type: scheduler, address: 8786}\n", "address"),
        ("cluster: {type: slurm, cores: 4}\n", "memory"),
        ("cluster: {type: slurm, cores: 4, memory: 4GB, walltime: 1:00:00}\n", "walltime"),
        ("cluster: {type: pbs, cores: 4, memory: 4GB, job_cpu: 4}\n", "job_cpu"),
        (
            "cluster: {type: pbs, cores: 4, memory: 4GB, job_extra_directives: x}\n",
            "job_extra_directives",
        ),
        ("cluster: {type: kubernetes, image: i, n_workers: 1, env: {A: 1}}\n", "env"),
        ("cluster: {type: kubernetes, image: i, n_workers: 1, name: My_Cluster}\n", "name"),
        ("cluster: {type: kubernetes, image: i, n_workers: 1, resources: {cpu: 1}}\n", "resources"),
        ("cluster: {type: local\n", "YAML"),
    ],
)
def test_bad_config(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=key) as info:
        read_config(path)
    assert str(path) in str(info.value)


def test_null_options_keep_defaults(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text("cluster:\n  type: local\n  n_workers:\n  processes: false\n")
    assert read_config(path) == {"cluster": {"type": "local", "processes": False}}


def test_missing_extra_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    config = {"cluster": {"type": "slurm", "cores": 1, "memory": "1GB"}}
    with pytest.raises(ImportError, match=r"daskgmm\[jobqueue\]"):
        cluster_from_config(config)
