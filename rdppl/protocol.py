"""Forward AIS with the step-size protocol, and reverse AIS (docs/math.md §3, §4).

:func:`forward` runs the reference protocol of Huang et al. (App. C.3): a preliminary
run adapts a step size per example and records it at every temperature; a formal run
with a fresh key replays the recorded step sizes unchanged, so the reported run is a
valid AIS run (adaptation during it would break the Markov property). :func:`reverse`
replays given step sizes backwards from given exact samples (BDMC).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from rdppl import ais
from rdppl.kernels import MCMCKernel
from rdppl.model import TracedModel
from rdppl.runner import DEFAULT_EXECUTION, AISRun, Execution, run_path

__all__ = ["forward", "init_from_prior", "reverse"]


@eqx.filter_jit
def init_from_prior(
    target: TracedModel, rng_key: jax.Array, data: jax.Array, num_chains: int
) -> ais.AISState:
    """Draw every chain of every example from the starting distribution."""
    keys = jax.random.split(rng_key, (data.shape[0], num_chains))

    def one_example(example_keys: jax.Array, example: jax.Array) -> ais.AISState:
        position = jax.vmap(lambda key: target.sample_initial(key, example))(
            example_keys
        )
        return ais.init(position.astype(jnp.result_type(float)))

    return jax.vmap(one_example)(keys, data)


def forward(
    target: TracedModel,
    kernel: MCMCKernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    num_chains: int,
    execution: Execution = DEFAULT_EXECUTION,
    capture: Sequence[int] = (),
    label: str = "",
) -> tuple[AISRun, np.ndarray, int]:
    """Forward AIS from the prior with the preliminary/formal step-size protocol.

    Returns
    -------
    run, step_sizes, preliminary_gradient_evaluations
        The formal run, the step sizes it replayed ``(steps, examples)``, and the
        gradient evaluations spent by the preliminary run (0 without adaptation).
    """
    key_preliminary, key_formal = jax.random.split(rng_key)
    prefix = f"{label}: " if label else ""

    def run_from_prior(key, step_sizes, name, captures=()):
        init_key, run_key = jax.random.split(key)
        return run_path(
            target,
            kernel,
            init_from_prior(target, init_key, data, num_chains),
            betas,
            final_beta=float(betas[-1]),
            replay_step_sizes=step_sizes,
            rng_key=run_key,
            data=data,
            execution=execution,
            label=prefix + name,
            capture=captures,
        )

    preliminary_cost = 0
    if kernel.adapt_step_size:
        preliminary = run_from_prior(key_preliminary, None, "preliminary run")
        step_sizes = preliminary.step_size[:, 1:].T
        preliminary_cost = preliminary.num_gradient_evaluations
    else:
        step_sizes = np.full((len(betas) - 1, data.shape[0]), kernel.step_size)
    run = run_from_prior(key_formal, step_sizes, "formal run", capture)
    return run, step_sizes, preliminary_cost


def reverse(
    target: TracedModel,
    kernel: MCMCKernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    exact_position: jax.Array,
    num_chains: int,
    step_sizes: np.ndarray,
    execution: Execution = DEFAULT_EXECUTION,
    label: str = "",
) -> AISRun:
    """Reverse AIS from exact samples of ``pi_{betas[-1]}`` back to ``beta = 0``.

    Parameters
    ----------
    betas
        The forward schedule ``beta_0 .. beta_K`` (walked backwards).
    exact_position
        One exact unconstrained sample per example, ``(examples, dim)``; every chain
        of an example starts there.
    step_sizes
        The forward step sizes ``(K, examples)``; transition ``T_k`` reuses the step
        size of ``beta_k``.

    Returns
    -------
    AISRun
        ``final_log_weight`` holds ``log u``; ``-log_mean_exp(log u)`` is the
        stochastic upper bound on ``log Z`` (docs/math.md §4).
    """
    start = jnp.broadcast_to(
        exact_position[:, None, :],
        (exact_position.shape[0], num_chains, exact_position.shape[-1]),
    ).astype(jnp.result_type(float))
    # Path beta_K, beta_K, beta_{K-1}, ..., beta_1: the first step only moves.
    path = np.concatenate([betas[-1:], betas[:0:-1]])
    return run_path(
        target,
        kernel,
        jax.vmap(ais.init)(start),
        path,
        final_beta=0.0,
        replay_step_sizes=np.asarray(step_sizes)[::-1],
        rng_key=rng_key,
        data=data,
        execution=execution,
        label=f"{label}: reverse AIS" if label else "reverse AIS",
    )
