"""Synthetic Gaussian-mixture data, generated lazily chunk by chunk."""

from functools import partial

import dask.array as da
import numpy as np


def mixture_parameters(n_features, n_components, seed=0, separation=5.0):
    """Random weights, means and full covariances of a mixture.

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=separation, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    covariances = factors @ factors.transpose(0, 2, 1) + 0.1 * np.eye(n_features)
    return weights, means, covariances


def _block_labels(block_info, weights, seed):
    """The generator of a block (from ``seed`` and its first row) and its rows' components."""
    start, stop = block_info[None]["array-location"][0]
    rng = np.random.default_rng([seed, start])
    return rng, rng.choice(len(weights), size=stop - start, p=weights)


def _sample_block(block, block_info=None, *, weights, means, chol, seed):
    rng, labels = _block_labels(block_info, weights, seed)
    noise = rng.standard_normal((len(labels), means.shape[1]))
    return means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)


def _label_block(block, block_info=None, *, weights, seed):
    return _block_labels(block_info, weights, seed)[1]


def make_mixture(n_samples, n_features, n_components, chunk_rows=100_000, seed=0,
                 return_labels=False):
    """A lazy Dask array of rows drawn from a random Gaussian mixture.

    Each chunk is generated from ``seed`` and its first row's index, so the
    data never has to fit in memory and is the same on every run.

    Parameters
    ----------
    n_samples, n_features, n_components : int
    chunk_rows : int, default=100_000
        Rows per chunk.
    seed : int, default=0
        Seed of the parameters and of every chunk.
    return_labels : bool, default=False
        Also return each row's true component, lazily and chunked like ``X``.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features), float64
    labels : dask.array.Array of shape (n_samples,), int64
        Only when ``return_labels`` is true.
    parameters : tuple
        The true ``(weights, means, covariances)``.
    """
    weights, means, covariances = mixture_parameters(n_features, n_components, seed)
    chol = np.linalg.cholesky(covariances)
    template = da.empty((n_samples, n_features), chunks=(chunk_rows, n_features))
    X = template.map_blocks(
        partial(_sample_block, weights=weights, means=means, chol=chol, seed=seed),
        dtype=np.float64,
    )
    if not return_labels:
        return X, (weights, means, covariances)
    labels = template[:, 0].map_blocks(
        partial(_label_block, weights=weights, seed=seed), dtype=np.int64
    )
    return X, labels, (weights, means, covariances)
