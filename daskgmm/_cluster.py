"""Cluster configuration files and connection.

A configuration file holds one top-level ``cluster`` mapping whose ``type``
selects the kind of cluster and whose other keys are the options of that
kind. One commented file per type lies in the project's top-level
``cluster_configs/NAME.yaml`` and ships inside the package (``daskgmm/
cluster_configs`` links to that folder; the wheel holds the files);
wherever a configuration file is taken, the bare ``NAME`` of a shipped one
is taken too.
"""

import contextlib
import importlib
import importlib.resources
import os
import re
import sys

import yaml
from dask.system import CPU_COUNT
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from distributed.system import MEMORY_LIMIT

__all__ = [
    "CONFIG_DIR", "shipped_configs", "config_path", "read_config", "cluster_from_config",
    "kubernetes_spec", "connect",
]

# The configuration files installed with the package (package data).
CONFIG_DIR = importlib.resources.files(__package__) / "cluster_configs"
_CONFIG_SUFFIX = ".yaml"


# -- value checks: (predicate, description used in error messages) ----------


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_byte_string(value):
    if not isinstance(value, str):
        return False
    try:
        parse_bytes(value)
    except ValueError:
        return False
    return True


def _is_string_list(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_k8s_quantity(value):
    return isinstance(value, str) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    )


def _is_k8s_resources(value):
    return (
        isinstance(value, dict)
        and set(value) <= {"requests", "limits"}
        and all(
            isinstance(spec, dict)
            and all(isinstance(k, str) and _is_k8s_quantity(q) for k, q in spec.items())
            for spec in value.values()
        )
    )


_POSITIVE_INT = (lambda v: _is_int(v) and v > 0, "a positive integer")
_NON_NEGATIVE_INT = (lambda v: _is_int(v) and v >= 0, "a non-negative integer")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_STRING = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
_STRING_LIST = (_is_string_list, "a list of strings")
_BYTES = (_is_byte_string, 'a byte string such as "16GiB"')
_MEMORY_LIMIT = (
    lambda v: v == "auto" or _is_byte_string(v) or (_is_int(v) and v > 0),
    'a byte string such as "4GiB", a positive number of bytes, or "auto"',
)
_WALLTIME = (
    lambda v: isinstance(v, str),
    'a string such as "02:00:00" (quote it: YAML reads 1:00:00 as a number)',
)

_JOBQUEUE_OPTIONS = {
    "jobs": _POSITIVE_INT,
    "cores": _POSITIVE_INT,
    "memory": _BYTES,
    "processes": _POSITIVE_INT,
    "queue": _STRING,
    "account": _STRING,
    "walltime": _WALLTIME,
    "job_name": _STRING,
    "job_extra_directives": _STRING_LIST,
    "job_directives_skip": _STRING_LIST,
    "job_script_prologue": _STRING_LIST,
    "worker_extra_args": _STRING_LIST,
    "local_directory": _STRING,
    "log_directory": _STRING,
    "interface": _STRING,
    "python": _STRING,
    "shebang": _STRING,
    "dashboard_address": _STRING,
}

# Options that make_cluster_spec turns into the DaskCluster resource.
_KUBERNETES_SPEC_OPTIONS = {
    "name": (
        lambda v: (
            isinstance(v, str) and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v) is not None
        ),
        'a Kubernetes name (lowercase letters, digits and "-")',
    ),
    "image": _STRING,
    "n_workers": _POSITIVE_INT,
    "resources": (
        _is_k8s_resources,
        "a mapping with 'requests' and/or 'limits' mappings of quantities",
    ),
    "env": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        ),
        "a mapping of names to strings (quote numbers)",
    ),
    "worker_command": (
        lambda v: isinstance(v, str) or _is_string_list(v),
        "a string or a list of strings",
    ),
    "scheduler_service_type": (
        lambda v: v in ("ClusterIP", "NodePort", "LoadBalancer"),
        "one of ClusterIP, NodePort, LoadBalancer",
    ),
    "idle_timeout": _NON_NEGATIVE_INT,
}

_OPTIONS = {
    "local": {
        "n_workers": _POSITIVE_INT,
        "threads_per_worker": _POSITIVE_INT,
        "memory_limit": _MEMORY_LIMIT,
        "processes": _BOOL,
        "dashboard_address": _STRING,
    },
    "scheduler": {"address": _STRING, "scheduler_file": _STRING},
    "slurm": {**_JOBQUEUE_OPTIONS, "job_cpu": _POSITIVE_INT, "job_mem": _STRING},
    "pbs": {**_JOBQUEUE_OPTIONS, "resource_spec": _STRING},
    "kubernetes": {
        **_KUBERNETES_SPEC_OPTIONS,
        "namespace": _STRING,
        "resource_timeout": _POSITIVE_INT,
        "shutdown_on_close": _BOOL,
        "port_forward_cluster_ip": _BOOL,
    },
}

_REQUIRED = {
    "slurm": ("cores", "memory"),
    "pbs": ("cores", "memory"),
    "kubernetes": ("image", "n_workers"),
}

_KUBERNETES_DEFAULT_NAME = "daskgmm"


# -- validation --------------------------------------------------------------


def _validate(config, source):
    """Check a parsed configuration and return it with null options dropped.

    Parameters
    ----------
    config : object
        The parsed YAML document.
    source : str
        Name of the configuration (the file path) used in error messages.

    Returns
    -------
    dict
        ``{"cluster": {"type": ..., option: value, ...}}``.

    Raises
    ------
    ValueError
        If the configuration is invalid; the message names ``source`` and
        the offending key.
    """
    if not isinstance(config, dict) or "cluster" not in config:
        raise ValueError(
            f"{source}: expected a mapping with a top-level 'cluster' key, got {config!r}"
        )
    extra = sorted(map(str, set(config) - {"cluster"}))
    if extra:
        raise ValueError(
            f"{source}: unknown top-level key(s) {', '.join(extra)}; only 'cluster' is allowed"
        )
    cluster = config["cluster"]
    if not isinstance(cluster, dict):
        raise ValueError(f"{source}: 'cluster' must be a mapping, got {cluster!r}")
    return {"cluster": _validate_cluster(cluster, source)}


def _validate_cluster(cluster, source):
    """Validate the ``cluster`` mapping; see `_validate`."""
    if "type" not in cluster:
        raise ValueError(
            f"{source}: 'cluster.type' is missing; choose one of {', '.join(_OPTIONS)}"
        )
    kind = cluster["type"]
    if not isinstance(kind, str) or kind not in _OPTIONS:
        raise ValueError(
            f"{source}: unknown cluster.type {kind!r}; choose one of {', '.join(_OPTIONS)}"
        )
    allowed = _OPTIONS[kind]
    options = {k: v for k, v in cluster.items() if k != "type" and v is not None}
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(
                f"{source}: unknown key 'cluster.{key}' for type {kind!r}; "
                f"allowed keys: {', '.join(allowed)}"
            )
        check, description = allowed[key]
        if not check(value):
            raise ValueError(f"{source}: 'cluster.{key}' must be {description}, got {value!r}")
    for key in _REQUIRED.get(kind, ()):
        if key not in options:
            raise ValueError(f"{source}: 'cluster.{key}' is required for type {kind!r}")
    if kind == "scheduler":
        _check_one_scheduler_target(options, source)
    return {"type": kind, **options}


def _check_one_scheduler_target(options, source):
    """Require exactly one of ``address`` and ``scheduler_file``."""
    given = [key for key in ("address", "scheduler_file") if key in options]
    if len(given) != 1:
        raise ValueError(
            f"{source}: type 'scheduler' needs exactly one of 'cluster.address' "
            f"and 'cluster.scheduler_file', got {given or 'neither'}"
        )


def shipped_configs():
    """Names of the configuration files shipped with daskgmm.

    Returns
    -------
    list of str
        Sorted names such as ``"local"``; the file of each is
        ``CONFIG_DIR / (name + ".yaml")``.
    """
    return sorted(
        entry.name.removesuffix(_CONFIG_SUFFIX)
        for entry in CONFIG_DIR.iterdir()
        if entry.name.endswith(_CONFIG_SUFFIX)
    )


def config_path(config):
    """The file of a cluster configuration given by path or by shipped name.

    Parameters
    ----------
    config : str or os.PathLike
        An existing file, or the name of a shipped configuration (``"local"``
        or ``"local.yaml"``; see `shipped_configs`).

    Returns
    -------
    str or os.PathLike
        ``config`` itself when it is a file, else the shipped file.

    Raises
    ------
    FileNotFoundError
        If ``config`` is neither; the message lists the shipped names.
    """
    source = os.fspath(config)
    if os.path.isfile(source):
        return config
    name = source.removesuffix(_CONFIG_SUFFIX)
    if name in shipped_configs():
        return CONFIG_DIR / (name + _CONFIG_SUFFIX)
    raise FileNotFoundError(
        f"cluster configuration {source!r} is neither a file nor a shipped configuration "
        f"({', '.join(shipped_configs())})"
    )


def read_config(path):
    """Read and validate a cluster configuration file.

    Parameters
    ----------
    path : str or os.PathLike
        YAML file with a top-level ``cluster`` mapping, or the name of a
        shipped configuration (see `config_path`).

    Returns
    -------
    dict
        ``{"cluster": {"type": ..., option: value, ...}}``; options set to
        null in the file are left out (they keep the library default).

    Raises
    ------
    ValueError
        If the file is not valid YAML or not a valid configuration; the
        message names the file and the offending key.
    OSError
        If the file cannot be read.
    """
    source = os.fspath(config_path(path))
    with open(source, encoding="utf-8") as file:
        try:
            config = yaml.safe_load(file)
        except yaml.YAMLError as error:
            raise ValueError(f"{source}: not valid YAML: {error}") from error
    return _validate(config, source)


# -- cluster construction ----------------------------------------------------


def _machine_config():
    """Configuration of a LocalCluster sized to this machine.

    One single-threaded worker process per core, the machine's memory split
    evenly between them.
    """
    return {
        "cluster": {
            "type": "local",
            "n_workers": CPU_COUNT,
            "threads_per_worker": 1,
            "processes": True,
            "memory_limit": MEMORY_LIMIT // CPU_COUNT,
        }
    }


def _options(config):
    """Validate ``config`` and return its ``type`` and its options."""
    options = dict(_validate(config, "<config>")["cluster"])
    return options.pop("type"), options


def _import_extra(module, extra):
    """Import an optional dependency, naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this cluster type needs {module}: pip install 'daskgmm[{extra}]'"
        ) from error


def _jobqueue_cluster(kind, options):
    """Create a dask_jobqueue cluster (no job submitted yet)."""
    jobqueue = _import_extra("dask_jobqueue", "jobqueue")
    cls = {"slurm": jobqueue.SLURMCluster, "pbs": jobqueue.PBSCluster}[kind]
    options.pop("jobs", None)
    dashboard = options.pop("dashboard_address", None)
    if dashboard is not None:
        options["scheduler_options"] = {"dashboard_address": dashboard}
    return cls(**options)


def kubernetes_spec(config):
    """Build the DaskCluster resource of a ``kubernetes`` configuration.

    Uses ``dask_kubernetes.operator.make_cluster_spec``; no Kubernetes
    cluster is contacted.

    Parameters
    ----------
    config : dict
        A configuration as returned by `read_config`, of type
        ``kubernetes``.

    Returns
    -------
    dict
        The ``DaskCluster`` manifest (``apiVersion``, ``kind``,
        ``metadata``, ``spec``).

    Raises
    ------
    ValueError
        If ``config`` is invalid or not of type ``kubernetes``.
    ImportError
        If dask_kubernetes is not installed.
    """
    kind, options = _options(config)
    if kind != "kubernetes":
        raise ValueError(f"cluster.type is {kind!r}, expected 'kubernetes'")
    operator = _import_extra("dask_kubernetes.operator", "kubernetes")
    spec_options = {k: v for k, v in options.items() if k in _KUBERNETES_SPEC_OPTIONS}
    spec_options.setdefault("name", _KUBERNETES_DEFAULT_NAME)
    return operator.make_cluster_spec(**spec_options)


def _kubernetes_cluster(config, options):
    """Create a KubeCluster from the spec of `kubernetes_spec`."""
    operator = _import_extra("dask_kubernetes.operator", "kubernetes")
    cluster_options = {k: v for k, v in options.items() if k not in _KUBERNETES_SPEC_OPTIONS}
    return operator.KubeCluster(custom_cluster_spec=kubernetes_spec(config), **cluster_options)


def cluster_from_config(config):
    """Create the cluster described by a configuration.

    Parameters
    ----------
    config : dict
        A configuration as returned by `read_config`.

    Returns
    -------
    distributed.deploy.Cluster or None
        A ``LocalCluster``, ``SLURMCluster``/``PBSCluster`` (no job
        submitted: call ``scale(jobs=...)``) or ``KubeCluster``; None for
        type ``scheduler``, whose cluster already exists.

    Raises
    ------
    ValueError
        If ``config`` is invalid.
    ImportError
        If the optional dependency of the cluster type is not installed.
    """
    kind, options = _options(config)
    if kind == "scheduler":
        return None
    if kind == "local":
        return LocalCluster(**options)
    if kind == "kubernetes":
        return _kubernetes_cluster(config, options)
    return _jobqueue_cluster(kind, options)


def _scheduler_client(options):
    """Connect a client to an existing scheduler."""
    if "address" in options:
        return Client(options["address"])
    return Client(scheduler_file=os.path.expanduser(options["scheduler_file"]))


def _dashboard_link(client):
    """The dashboard URL of ``client``'s scheduler, or None if it has none."""
    try:
        return client.dashboard_link
    except KeyError:
        return None


@contextlib.contextmanager
def connect(config_path=None):
    """Connect a Dask client to the configured cluster.

    Parameters
    ----------
    config_path : str or os.PathLike, optional
        Cluster configuration file or shipped name (see `read_config`).  None starts a
        ``LocalCluster`` sized to the machine: one single-threaded worker
        process per core, the machine's memory split evenly between them.

    Yields
    ------
    distributed.Client
        Client of the cluster.  SLURM and PBS clusters are scaled to the
        configured number of ``jobs`` (1 when not given); the client does
        not wait for their workers.

    Notes
    -----
    Prints ``Dask dashboard: URL`` on standard error once connected (when
    the scheduler has a dashboard).  On exit the client is closed, and so
    is the cluster if this function created it; an existing scheduler
    (type ``scheduler``) is left running.
    """
    config = _machine_config() if config_path is None else read_config(config_path)
    settings = config["cluster"]
    with contextlib.ExitStack() as stack:
        cluster = cluster_from_config(config)
        if cluster is None:
            client = stack.enter_context(_scheduler_client(settings))
        else:
            stack.enter_context(cluster)
            if settings["type"] in ("slurm", "pbs"):
                cluster.scale(jobs=settings.get("jobs", 1))
            client = stack.enter_context(Client(cluster))
        link = _dashboard_link(client)
        if link is not None:
            print(f"Dask dashboard: {link}", file=sys.stderr)
        yield client
