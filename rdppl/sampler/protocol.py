"""Forward AIS with the preliminary/reported protocol; reverse AIS (docs/math.md §3-4).

:func:`forward` runs the reference protocol of Huang et al. (App. C.3), extended: a
preliminary run adapts a step size and an inverse mass matrix per example and
records them at every temperature; optionally the reported run's temperatures are
then placed at equal thermodynamic length from the preliminary run's distortion
variances, and the recorded settings interpolated onto them. The reported run, with
a fresh key, replays everything frozen, so it is a valid AIS run (adaptation during
it would break the Markov property). :func:`reverse` replays a forward run's tuning
backwards from given exact samples (BDMC).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from rdppl.numerics.schedules import equal_length_schedule, insert_temperatures
from rdppl.program.decorator import TracedModel
from rdppl.sampler import ais
from rdppl.sampler.flags import Flags, as_flags
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.records import AISRun, Tuning
from rdppl.sampler.runner import DEFAULT_EXECUTION, Execution, run_path
from rdppl.sampler.thinning import curve_points

__all__ = [
    "Forward",
    "ProtocolOptions",
    "forward",
    "init_from_prior",
    "interpolate_tuning",
    "look_ahead",
    "reverse",
]


class ProtocolOptions(NamedTuple):
    """What the preliminary run decides for the reported run, beyond step sizes.

    Attributes
    ----------
    tune_schedule
        Place the reported run's temperatures (as many as the schedule has) at
        equal thermodynamic length, from the preliminary run's distortion
        variances (docs/math.md §3.6).
    resample_threshold
        Resample the chains when their importance ESS falls below this fraction of
        their number (docs/math.md §3.7); ``None`` never resamples. The
        preliminary run decides where and the reported run resamples at the same
        temperatures (frozen), so its ``log Z`` estimate stays unbiased.
    preliminary_chains
        Chains per example of the preliminary run (``None``: as many as the
        reported run): it costs this fraction of the reported run's gradient
        evaluations. Its chains are independent of the reported run's, so the
        reported run stays unbiased whatever they number.
    lookahead
        Replay at each temperature the settings the preliminary run reached
        *after* its transition there (having seen that transition's acceptance
        and spread), rather than the ones it used (docs/math.md §3.3).
    num_curve_points
        Keep both runs' records at this many temperatures, evenly spread along
        the schedule (:mod:`rdppl.sampler.thinning`); the reported run replays
        the preliminary run's settings per block of transitions between them.
        ``None``: at every temperature.
    """

    tune_schedule: bool = False
    resample_threshold: float | None = None
    preliminary_chains: int | None = None
    lookahead: bool = False
    num_curve_points: int | None = None


DEFAULT_OPTIONS = ProtocolOptions()


@eqx.filter_jit
def init_from_prior(
    target: TracedModel, rng_key: jax.Array, data: jax.Array, num_chains: int
) -> ais.AISState:
    """Draw every chain of every example (and its momentum) from the start."""
    keys = jax.random.split(rng_key, (data.shape[0], num_chains))
    momentum_keys = jax.vmap(lambda k: jax.random.fold_in(k[0], 1))(keys)

    def one_example(
        example_keys: jax.Array, momentum_key: jax.Array, example: jax.Array
    ) -> ais.AISState:
        position = jax.vmap(lambda key: target.sample_initial(key, example))(
            example_keys
        )
        return ais.init(position.astype(jnp.result_type(float)), momentum_key)

    return jax.vmap(one_example)(keys, momentum_keys, data)


class Forward(NamedTuple):
    """A forward run and what it replayed.

    Attributes
    ----------
    run
        The reported run.
    betas
        Its schedule (the tuned one, with any captured temperatures inserted).
    tuning
        The step sizes and inverse mass matrices it replayed.
    preliminary_gradient_evaluations
        What the preliminary run cost (0 without one).
    capture
        Indices into ``betas`` of the requested capture temperatures, in order.
    """

    run: AISRun
    betas: np.ndarray
    tuning: Tuning
    preliminary_gradient_evaluations: int
    capture: list[int]


def interpolate_tuning(
    tuning: Tuning,
    betas: np.ndarray,
    new_betas: np.ndarray,
    new_starts: np.ndarray | None = None,
) -> Tuning:
    """Recorded settings at the transitions of ``betas``, moved to ``new_betas``.

    Transition ``k`` runs at ``betas[k + 1]``; a block of transitions is placed at
    its first one. Step sizes and diagonal inverse mass matrices are interpolated
    linearly in log space along ``beta``, dense ones linearly (a convex combination
    stays positive definite). ``new_starts``: the blocks of the new tuning
    (``None``: one per transition of ``new_betas``).
    """
    betas = np.asarray(betas, np.float64)
    new_betas = np.asarray(new_betas, np.float64)
    old = betas[1:] if tuning.starts is None else betas[np.asarray(tuning.starts) + 1]
    new = new_betas[1:] if new_starts is None else new_betas[new_starts + 1]
    position = np.interp(new, old, np.arange(len(old)))
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(old) - 1)
    fraction = position - low

    def blend(values: np.ndarray, log: bool) -> np.ndarray:
        shape = (-1,) + (1,) * (values.ndim - 1)
        f = fraction.reshape(shape)
        a, b = values[low], values[high]
        if log:
            return np.exp((1 - f) * np.log(a) + f * np.log(b))
        return (1 - f) * a + f * b

    imm = tuning.inverse_mass_matrix
    return Tuning(
        blend(np.asarray(tuning.step_size, np.float64), log=True),
        blend(np.asarray(imm, np.float64), log=imm.ndim < 4),
        _move_resampling(tuning.resample, betas, new_betas),
        new_starts,
    )


def _move_resampling(
    resample: Flags | np.ndarray | None, betas: np.ndarray, new_betas: np.ndarray
) -> Flags | None:
    """Resample before new transition ``j`` if the old run resampled in its range.

    Old transition ``k`` (at ``betas[k]``) falls in new transition ``j`` when
    ``new_betas[j-1] < betas[k] <= new_betas[j]``.
    """
    if resample is None:
        return None
    old = np.asarray(betas, np.float64)[1:]
    new = np.asarray(new_betas, np.float64)
    owner = np.clip(np.searchsorted(new, old, side="left"), 1, len(new) - 1) - 1
    return as_flags(resample).gathered(owner, len(new) - 1)


def forward(
    target: TracedModel,
    kernel: MCMCKernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    num_chains: int,
    execution: Execution = DEFAULT_EXECUTION,
    capture_betas: Sequence[float] = (),
    options: ProtocolOptions = DEFAULT_OPTIONS,
    label: str = "",
) -> Forward:
    """Forward AIS from the prior with the preliminary/reported protocol.

    Parameters
    ----------
    betas
        The schedule of the preliminary run, and of the reported run unless
        ``tune_schedule``.
    capture_betas
        Temperatures at which the reported run keeps its weighted chains; each is
        inserted into the schedule exactly.
    options
        Schedule tuning and resampling (:class:`ProtocolOptions`); both need the
        preliminary run (``kernel.adapt_step_size``).

    Returns
    -------
    Forward
    """
    key_preliminary, key_formal = jax.random.split(rng_key)
    prefix = f"{label}: " if label else ""

    resampling = options.resample_threshold is not None

    def run_from_prior(
        key, path, tuning, name, captures=(), threshold=None, chains=num_chains,
        moves=kernel,
    ):  # fmt: skip
        init_key, run_key = jax.random.split(key)
        return run_path(
            target,
            moves,
            init_from_prior(target, init_key, data, chains),
            path,
            final_beta=float(path[-1]),
            replay=tuning,
            rng_key=run_key,
            data=data,
            execution=execution,
            label=prefix + name,
            capture=captures,
            resample_threshold=threshold,
            resampling=resampling,
            num_points=options.num_curve_points,
        )

    tune_schedule = options.tune_schedule
    betas = np.asarray(betas, np.float64)
    if not tune_schedule:
        betas, _ = insert_temperatures(betas, capture_betas)
    preliminary_cost = 0
    if kernel.adapt_step_size:
        preliminary = run_from_prior(
            key_preliminary,
            betas,
            None,
            "preliminary run",
            threshold=options.resample_threshold,
            chains=options.preliminary_chains or num_chains,
            moves=kernel.tuning_kernel(),
        )
        tuning = preliminary.tuning
        if options.lookahead:
            tuning = look_ahead(tuning)
        preliminary_cost = preliminary.num_gradient_evaluations
        if tune_schedule:
            tuned = _tuned_schedule(betas, preliminary)
            tuned, _ = insert_temperatures(tuned, capture_betas)
            kept = curve_points(len(tuned) - 1, options.num_curve_points)
            thinned = len(kept) < len(tuned)
            tuning = interpolate_tuning(
                tuning, betas, tuned, kept[:-1] if thinned else None
            )
            betas = tuned
    else:  # one block: the kernel's step size everywhere
        dim = int(jax.eval_shape(target.sample_initial, key_formal, data[0]).shape[-1])
        shape = kernel.inverse_mass_matrix_shape(dim)
        tuning = Tuning(
            np.full((1, data.shape[0]), kernel.step_size),
            np.ones((1, data.shape[0], *shape)),
            starts=np.zeros(1, np.int64),
        )
    _, capture = insert_temperatures(betas, capture_betas)
    run = run_from_prior(
        key_formal, betas, tuning, "reported run", sorted(set(capture))
    )
    return Forward(run, betas, tuning, preliminary_cost, capture)


def look_ahead(tuning: Tuning) -> Tuning:
    """The settings each transition's adaptation ended with, not the ones it used.

    The preliminary run used ``step_size[k]`` at transition ``k`` and, having seen
    its acceptance, moved on to ``step_size[k + 1]``: that is its best value for
    transition ``k``. Step sizes and inverse mass matrices shift back by one
    transition, or block of transitions (the last keeps its own); the resampling
    decisions stay.
    """

    def shifted(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values[1:], values[-1:]]) if len(values) else values

    return Tuning(
        shifted(np.asarray(tuning.step_size)),
        shifted(np.asarray(tuning.inverse_mass_matrix)),
        tuning.resample,
        tuning.starts,
    )


def _tuned_schedule(betas: np.ndarray, preliminary: AISRun) -> np.ndarray:
    """Equal thermodynamic length from the preliminary run, or ``betas`` if unusable."""
    variance = preliminary.distortion_variance
    usable = np.all(np.isfinite(variance), axis=1)
    if not np.any(usable):
        return betas
    try:  # the variances are known at the preliminary run's curve points
        return equal_length_schedule(
            betas[preliminary.kept], variance[usable], len(betas) - 1
        )
    except ValueError:
        return betas


def reverse(
    target: TracedModel,
    kernel: MCMCKernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    exact_position: jax.Array,
    num_chains: int,
    tuning: Tuning,
    execution: Execution = DEFAULT_EXECUTION,
    label: str = "",
    resampling: bool = False,
    num_points: int | None = None,
) -> AISRun:
    """Reverse AIS from exact samples of ``pi_{betas[-1]}`` back to ``beta = 0``.

    Parameters
    ----------
    betas
        The forward schedule ``beta_0 .. beta_K`` (walked backwards).
    exact_position
        One exact unconstrained sample per example, ``(examples, dim)``; every chain
        of an example starts there (with its own momentum).
    tuning
        The forward run's tuning, ``K`` transitions; transition ``T_k`` reuses the
        settings of ``beta_k``.
    resampling
        Compile the (unused: reverse AIS never resamples) resampling step in, so
        the reverse run shares the forward run's compilation.
    num_points
        Keep the records at this many temperatures (``None``: all).

    Returns
    -------
    AISRun
        ``final_log_weight`` holds ``log u``; ``-log_mean_exp(log u)`` is the
        stochastic upper bound on ``log Z`` (docs/math.md §4).
    """
    start_key, rng_key = jax.random.split(rng_key)
    start = jnp.broadcast_to(
        exact_position[:, None, :],
        (exact_position.shape[0], num_chains, exact_position.shape[-1]),
    ).astype(jnp.result_type(float))
    # Path beta_K, beta_K, beta_{K-1}, ..., beta_1: the first step only moves.
    path = np.concatenate([betas[-1:], betas[:0:-1]])
    return run_path(
        target,
        kernel,
        jax.vmap(ais.init)(start, jax.random.split(start_key, start.shape[0])),
        path,
        final_beta=0.0,
        replay=tuning.reversed(len(betas) - 1),
        rng_key=rng_key,
        data=data,
        execution=execution,
        label=f"{label}: reverse AIS" if label else "reverse AIS",
        resampling=resampling,
        num_points=num_points,
    )
