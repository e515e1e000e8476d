"""Fit a daskgmm.GaussianMixture to a zarr array, as a batch job on a Dask cluster.

Run it anywhere with a local cluster (one single-threaded worker process per
core, or ``--local-workers N``)::

    python cluster_job.py --data data.zarr --n-components 8 --output model

or connect to a running scheduler with ``--address tcp://host:8786`` or
``--scheduler-file``. On SLURM, one job can start the scheduler, the workers
and this script (``sbatch job.sh``)::

    #!/bin/bash
    #SBATCH --job-name=daskgmm --nodes=4 --ntasks-per-node=1 --cpus-per-task=16
    #SBATCH --mem=0 --time=02:00:00
    SCHED="$PWD/scheduler-$SLURM_JOB_ID.json"
    srun --overlap --nodes=1 --ntasks=1 dask scheduler --scheduler-file "$SCHED" &
    srun --overlap dask worker --scheduler-file "$SCHED" \\
        --nthreads 1 --nworkers "$SLURM_CPUS_PER_TASK" &
    python cluster_job.py --scheduler-file "$SCHED" --data /scratch/data.zarr \\
        --n-components 8 --covariance-type full --output "model-$SLURM_JOB_ID"

(PBS and other schedulers work the same way: start ``dask scheduler`` and
``dask worker --scheduler-file`` on the allocated nodes, then run this script.)
The client waits for the scheduler file and for a first worker; the data path
must be readable from every worker node. The model is written with
``gm.save(path)`` when this daskgmm version has it (``daskgmm.load`` reads it
back).
"""

import argparse
import time

import zarr
from distributed import Client

import daskgmm


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="zarr array of shape (n_samples, n_features)")
    parser.add_argument("--n-components", type=int, required=True)
    parser.add_argument(
        "--covariance-type", default="full", choices=["full", "tied", "diag", "spherical"]
    )
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--random-state", type=int, default=0)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--scheduler-file", help="written by `dask scheduler --scheduler-file`")
    target.add_argument("--address", help="scheduler address, e.g. tcp://host:8786")
    target.add_argument(
        "--local-workers", type=int, help="size of the LocalCluster used without a scheduler"
    )
    parser.add_argument("--output", help="where gm.save() writes the fitted model")
    return parser.parse_args(argv)


def connect(args):
    """A client of the given scheduler, or of a new LocalCluster that it closes on exit."""
    if args.scheduler_file:
        client = Client(scheduler_file=args.scheduler_file)
    elif args.address:
        client = Client(args.address)
    else:
        # With no address, Client starts (and owns) a LocalCluster of worker processes.
        return Client(n_workers=args.local_workers, threads_per_worker=1, processes=True)
    client.wait_for_workers(1)
    return client


def main(argv=None):
    args = parse_args(argv)
    with connect(args) as client:
        n_workers = len(client.scheduler_info()["workers"])
        print(f"cluster: {n_workers} workers, dashboard {client.dashboard_link}", flush=True)

        X = zarr.open_array(args.data, mode="r")
        print(f"data: {args.data}, shape {X.shape}, chunks {X.chunks}", flush=True)

        gm = daskgmm.GaussianMixture(
            n_components=args.n_components,
            covariance_type=args.covariance_type,
            max_iter=args.max_iter,
            random_state=args.random_state,
        )
        tic = time.perf_counter()
        gm.fit(X)
        elapsed = time.perf_counter() - tic

        print(f"fit: {elapsed:.1f} s, {gm.n_iter_} iterations, converged: {gm.converged_}")
        print(f"lower bound (mean log-likelihood): {gm.lower_bound_:.6f}")
        print(f"BIC: {gm.bic(X):.6g}")
        for k, (weight, mean) in enumerate(zip(gm.weights_, gm.means_)):
            coords = ", ".join(f"{m:.4g}" for m in mean)
            print(f"component {k}: weight {weight:.4f}, mean [{coords}]")

        if args.output is None:
            print("no --output given: model not saved")
        elif hasattr(gm, "save"):
            gm.save(args.output)
            print(f"model saved to {args.output}")
        else:
            print(f"note: this daskgmm has no GaussianMixture.save; {args.output} not written")


if __name__ == "__main__":
    main()
