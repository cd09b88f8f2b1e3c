"""Run AIS over a whole schedule: segments, progress, and the step-size protocol.

:func:`forward` runs the reference protocol of Huang et al. (App. C.3): a preliminary
run adapts a step size per example and records it at every temperature; a formal run
with a fresh key replays the recorded step sizes unchanged, so the reported run is a
valid AIS run (adaptation during it would break the Markov property). :func:`reverse`
replays given step sizes backwards from given exact samples (BDMC).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from rdppl import ais
from rdppl.kernels import Kernel
from rdppl.model import ModelSpec

__all__ = [
    "AISRun",
    "forward",
    "reverse",
    "run_path",
    "shard_examples",
    "validate_devices",
]

EXAMPLE_AXIS = "example"
DEFAULT_CHUNK_SIZE = 256


class AISRun(NamedTuple):
    """Host-side results of one AIS run over a schedule (NumPy arrays).

    Per-temperature arrays have shape ``(examples, temperatures)`` and follow the path
    order; the kernel diagnostics at the starting temperature (no transition) are NaN
    (rates, step sizes) or 0 (counts). ``captured_position`` ``(captures, examples,
    chains, dim)`` and ``captured_log_weight`` ``(captures, examples, chains)`` hold
    the weighted chains at the requested path indices.
    """

    log_z: np.ndarray
    distortion: np.ndarray
    effective_sample_size: np.ndarray
    num_nonfinite: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    num_divergent: np.ndarray
    final_log_weight: np.ndarray
    final_position: np.ndarray
    num_gradient_evaluations: int
    captured_position: np.ndarray
    captured_log_weight: np.ndarray


def shard_examples(
    tree: Any, devices: Sequence[jax.Device] | None, *, axis: int = 0
) -> Any:
    """Place every array of ``tree`` on ``devices``, split along the example axis.

    Examples are independent, so the compiled AIS loop then runs each device's share
    of examples in parallel (the computation follows the data's sharding). With
    ``None`` or a single device the tree is returned unchanged.
    """
    if devices is None or len(devices) < 2:
        return tree
    mesh = Mesh(np.asarray(devices), (EXAMPLE_AXIS,))
    spec = PartitionSpec(*([None] * axis), EXAMPLE_AXIS)
    return jax.device_put(tree, NamedSharding(mesh, spec))


def validate_devices(
    devices: Sequence[jax.Device] | None, num_examples: int
) -> list[jax.Device] | None:
    """Check that examples split evenly over ``devices``."""
    if devices is None:
        return None
    devices = list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty list of jax devices or None")
    if num_examples % len(devices):
        raise ValueError(
            f"the number of examples ({num_examples}) must be a multiple of the "
            f"number of devices ({len(devices)}) to shard examples across them"
        )
    return devices


def _segments(
    num_steps: int, chunk_size: int | None, boundaries: Sequence[int] = ()
) -> list[slice]:
    """Consecutive step ranges of at most ``chunk_size``, also cut at ``boundaries``."""
    size = num_steps if chunk_size is None else max(1, int(chunk_size))
    cuts = set(range(0, num_steps, size)) | {b for b in boundaries if 0 < b < num_steps}
    starts = sorted(cuts)
    return [
        slice(start, stop)
        for start, stop in zip(starts, [*starts[1:], num_steps], strict=True)
    ]


def _pad(values: np.ndarray, length: int, fill: Any) -> np.ndarray:
    """Extend ``values`` along its first axis to ``length`` with ``fill``."""
    padding = np.full((length - len(values), *values.shape[1:]), fill, values.dtype)
    return np.concatenate([values, padding])


def run_path(
    spec: ModelSpec,
    kernel: Kernel,
    state: ais.AISState,
    path: np.ndarray,
    *,
    final_beta: float,
    replay_step_sizes: np.ndarray | None,
    rng_key: jax.Array,
    data: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    chunk_size: int | None,
    progress: bool | str,
    devices: Sequence[jax.Device] | None = None,
    capture: Sequence[int] = (),
) -> AISRun:
    """Run the transitions ``(path[j-1], path[j])`` then finish at ``final_beta``.

    Parameters
    ----------
    state
        Starting carry (chains exact at ``path[0]``).
    path
        Inverse temperatures in the order visited, shape ``(steps + 1,)``.
    final_beta
        Temperature of the last weight increment (``path[-1]`` for forward AIS,
        ``0`` for reverse AIS).
    replay_step_sizes
        Step size per step and example, ``(steps, examples)``; ``None`` adapts.
    chunk_size
        Steps per compiled segment (default 256). Every segment is padded to this
        length with inactive steps, so runs of any length, the preliminary and formal
        runs, and reverse runs all share one compilation.
    progress
        Show a progress bar; a string is used as its label.
    devices
        Shard the examples across these devices (``None``: default placement).
    capture
        Path indices at which to keep the chains and their weights (index ``j``:
        after the transition at ``path[j]``, the pairs are weighted for it). Each
        capture cuts a segment, which may compile another segment length.
    """
    dtype = jnp.result_type(float)
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    num_examples = data.shape[0]
    keys = jax.random.split(rng_key, num_examples)
    state, keys, data = shard_examples((state, keys, data), devices)
    path = np.asarray(path, dtype=np.float64)
    temperature_records, transition_records = [], []
    segments = _segments(len(path) - 1, chunk, capture)
    adapt = jnp.asarray(replay_step_sizes is None)
    if replay_step_sizes is None:
        replay_step_sizes = np.ones((len(path) - 1, num_examples))
    captured = {}

    def keep(index: int) -> None:
        if index in capture:
            captured[index] = jax.device_get((state.position, state.log_weight))

    keep(0)
    bar = tqdm(
        total=len(path) - 1,
        desc=progress if isinstance(progress, str) else "AIS",
        disable=not progress,
        unit="temperature",
    )
    for segment in segments:
        length = segment.stop - segment.start
        state, (temperatures, transitions) = ais.run_segment(
            spec,
            kernel,
            state,
            jnp.asarray(_pad(path[:-1][segment], chunk, path[-1]), dtype),
            jnp.asarray(_pad(path[1:][segment], chunk, path[-1]), dtype),
            shard_examples(
                jnp.asarray(_pad(replay_step_sizes[segment], chunk, 1.0), dtype),
                devices,
                axis=1,
            ),
            jnp.asarray(_pad(np.ones(length, bool), chunk, False)),
            adapt,
            keys,
            data,
            model_args,
            model_kwargs,
        )
        # Drop the padding on the host (slicing on the device would compile a
        # small program for every segment length).
        temperatures, transitions = jax.tree.map(
            lambda records, n=length: np.asarray(records)[:n],
            jax.device_get((temperatures, transitions)),
        )
        temperature_records.append(temperatures)
        transition_records.append(transitions)
        bar.update(segment.stop - segment.start)
        keep(segment.stop)
    bar.close()
    final_log_weight, last = ais.finish(
        spec,
        state,
        jnp.asarray(path[-1], dtype),
        jnp.asarray(final_beta, dtype),
        data,
        model_args,
        model_kwargs,
    )
    last = jax.device_get(last)

    def along_path(records: list, field: str, last_value: np.ndarray) -> np.ndarray:
        steps = np.concatenate([getattr(r, field) for r in records], axis=0)
        return np.concatenate([steps, last_value[None]], axis=0).T

    def transitions_along_path(field: str, start_value: float) -> np.ndarray:
        steps = np.concatenate([getattr(r, field) for r in transition_records], axis=0)
        start = np.full((1, num_examples), start_value, dtype=steps.dtype)
        return np.concatenate([start, steps], axis=0).T

    gradient_evaluations = sum(
        int(np.sum(r.num_gradient_evaluations, dtype=np.int64))
        for r in transition_records
    )
    return AISRun(
        log_z=along_path(temperature_records, "log_z", last.log_z),
        distortion=along_path(temperature_records, "distortion", last.distortion),
        effective_sample_size=along_path(
            temperature_records, "effective_sample_size", last.effective_sample_size
        ),
        num_nonfinite=along_path(
            temperature_records, "num_nonfinite", last.num_nonfinite
        ),
        acceptance_rate=transitions_along_path("acceptance_rate", math.nan),
        step_size=transitions_along_path("step_size", math.nan),
        num_divergent=transitions_along_path("num_divergent", 0),
        final_log_weight=np.asarray(jax.device_get(final_log_weight)),
        final_position=np.asarray(jax.device_get(state.position)),
        num_gradient_evaluations=gradient_evaluations,
        captured_position=_stack_captures(
            [captured[i][0] for i in capture], state.position.shape
        ),
        captured_log_weight=_stack_captures(
            [captured[i][1] for i in capture], state.log_weight.shape
        ),
    )


def _stack_captures(arrays: list, shape: tuple[int, ...]) -> np.ndarray:
    if not arrays:
        return np.zeros((0, *shape))
    return np.stack([np.asarray(a) for a in arrays])


def forward(
    spec: ModelSpec,
    kernel: Kernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    num_chains: int,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
    capture: Sequence[int] = (),
) -> tuple[AISRun, np.ndarray, int]:
    """Forward AIS from the prior with the preliminary/formal step-size protocol.

    Returns
    -------
    run, step_sizes, preliminary_gradient_evaluations
        The formal run, the step sizes it replayed ``(steps, examples)``, and the
        gradient evaluations spent by the preliminary run (0 without adaptation).
    """
    model_kwargs = dict(model_kwargs or {})
    key_preliminary, key_formal = jax.random.split(rng_key)
    common = dict(
        final_beta=float(betas[-1]),
        data=data,
        model_args=model_args,
        model_kwargs=model_kwargs,
        chunk_size=chunk_size,
        devices=devices,
    )

    def run_from_prior(
        key: jax.Array,
        step_sizes: np.ndarray | None,
        label: str,
        captures: Sequence[int] = (),
    ) -> AISRun:
        init_key, run_key = jax.random.split(key)
        state = ais.init_from_prior(
            spec,
            init_key,
            data,
            num_chains,
            kernel.step_size,
            model_args,
            model_kwargs,
            kernel.target_acceptance,
        )
        return run_path(
            spec,
            kernel,
            state,
            betas,
            replay_step_sizes=step_sizes,
            rng_key=run_key,
            progress=label if progress else False,
            capture=captures,
            **common,
        )

    preliminary_cost = 0
    if kernel.adapt_step_size:
        preliminary = run_from_prior(
            key_preliminary, None, "preliminary run (step sizes)"
        )
        step_sizes = preliminary.step_size[:, 1:].T
        preliminary_cost = preliminary.num_gradient_evaluations
    else:
        step_sizes = np.full((len(betas) - 1, data.shape[0]), kernel.step_size)
    run = run_from_prior(key_formal, step_sizes, "formal run", capture)
    return run, step_sizes, preliminary_cost


def reverse(
    spec: ModelSpec,
    kernel: Kernel,
    *,
    rng_key: jax.Array,
    data: jax.Array,
    betas: np.ndarray,
    exact_position: jax.Array,
    num_chains: int,
    step_sizes: np.ndarray,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    devices: Sequence[jax.Device] | None = None,
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
        stochastic upper bound on ``log Z``.
    """
    model_kwargs = dict(model_kwargs or {})
    start = jnp.broadcast_to(
        exact_position[:, None, :],
        (exact_position.shape[0], num_chains, exact_position.shape[-1]),
    ).astype(jnp.result_type(float))
    state = ais.init_at(start, kernel.step_size, kernel.target_acceptance)
    # Path beta_K, beta_K, beta_{K-1}, ..., beta_1: the first step only moves.
    path = np.concatenate([betas[-1:], betas[:0:-1]])
    return run_path(
        spec,
        kernel,
        state,
        path,
        final_beta=0.0,
        replay_step_sizes=np.asarray(step_sizes)[::-1],
        rng_key=rng_key,
        data=data,
        model_args=model_args,
        model_kwargs=dict(model_kwargs),
        chunk_size=chunk_size,
        progress="reverse AIS" if progress else False,
        devices=devices,
    )
