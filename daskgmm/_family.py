"""Model families: what the EM engine fits, as reduced statistics plus an update.

After pomegranate's ``summarize`` / ``from_summaries`` split: a pass reduces
every model's rows to ``Stats`` (one block at a time by the family's
``statistics``, in a task of ``_graph``; merged by ``_stats.merge``), and
the model's family turns them into new parameters. The engine (``_graph``,
``_em``, ``_incremental``, ``_checkpoint``) asks the family of
``_em.Settings.family`` and knows no family by name. A family owns:

``statistics(x, sample_weight, parameters)``
    The E-step and sufficient statistics of one in-memory block of rows
    under the model's ``parameters`` (``_kernels.em_statistics``).
``weighted_log_prob(X, parameters)``
    log pi_k + log N(x | mu_k, Sigma_k) of every row and component, (n, K),
    with the family's constants in place of log pi_k: predictions.
``log_weights(parameters)`` / ``with_entropy``
    The E-step's per-component log constants and whether its statistics
    carry their ``sum r log r``: what a family wrapping this one (rows with
    NaN, ``_missing``) runs its own E-step with.
``update(stats, previous, reg_covar, params, iteration)``
    Its M-step on one pass's reduced statistics: ``(Parameters, bound of
    the pass)``. Raises ValueError when a covariance becomes ill-defined.
``failed_bound(stats, last_bound)``
    The bound to record for a pass whose M-step failed, the model keeping
    its parameters: the bound of those parameters.
``block_statistics(parameters, stats)``
    A block's statistics, whose E-step had ``parameters``, with their
    ``sum r log r`` (``entropy``) that incremental EM's bound needs.
``free_energy(parameters, computed)``
    Incremental EM's bound at the end of a lap: ``computed`` sums every
    block's statistics of its last E-step, ``parameters`` are the M-step's.
``checkpoint_arrays(parameters)`` / ``restored(parameters, arrays)``
    The arrays a checkpoint holds beyond the Gaussian parameters, and the
    ``Parameters`` with them put back.
``fitted_arrays``
    The fitted attributes its estimator adds to a mixture's, which a model
    file saves (``_persist.SavedAttributes.family``).

`MaximumLikelihood` is EM (``GaussianMixture``, ``GaussianMixtureIC``,
``GaussianMixtureClassifier``); `Variational` is scikit-learn's variational
mixture (``BayesianGaussianMixture``), holding its `Prior`. Both share the
Gaussian E-step (`GaussianEStep`), with their own constants. An estimator
fits its family wrapped by its ``nan_policy`` (``_missing.NAN_POLICIES``:
NaN an error, rows with NaN left out, or their observed entries fitted),
a family itself that hands everything but the E-step to the one it wraps.
"""

from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from . import _kernels
from ._covariance import expected_log_likelihood
from ._mstep import Posterior, Prior, m_step, variational_lower_bound, variational_step


class Family(Protocol):
    """What the engine asks of a model family (see the module docstring)."""

    fitted_arrays: tuple
    with_entropy: bool

    def statistics(self, x, sample_weight, parameters): ...

    def weighted_log_prob(self, X, parameters): ...

    def log_weights(self, parameters): ...

    def update(self, stats, previous, reg_covar, params, iteration): ...

    def failed_bound(self, stats, last_bound): ...

    def block_statistics(self, parameters, stats): ...

    def free_energy(self, parameters, computed): ...

    def checkpoint_arrays(self, parameters): ...

    def restored(self, parameters, arrays): ...


def checked_weight(stats):
    """The total weight of the rows the statistics sum, which must be positive."""
    if not stats.weight > 0:
        raise ValueError("sample_weight must not sum to zero.")
    return float(stats.weight)


def mean_loglik(stats):
    """The mean log-likelihood of the rows the statistics sum."""
    return float(stats.loglik) / checked_weight(stats)


def _expected(parameters, stats):
    """`expected_log_likelihood` of ``stats`` under a model's ``parameters``: EM's Q."""
    return expected_log_likelihood(stats, parameters.weights, parameters.means,
                                   parameters.prec_chol, parameters.covariance_type)


def responsibility_entropy(parameters, stats):
    """The sum of ``r log r`` over the rows of ``stats``, whose E-step had ``parameters``.

    Summed, ``r log r = r log(pi_k N_k) - r log p(x)``: Q minus the log-likelihood.
    """
    return _expected(parameters, stats) - float(stats.loglik)


def free_energy(parameters, computed):
    """Neal & Hinton's free energy F(q, theta), EM's lower bound of the log-likelihood.

    ``computed`` sums every block's statistics with the responsibilities q
    of its last E-step, and their ``sum r log r`` (``entropy``):
    F = Q(theta) - sum r log r. A block's E-step raises F to that block's
    log-likelihood, an M-step on computed statistics maximises Q: plain
    incremental EM never lowers F, and F at the end of a lap is at most the
    log-likelihood of the data under the lap's final parameters.
    """
    return _expected(parameters, computed) - float(computed.entropy)


class GaussianEStep:
    """The E-step of a Gaussian mixture with its family's per-component log
    constants (``log_weights``) and, ``with_entropy``, ``sum r log r``."""

    def statistics(self, x, sample_weight, parameters, rows=None):
        """`_kernels.em_statistics` of the rows ``x`` (of its rows ``rows``, read in
        place, if given) under ``parameters``."""
        return _kernels.em_statistics(x, sample_weight, parameters.weights, parameters.means,
                                      parameters.prec_chol, parameters.covariance_type,
                                      self.log_weights(parameters), self.with_entropy, rows)

    def weighted_log_prob(self, X, parameters):
        """`_kernels.estimate_weighted_log_prob` of the rows ``X``, (n, K)."""
        return _kernels.estimate_weighted_log_prob(
            X, parameters.weights, parameters.means, parameters.prec_chol,
            parameters.covariance_type, self.log_weights(parameters))


@dataclass(frozen=True)
class MaximumLikelihood(GaussianEStep):
    """EM's family: scikit-learn's ``GaussianMixture`` E- and M-step; the bound is
    the mean log-likelihood (per unit of row weight)."""

    fitted_arrays = ()
    # EM's bound needs no ``sum r log r``; incremental EM's comes from Q (`block_statistics`).
    with_entropy = False

    def log_weights(self, parameters):
        """log(pi_k)."""
        return np.log(parameters.weights)

    def update(self, stats, previous, reg_covar, params, iteration):
        """`_mstep.m_step`, and the mean log-likelihood of the pass (before the step)."""
        bound = mean_loglik(stats)
        return m_step(stats, reg_covar, params, previous, iteration), bound

    def failed_bound(self, stats, last_bound):
        """The pass's mean log-likelihood: its E-step had the parameters the model keeps."""
        return mean_loglik(stats)

    def block_statistics(self, parameters, stats):
        """``sum r log r`` from Q: the E-step does not sum it (``with_entropy``)."""
        return stats._replace(entropy=responsibility_entropy(parameters, stats))

    def free_energy(self, parameters, computed):
        """`free_energy` per unit of row weight, comparable with the mean log-likelihood."""
        return free_energy(parameters, computed) / checked_weight(computed)

    def checkpoint_arrays(self, parameters):
        return {}

    def restored(self, parameters, arrays):
        return parameters


@dataclass(frozen=True)
class Variational(GaussianEStep):
    """scikit-learn's ``BayesianGaussianMixture``: its variational E-step, M-step and
    lower bound.

    ``prior`` is None until the estimator has set its priors (a checkpoint
    is read before; restoring one does not need them).
    """

    prior: Optional[Prior] = None

    fitted_arrays = ("weight_concentration_", "mean_precision_", "degrees_of_freedom_",
                     "weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
                     "degrees_of_freedom_prior_", "covariance_prior_")
    # The lower bound subtracts the responsibilities' ``sum r log r``.
    with_entropy = True

    def log_weights(self, parameters):
        """The posterior's E-step constants (`_mstep.e_step_constants`) replacing log(pi_k)."""
        return parameters.posterior.log_weights

    def update(self, stats, previous, reg_covar, params, iteration):
        """`_mstep.variational_step`, and the variational bound after it (``params`` unused:
        scikit-learn's variational mixture updates every parameter)."""
        parameters = variational_step(stats, reg_covar, self.prior, previous.covariance_type,
                                      iteration)
        return parameters, self.free_energy(parameters, stats)

    def failed_bound(self, stats, last_bound):
        """The bound recorded when the posterior the model keeps was made."""
        return last_bound

    def block_statistics(self, parameters, stats):
        """The E-step summed ``r log r`` already (``with_entropy``)."""
        return stats

    def free_energy(self, parameters, computed):
        """The evidence lower bound of the responsibilities ``computed`` sums, with the
        posterior ``parameters`` the M-step made of them (Bishop 2006, eq. 10.70-10.77).

        scikit-learn's ``_compute_lower_bound`` (`_mstep.variational_lower_bound`)
        is that bound once the expected log-likelihood terms cancel against
        the posterior's: exact for parameters that are the M-step of the same
        statistics, as incremental variational Bayes has at every step (Sato
        2001), so that its lap never lowers it.
        """
        return variational_lower_bound(parameters, computed.entropy,
                                       self.prior.weight_concentration_type)

    def checkpoint_arrays(self, parameters):
        return {name: np.asarray(value, dtype=np.float64)
                for name, value in parameters.posterior._asdict().items()}

    def restored(self, parameters, arrays):
        return parameters._replace(posterior=Posterior(*(arrays[name]
                                                         for name in Posterior._fields)))


MAXIMUM_LIKELIHOOD = MaximumLikelihood()
