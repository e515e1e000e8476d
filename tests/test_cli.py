"""The daskgmm command line, end to end on real zarr stores, Parquet files and local clusters."""

import argparse
import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import yaml
import zarr

import daskgmm
from daskgmm._cluster import CONFIG_DIR
from daskgmm._covariance import covariance_summary
from daskgmm._covariance_types import COVARIANCE_TYPES
from daskgmm._progress import DESCRIPTION
from daskgmm.cli import _parser, main
from daskgmm.datasets import make_mixture

ROOT = Path(__file__).resolve().parents[1]
# Modules that `daskgmm --help` must not import (seconds of start-up between them).
HEAVY_MODULES = ("dask", "distributed", "numpy", "sklearn", "zarr", "yaml", "tqdm", "numba")


def _env():
    """The environment, with this checkout importable from any working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _config(directory, **options):
    path = Path(directory) / "cluster.yaml"
    path.write_text(yaml.safe_dump({"cluster": {
        "type": "local", "n_workers": 2, "threads_per_worker": 1, "dashboard_address": ":0",
        **options}}))
    return str(path)


@pytest.fixture(scope="module")
def local_config(tmp_path_factory):
    """Two single-threaded worker processes."""
    return _config(tmp_path_factory.mktemp("config"), processes=True)


@pytest.fixture(scope="module")
def thread_config(tmp_path_factory):
    """Two worker threads in the command's process: a distributed cluster that starts fast."""
    return _config(tmp_path_factory.mktemp("config"), processes=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small zarr store and a model fitted to it."""
    directory = tmp_path_factory.mktemp("data")
    X, _ = make_mixture(4000, 3, 3, chunk_rows=1000, seed=0)
    X.to_zarr(str(directory / "data.zarr"))
    gm = daskgmm.GaussianMixture(3, random_state=0).fit(X.compute())
    gm.save(str(directory / "model.zarr"))
    return str(directory / "data.zarr"), str(directory / "model.zarr"), gm


@pytest.mark.slow
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


def test_fit_passes_every_option(tmp_path, dataset, thread_config):
    data, _, _ = dataset
    model, checkpoint = str(tmp_path / "m.zarr"), str(tmp_path / "fit.ckpt")
    options = ["--covariance-type", "tied", "--max-iter", "3", "--tol", "0",
               "--reg-covar", "0.01", "--n-init", "2", "--init-params", "random",
               "--random-state", "7", "--checkpoint", checkpoint, "--cache", "false",
               "--split-every", "4", "--verbose", "1", "--verbose-interval", "2"]
    assert main(["fit", data, "--n-components", "2", "--output", model,
                 "--cluster", thread_config, *options]) == 0
    gm = daskgmm.load(model)
    assert gm.get_params() == daskgmm.GaussianMixture(
        2, covariance_type="tied", max_iter=3, tol=0.0, reg_covar=0.01, n_init=2,
        init_params="random", random_state=7, checkpoint=checkpoint, cache=False,
        split_every=4, verbose=1, verbose_interval=2).get_params()
    assert gm.n_iter_ == 3 and os.path.exists(checkpoint)
    # The same fit in the library gives the same model.
    expected = daskgmm.GaussianMixture(
        2, covariance_type="tied", max_iter=3, tol=0.0, reg_covar=0.01, n_init=2,
        init_params="random", random_state=7, split_every=4,
    ).fit(da.from_zarr(data))
    np.testing.assert_allclose(gm.means_, expected.means_, rtol=1e-9)


def test_make_data_writes_the_true_labels(tmp_path, capsys):
    data, labels = str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr")
    assert main(["make-data", data, "--n-samples", "3000", "--n-features", "2",
                 "--n-components", "3", "--chunk-rows", "700", "--seed", "4",
                 "--labels", labels]) == 0
    assert f"true labels to {labels}" in capsys.readouterr().out
    X, y = zarr.open_array(data, mode="r")[:], zarr.open_array(labels, mode="r")[:]
    assert y.shape == (3000,) and zarr.open_array(labels, mode="r").chunks == (700,)
    _, expected, (weights, means, _) = make_mixture(3000, 2, 3, chunk_rows=700, seed=4,
                                                    return_labels=True)
    np.testing.assert_array_equal(y, expected.compute())
    for k in range(3):
        assert np.abs(X[y == k].mean(axis=0) - means[k]).max() < 0.2


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_info_shows_hyperparameters_and_components(tmp_path, covariance_type, capsys):
    X, _ = make_mixture(600, 3, 2, chunk_rows=600, seed=1)
    gm = daskgmm.GaussianMixture(2, covariance_type=covariance_type, reg_covar=1e-4,
                                 random_state=3).fit(X.compute())
    gm.save(str(tmp_path / "m.zarr"))
    assert main(["info", str(tmp_path / "m.zarr")]) == 0
    out = capsys.readouterr().out
    assert f"iterations {gm.n_iter_}, converged {gm.converged_}" in out
    assert "reg_covar=0.0001" in out and "random_state=3" in out
    full = {  # every type's covariances as full matrices
        "full": lambda c: c,
        "tied": lambda c: np.stack([c] * 2),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: np.stack([v * np.eye(3) for v in c]),
    }[covariance_type](gm.covariances_)
    mean_variance, log_det = covariance_summary(gm.covariances_, covariance_type, 2, 3)
    np.testing.assert_allclose(mean_variance, np.trace(full, axis1=1, axis2=2) / 3)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(full)[1])
    for k in range(2):
        assert f"{gm.weights_[k]:.4f}  {mean_variance[k]:13.6g}  {log_det[k]:7.3f}" in out


def test_cluster_config_prints_the_shipped_file(capsys):
    assert main(["cluster-config", "slurm"]) == 0
    assert capsys.readouterr().out == (CONFIG_DIR / "slurm.yaml").read_text()
    assert main(["cluster-config", "yarn"]) == 2
    assert "kubernetes, local, pbs, scheduler, slurm" in capsys.readouterr().err


def test_help_imports_nothing_heavy():
    code = (
        "import sys, contextlib, io\n"
        "from daskgmm.cli import main\n"
        "for command in ([], ['fit'], ['predict'], ['score'], ['info'], ['make-data'],"
        " ['demo'], ['cluster-config']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([*command, '--help'])\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "daskgmm.cli", "--help"], capture_output=True,
                   env=_env(), timeout=60, check=True)
    assert time.perf_counter() - tic < 5  # about 0.2 s; the bound leaves room for a busy machine


def _subcommands():
    (action,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_has_help_and_its_default(command):
    parser = _subcommands()[command]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        assert action.help, (command, action.dest)
        if action.option_strings and not action.required and action.dest != "help":
            assert f"{' '.join(action.help.split())} (default: {action.default})" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--n-components", "0"], "--n-components: must be at least 1, got 0"),
        (["--n-components", "two"], "--n-components: expected an integer, got 'two'"),
        (["--n-components", "2", "--tol", "-1"], "--tol: must be at least 0, got -1"),
        (["--n-components", "2", "--reg-covar", "nan"], "--reg-covar: must be at least 0"),
        (["--n-components", "2", "--n-init", "0"], "--n-init: must be at least 1"),
        (["--n-components", "2", "--random-state", "-3"], "--random-state: must be at least 0"),
        (["--n-components", "2", "--verbose", "3"], "--verbose: must be at most 2"),
        (["--n-components", "2", "--covariance-type", "ful"], "unknown covariance type(s) ['ful']"),
        (["--n-components", "2", "--cache", "yes"], "invalid choice: 'yes'"),
        (["--n-components", "2", "--columns", "a,,b"], "empty column name"),
        (["--n-components", "2", "--columns", "a,a"], "a column is named twice"),
        (["--n-components", "2", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_argparse_errors(tmp_path, dataset, arguments, message, capsys):
    data, _, _ = dataset
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", data, "--output", str(tmp_path / "m.zarr"), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "missing.zarr"), "--n-components", "2",
              "--output", str(tmp_path / "m.zarr")])
    assert "missing.zarr does not exist" in capsys.readouterr().err


def _bad_inputs(tmp_path, data, model):
    """(argv, message) pairs, each wrong in one way that is found before a cluster starts."""
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("cluster: {type: local, n_workers: 0}\n")
    pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}).to_parquet(tmp_path / "t.parquet")
    np.save(tmp_path / "x4.npy", np.zeros((10, 4)))
    out = str(tmp_path / "out.zarr")
    return [
        (["fit", data, "--n-components", "2", "--output", out, "--cluster", "nosuch"],
         "neither a file nor a shipped configuration"),
        (["fit", data, "--n-components", "2", "--output", out, "--cluster", str(bad_config)],
         "'cluster.n_workers' must be a positive integer"),
        (["fit", data, "--n-components", "5000", "--output", out],
         "has 4000 rows, fewer than --n-components 5000"),
        (["fit", data, "--n-components", "2", "--output", data], "are the same path"),
        (["fit", data, "--n-components", "2", "--output", out,
          "--checkpoint", str(tmp_path / "no" / "such" / "ckpt")], "does not exist"),
        (["fit", data, "--n-components", "2", "--output", out, "--columns", "a"],
         "--columns applies to Parquet data"),
        (["fit", str(tmp_path / "t.parquet"), "--n-components", "2", "--output", out],
         "column(s) b are not numeric"),
        (["fit", str(tmp_path / "t.parquet"), "--n-components", "2", "--output", out,
          "--columns", "a,c"], "has no column(s) c; its columns are a, b"),
        (["fit", model, "--n-components", "2", "--output", out], "is not a zarr array"),
        (["predict", model, str(tmp_path / "x4.npy"), "--output", out],
         "has 4 features, but the model was fitted on 3"),
        (["predict", model, data, "--output", model], "are the same path"),
        (["score", data, data], "data.zarr"),
    ]


def test_bad_input_is_reported_before_a_cluster_starts(tmp_path, dataset, capsys):
    data, model, _ = dataset
    for argv, message in _bad_inputs(tmp_path, data, model):
        tic = time.perf_counter()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"daskgmm {argv[0]}: error:") and message in err, (argv, err)
        assert "Dask dashboard" not in err  # printed once a cluster is up: none was started
        assert time.perf_counter() - tic < 10, argv


@pytest.mark.slow
def test_npy_input(tmp_path, local_config):
    X = np.random.default_rng(0).normal(size=(500, 2))
    np.save(tmp_path / "x.npy", X)
    assert main(["fit", str(tmp_path / "x.npy"), "--n-components", "1", "--cluster",
                 local_config, "--output", str(tmp_path / "m.zarr")]) == 0
    np.testing.assert_allclose(daskgmm.load(str(tmp_path / "m.zarr")).means_[0], X.mean(0))


def test_parquet_input(tmp_path, dataset, thread_config):
    data, _, _ = dataset
    X = zarr.open_array(data, mode="r")[:]
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(name="row", extra=1.0)
    folder = tmp_path / "table"
    folder.mkdir()
    for i, start in enumerate(range(0, 4000, 1500)):  # three files, uneven lengths
        frame.iloc[start:start + 1500].to_parquet(folder / f"part-{i}.parquet", index=False)
    model = str(tmp_path / "m.zarr")
    assert main(["fit", str(folder), "--columns", "a,b,c", "--n-components", "3",
                 "--random-state", "0", "--output", model, "--cluster", thread_config]) == 0
    gm = daskgmm.load(model)
    expected = daskgmm.GaussianMixture(3, random_state=0).fit(da.from_zarr(data))
    np.testing.assert_allclose(gm.means_, expected.means_, rtol=1e-9)

    frame.to_parquet(tmp_path / "one.parquet", index=False)
    labels = str(tmp_path / "labels.zarr")
    assert main(["predict", model, str(tmp_path / "one.parquet"), "--columns", "a,b,c",
                 "--output", labels, "--cluster", thread_config]) == 0
    np.testing.assert_array_equal(zarr.open_array(labels, mode="r")[:], gm.predict(X))


def _pseudo_terminal():
    """A new pseudo-terminal of 24 rows and 100 columns: (controller, terminal) descriptors."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return controller, terminal


def _read_terminal(controller, timeout):
    """What is written on the pseudo-terminal of ``controller`` until no one holds it open."""
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 1)[0]:
            try:
                chunk = os.read(controller, 1 << 16)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            output += chunk
    return output.decode(errors="replace")


def _on_terminal(argv, timeout=240):
    """Run ``daskgmm argv`` on a new pseudo-terminal; return its exit code and output."""
    controller, terminal = _pseudo_terminal()
    process = subprocess.Popen([sys.executable, "-m", "daskgmm.cli", *argv], stdin=terminal,
                               stdout=terminal, stderr=terminal, env=_env(),
                               start_new_session=True)
    os.close(terminal)
    try:
        output = _read_terminal(controller, timeout)
        return process.wait(timeout=30), output
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()


def _in_process_on_terminal(argv, timeout=240):
    """Run ``main(argv)`` in this process, its output on a new pseudo-terminal (``isatty()``
    is true, as on a user's terminal); return its exit code and output.

    The command's own behaviour without the start of a Python process (seconds of
    imports): `_on_terminal` runs the installed command the way a user does.
    """
    controller, terminal = _pseudo_terminal()
    try:
        with ThreadPoolExecutor(1) as reader:
            output = reader.submit(_read_terminal, controller, timeout)
            with open(terminal, "w", buffering=1) as stream, \
                    contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                code = main(argv)
            return code, output.result()  # closing the terminal above ends the reading
    finally:
        os.close(controller)


def _bar_shown(text):
    return DESCRIPTION in text and "%|" in text


def _make_data_argv(tmp_path):
    return ["make-data", str(tmp_path / "x.zarr"), "--n-samples", "2000", "--n-features", "2",
            "--chunk-rows", "100"]


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path):
    code, output = _on_terminal(_make_data_argv(tmp_path))
    assert code == 0 and _bar_shown(output), output
    code, output = _in_process_on_terminal([*_make_data_argv(tmp_path), "--quiet"])
    assert code == 0 and "wrote" in output and DESCRIPTION not in output, output


def test_no_progress_bar_when_not_on_a_terminal(tmp_path, capsys):
    assert main(_make_data_argv(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert "wrote" in out and DESCRIPTION not in out + err


@pytest.mark.slow
def test_progress_bars_of_fit_predict_and_score(tmp_path, dataset, thread_config, capsys):
    # The bars follow the scheduler's tasks, wherever the workers run: worker threads spare
    # three commands two worker processes each (the worker processes of the command line are
    # tested above and in test_ctrl_c_stops_cleanly_with_one_line). The fit runs as installed
    # on a terminal; predict and score run in this process with their output on a terminal
    # (the bar is the same code; a process each would cost seconds of imports). Off a
    # terminal (captured output, in this process) no bar.
    data, model, _ = dataset
    fitted = str(tmp_path / "m.zarr")
    code, output = _on_terminal(["fit", data, "--n-components", "3", "--max-iter", "2",
                                 "--output", fitted, "--cluster", thread_config])
    assert code == 0 and _bar_shown(output) and "iteration 1" in output, output
    assert "Dask dashboard: http" in output
    code, output = _in_process_on_terminal(["predict", model, data, "--output",
                                            str(tmp_path / "l.zarr"), "--cluster",
                                            thread_config])
    assert code == 0 and _bar_shown(output), output
    code, output = _in_process_on_terminal(["score", model, data, "--cluster", thread_config,
                                            "--quiet"])
    assert code == 0 and "mean log-likelihood" in output and DESCRIPTION not in output, output
    capsys.readouterr()
    assert main(["score", model, data, "--cluster", thread_config]) == 0
    out, err = capsys.readouterr()
    assert "mean log-likelihood" in out and DESCRIPTION not in out + err


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_one_line(tmp_path, local_config):
    data = str(tmp_path / "x.zarr")
    assert main(["make-data", data, "--n-samples", "200000", "--n-features", "8",
                 "--chunk-rows", "25000", "--quiet"]) == 0
    # The command starts with Ctrl-C's default action, as from a terminal, however pytest
    # was started: a program run in the background by a non-interactive shell (`cmd &` in
    # a script) inherits SIGINT ignored, and so would the command (it then never stops:
    # a fresh-clone run started so timed out here).
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "daskgmm.cli", "fit", data, "--n-components", "4", "--tol",
             "0", "--max-iter", "100000", "--cache", "false", "--output",
             str(tmp_path / "m.zarr"), "--cluster", local_config],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, handler)
    try:
        while "iteration 2:" not in process.stdout.readline():
            assert process.poll() is None, process.stderr.read()
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    lines = err.splitlines()
    assert lines[0].startswith("Dask dashboard: http") and lines[1:] == ["daskgmm fit: interrupted"]
    assert not os.path.exists(tmp_path / "m.zarr")


@pytest.mark.slow
def test_demo_runs_as_installed(tmp_path, thread_config):
    # The installed entry point, on a cluster of worker threads: the default cluster's worker
    # processes would cost 12 s of CPU importing, and are tested in test_cluster.py
    # (test_default_cluster_is_sized_to_the_machine) and by the command line above.
    result = subprocess.run(
        ["daskgmm", "demo", "--n-samples", "20000", "--workdir", str(tmp_path),
         "--cluster", thread_config],
        capture_output=True, text=True, timeout=300, env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "fitted 4 full components" in result.stdout
    reported = re.findall(r"^\s*[Ii]teration (\d+)\b", result.stdout, re.MULTILINE)
    n_iter = int(result.stdout.split("full components in ")[1].split()[0])
    assert reported == [str(iteration) for iteration in range(1, n_iter + 1)], result.stdout
    error = float(result.stdout.split("true means: ")[1].split()[0])
    assert error < 0.2


@pytest.mark.slow
def test_fit_with_labels_is_a_classifier(tmp_path, thread_config, capsys):
    """`daskgmm fit DATA --labels LABELS` fits and saves a classifier; predict writes
    classes, info describes each class, score refuses it."""
    data, labels = str(tmp_path / "data.zarr"), str(tmp_path / "labels.zarr")
    model, predicted = str(tmp_path / "model.zarr"), str(tmp_path / "predicted.zarr")
    assert main(["make-data", data, "--labels", labels, "--n-samples", "3000",
                 "--n-features", "2", "--n-components", "3", "--chunk-rows", "1000"]) == 0
    capsys.readouterr()
    assert main(["fit", data, "--labels", labels, "--n-components", "2", "--covariance-type",
                 "diag", "--random-state", "0", "--cluster", thread_config, "--output", model,
                 "--quiet"]) == 0
    assert "fitted 3 classes of 2 diag component(s) each" in capsys.readouterr().out
    classifier = daskgmm.load(model)
    assert isinstance(classifier, daskgmm.GaussianMixtureClassifier)
    X, y = zarr.open_array(data, mode="r")[:], zarr.open_array(labels, mode="r")[:]
    expected = daskgmm.GaussianMixtureClassifier(2, covariance_type="diag",
                                                 random_state=0).fit(da.from_zarr(data), y)
    np.testing.assert_allclose(classifier.means_, expected.means_, rtol=1e-9)
    np.testing.assert_array_equal(classifier.classes_, np.unique(y))

    capsys.readouterr()
    assert main(["predict", model, data, "--output", predicted, "--cluster", thread_config]) == 0
    np.testing.assert_array_equal(zarr.open_array(predicted, mode="r")[:], classifier.predict(X))
    assert main(["info", model]) == 0
    out = capsys.readouterr().out
    assert "classes 3, components per class 2, features 2, covariance diag" in out
    assert main(["score", model, data]) == 2
    assert "is a classifier" in capsys.readouterr().err
    assert main(["fit", data, "--labels", labels, "--select", "1:2", "--output", model]) == 2
    assert "--labels fits a classifier" in capsys.readouterr().err
