"""Every benchmark script still runs: each at a tiny size, as a subprocess, prints its table.

What they measure is not checked here (see benchmarks/RESULTS.md); that they run is.
Peers that are not installed (pomegranate, torchgmm) are skipped by the scripts themselves.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# script: (arguments of a tiny run, a column of its table's header). One kind of data,
# one worker process and a few thousand rows: every script's main path and its table,
# in seconds (each worker process imports scikit-learn, Dask and numba again).
RUNS = {
    "bench_graph.py": (["--chunks", "50", "--repeats", "1"], "split_every"),
    "bench_bayesian.py": (["--configs", "A", "--scale", "0.002", "--iterations", "2",
                           "--n-chunks", "4"], "system"),
    "bench_em.py": (["--configs", "A", "--scale", "0.002", "--iterations", "1", "--peers",
                     "--no-scaling", "--covariance-types", "full", "diag",
                     "--data", "overlapping", "--workers", "1"], "system"),
    "bench_ic.py": (["--n-samples", "4000", "--max-components", "2", "--chunk-rows", "1000"],
                    None),
    "bench_outofcore.py": (["--gigabytes", "0.002", "--chunk-rows", "4000", "--iterations", "1",
                            "--memory-limit", "1GiB", "--workers", "1"], None),
    "bench_incremental.py": (["--gb", "0.001", "--skip-images", "--max-iter", "2",
                              "--workers", "1"], "method"),
    "bench_kernels.py": (["--scale", "0.001", "--repeats", "1", "--iterations", "1",
                          "--configs", "A", "--types", "full", "diag"], "system"),
    "bench_missing.py": (["--tiny", "--n-samples", "2000", "--iterations", "2"], "type"),
}


def test_every_benchmark_script_has_a_smoke_run():
    scripts = {path.name for path in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts == set(RUNS)


def _table_rows(output):
    """The rows of the Markdown tables printed (header and separator lines excluded)."""
    lines = output.splitlines()
    separators = [i for i, line in enumerate(lines) if re.fullmatch(r"\|(\s*-*:?-+:?\s*\|)+",
                                                                     line.strip())]
    assert separators, "no Markdown table printed"
    return lines[separators[0] - 1], [line for line in lines[separators[0] + 1:]
                                      if line.startswith("|")]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", RUNS)
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    arguments, column = RUNS[script]
    if script in ("bench_outofcore.py", "bench_incremental.py"):
        arguments = [*arguments, "--path", str(tmp_path / "store.zarr")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *arguments],
                            capture_output=True, text=True, timeout=850, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    header, rows = _table_rows(result.stdout)
    assert rows, result.stdout
    if column is not None:
        assert column in header, header
    if script == "bench_em.py":
        assert re.search(r"pomegranate (skipped|\S)", result.stdout)
