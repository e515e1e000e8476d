"""Spark ML's GaussianMixture on a NumPy array, for ``benchmarks/bench_em.py --spark``.

Needs ``pip install pyspark`` and a Java runtime (``java -version``; Spark 4
needs Java 17 or later). bench_em.py imports this module only when both are
there.

The array is saved as one ``.npy`` file, which the executors' Python workers
read in row slices (memory-mapped): the rows never go through this process as
Python objects, and no Python process holds more than one slice of them. The
DataFrame of one vector column is cached and counted before any fit is timed.

Spark's linear algebra uses the system's ``libblas.so.3`` / ``liblapack.so.3``
when it finds them (``apt-get install libopenblas0`` provides them), else its
own Java implementation (a failed ``dlopen(libblas.so.3)`` on standard error
says that it uses the Java one).
"""

import os
import sys
from contextlib import contextmanager
from functools import partial

import numpy as np
from pyspark.ml.clustering import GaussianMixture
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import SparkSession
from pyspark.sql.types import StructField, StructType

MASTER = "local[2]"
DRIVER_MEMORY = "4g"


@contextmanager
def session():
    """A quiet local[2] SparkSession whose Python workers run this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(MASTER)
        .appName("bench_em")
        .config("spark.driver.memory", DRIVER_MEMORY)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # The executors' Python workers unpickle read_rows by importing this module.
    spark.sparkContext.addPyFile(__file__)
    try:
        yield spark
    finally:
        spark.stop()


def read_rows(path, bounds):
    """Rows ``start:stop`` of the ``.npy`` file at ``path``, one vector per row."""
    start, stop = bounds
    block = np.load(path, mmap_mode="r")[start:stop]
    return ((Vectors.dense(row),) for row in block)


def features_frame(spark, path, n_rows, n_slices):
    """The ``.npy`` file at ``path`` as a cached DataFrame with a ``features`` vector column."""
    rows = -(-n_rows // n_slices)
    bounds = [(start, min(start + rows, n_rows)) for start in range(0, n_rows, rows)]
    rdd = spark.sparkContext.parallelize(bounds, len(bounds)).flatMap(partial(read_rows, path))
    frame = spark.createDataFrame(rdd, StructType([StructField("features", VectorUDT())]))
    frame.cache().count()
    return frame


class SparkGaussianMixture:
    """Spark ML's GaussianMixture (full covariances) with scikit-learn's fit, n_iter_, means_."""

    def __init__(self, n_components, max_iter, seed):
        self.estimator = GaussianMixture(k=n_components, maxIter=max_iter, tol=0.0, seed=seed)

    def fit(self, frame):
        model = self.estimator.fit(frame)
        self.n_iter_ = model.summary.numIter
        self.means_ = np.array([gaussian.mean.toArray() for gaussian in model.gaussians])
        return self
