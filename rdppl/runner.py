"""Run AIS over a path of temperatures: compiled segments, devices, progress.

:func:`run_path` scans :func:`rdppl.ais.build_kernel`'s step over every example at
once, in segments of a fixed length (padded, so every run of a model shares one
compilation), and collects the records on the host as an :class:`AISRun`. The step
sizes are either adapted (the preliminary run) or replayed (every reported run); see
:mod:`rdppl.protocol`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rdppl import ais, estimators
from rdppl.adaptation import StepSizeState
from rdppl.checkpoint import CheckpointStore
from rdppl.checkpoint_arrays import (
    RunShape,
    progress_arrays,
    restore_progress,
    run_from_arrays,
    run_to_arrays,
)
from rdppl.devices import fetch, is_coordinator, shard_examples
from rdppl.kernels import MCMCKernel
from rdppl.model import TracedModel

__all__ = ["DEFAULT_EXECUTION", "AISRun", "Execution", "Tuning", "run_path"]

DEFAULT_CHUNK_SIZE = 256


class Tuning(NamedTuple):
    """What the transitions of a run used, one entry per transition, on the host.

    Attributes
    ----------
    step_size
        ``(transitions, examples)``.
    inverse_mass_matrix
        ``(transitions, examples, *shape)`` with the kernel's
        :meth:`~rdppl.MCMCKernel.inverse_mass_matrix_shape` (``(1,)`` for the
        identity).
    resample
        ``(transitions, examples)`` booleans: resample the chains before the
        transition (docs/math.md §3.7); ``None`` never resamples.
    """

    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray
    resample: np.ndarray | None = None

    def reversed(self) -> Tuning:
        """The same tuning walked backwards (reverse AIS, which never resamples)."""
        return Tuning(self.step_size[::-1], self.inverse_mass_matrix[::-1])

    def resample_thresholds(self) -> np.ndarray:
        """Per-transition ESS thresholds that replay the resampling decisions."""
        if self.resample is None:
            return np.zeros(np.shape(self.step_size))
        return np.where(self.resample, np.inf, 0.0)


class AISRun(NamedTuple):
    """Host-side results of one AIS run over a schedule (NumPy arrays).

    Per-temperature arrays have shape ``(examples, temperatures)`` and follow the path
    order; the kernel diagnostics at the starting temperature (no transition) are NaN
    (rates, step sizes) or 0 (counts). ``log_z`` and the log weights are float64
    (the chains' common log factor is added on the host). ``captured_position``
    ``(captures, examples, chains, dim)`` and ``captured_log_weight`` ``(captures,
    examples, chains)`` hold the weighted chains at the requested path indices.
    ``tuning`` holds the step sizes and inverse mass matrices the transitions used.
    """

    log_z: np.ndarray
    distortion: np.ndarray
    distortion_variance: np.ndarray
    effective_sample_size: np.ndarray
    num_nonfinite: np.ndarray
    pareto_khat: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    num_divergent: np.ndarray
    final_log_weight: np.ndarray
    final_position: np.ndarray
    num_gradient_evaluations: int
    captured_position: np.ndarray
    captured_log_weight: np.ndarray
    tuning: Tuning


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


class Execution(NamedTuple):
    """How a run executes; never changes its results.

    Attributes
    ----------
    chunk_size
        Steps per compiled segment (default 256). Every segment is padded to this
        length with inactive steps, so runs of any length, the preliminary and formal
        runs, and reverse runs all share one compilation.
    progress
        Show progress bars.
    devices
        Shard the examples across these devices (``None``: default placement).
    checkpoint
        Save progress to and resume from this store (:mod:`rdppl.checkpoint`).
    batch_size
        Run the examples in batches of this many through the same compiled
        segment (the last one padded); ``None``: all at once.
    """

    chunk_size: int | None = None
    progress: bool = False
    devices: Sequence[jax.Device] | None = None
    checkpoint: CheckpointStore | None = None
    batch_size: int | None = None


DEFAULT_EXECUTION = Execution()


class AdaptationState(NamedTuple):
    """The preliminary run's adapted settings of one example."""

    step_size: StepSizeState
    inverse_mass_matrix: jax.Array


@eqx.filter_jit
def _run_segment(
    target: TracedModel,
    kernel: MCMCKernel,
    carry: tuple[ais.AISState, AdaptationState],
    inputs: tuple[jax.Array, ...],
    adapt: jax.Array,
    rng_keys: jax.Array,
    data: jax.Array,
    report_progress: bool = False,
    resampling: bool = True,
) -> tuple[
    tuple[ais.AISState, AdaptationState], tuple[ais.AISInfo, jax.Array, jax.Array]
]:  # records: info, step sizes and inverse mass matrices used
    """Scan AIS steps over a segment, every example at once.

    ``inputs`` holds per-step arrays ``(beta_prev, beta_new, replay_step_sizes
    (steps, examples), replay_inverse_mass_matrices (steps, examples, *shape),
    resample_thresholds (steps, examples), step_index, active)``. With ``adapt``
    the carried settings are used and
    updated (the preliminary run); otherwise the replayed ones are used. ``adapt``
    is traced, so both runs share one compilation. Inactive (padding) steps leave
    the carry unchanged and record zeros.
    """
    step = ais.build_kernel(target, kernel)
    step_size_rule = kernel.step_size_adaptation()
    mass_matrix_rule = kernel.mass_matrix_adaptation()

    def one_example(
        state,
        adapted,
        replay,
        replay_imm,
        threshold,
        key,
        example,
        beta_prev,
        beta_new,
        index,
    ):
        step_size = jnp.where(adapt, adapted.step_size.step_size, replay)
        inverse_mass_matrix = jnp.where(adapt, adapted.inverse_mass_matrix, replay_imm)
        state, info = step(
            jax.random.fold_in(key, index),
            state,
            example,
            beta_prev,
            beta_new,
            step_size,
            inverse_mass_matrix,
            threshold if resampling else None,  # static: no code when never used
        )
        updated = AdaptationState(
            step_size_rule.update(adapted.step_size, info.acceptance_rate),
            mass_matrix_rule.update(
                adapted.inverse_mass_matrix, state.position, state.log_weight
            ),
        )
        adapted = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), updated, adapted)
        return (state, adapted), (info, step_size, inverse_mass_matrix)

    def move(carry, step_inputs):
        beta_prev, beta_new, replay, replay_imm, thresholds, index = step_inputs
        return jax.vmap(one_example, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None, None))(
            *carry,
            replay,
            replay_imm,
            thresholds,
            rng_keys,
            data,
            beta_prev,
            beta_new,
            index,
        )

    def one_step(carry, step_inputs):
        *move_inputs, is_active = step_inputs
        records_shape = jax.eval_shape(move, carry, tuple(move_inputs))[1]

        def skip(carry, _):
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), records_shape)
            return carry, zeros

        carry, records = jax.lax.cond(is_active, move, skip, carry, tuple(move_inputs))
        if report_progress:  # static: no callback at all without a progress bar
            index = move_inputs[-1]
            jax.lax.cond(
                is_active & (index % PROGRESS_STRIDE == PROGRESS_STRIDE - 1),
                lambda i: jax.debug.callback(_report_progress, i),
                lambda i: None,
                index,
            )
        return carry, records

    return jax.lax.scan(one_step, carry, inputs)


# The progress bar of the running segment, moved by a host callback every
# PROGRESS_STRIDE temperatures from inside the compiled loop.
PROGRESS_STRIDE = 16
_ACTIVE_BAR: list[Any] = [None]


def _report_progress(index: Any) -> None:
    bar = _ACTIVE_BAR[0]
    if bar is not None:
        done = int(index) + 1
        if done > bar.n:
            bar.update(done - bar.n)


def _interactive() -> bool:
    """Whether a progress bar can be seen: a terminal, or a Jupyter kernel."""
    import sys

    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return "ipykernel" in sys.modules


@eqx.filter_jit
def _finish(
    target: TracedModel,
    state: ais.AISState,
    beta_prev: jax.Array,
    beta_new: jax.Array,
    data: jax.Array,
) -> tuple[ais.AISState, estimators.TemperatureEstimates]:
    return jax.vmap(
        lambda s, example: ais.finish(target, s, example, beta_prev, beta_new)
    )(state, data)


def _segment_inputs(
    path: np.ndarray,
    replay: Tuning,
    thresholds: np.ndarray,
    segment: slice,
    chunk: int,
    devices: Sequence[jax.Device] | None,
) -> tuple[jax.Array, ...]:
    """The per-step arrays of one segment, padded to ``chunk`` inactive steps."""
    dtype = jnp.result_type(float)
    length = segment.stop - segment.start
    return (
        jnp.asarray(_pad(path[:-1][segment], chunk, path[-1]), dtype),
        jnp.asarray(_pad(path[1:][segment], chunk, path[-1]), dtype),
        shard_examples(
            jnp.asarray(_pad(replay.step_size[segment], chunk, 1.0), dtype),
            devices,
            axis=1,
        ),
        shard_examples(
            jnp.asarray(_pad(replay.inverse_mass_matrix[segment], chunk, 1.0), dtype),
            devices,
            axis=1,
        ),
        shard_examples(
            jnp.asarray(_pad(thresholds[segment], chunk, 0.0), dtype),
            devices,
            axis=1,
        ),
        jnp.asarray(_pad(np.arange(segment.start, segment.stop), chunk, 0)),
        jnp.asarray(_pad(np.ones(length, bool), chunk, False)),
    )


def run_path(
    target: TracedModel,
    kernel: MCMCKernel,
    state: ais.AISState,
    path: np.ndarray,
    *,
    final_beta: float,
    replay: Tuning | None,
    rng_key: jax.Array,
    data: jax.Array,
    execution: Execution = DEFAULT_EXECUTION,
    label: str = "AIS",
    capture: Sequence[int] = (),
    resample_threshold: float | None = None,
    resampling: bool | None = None,
) -> AISRun:
    """Run the transitions ``(path[j-1], path[j])`` then finish at ``final_beta``.

    Parameters
    ----------
    state
        Starting chains, batched over examples (exact at ``path[0]``).
    path
        Inverse temperatures in the order visited, shape ``(steps + 1,)``.
    final_beta
        Temperature of the last weight increment (``path[-1]`` for forward AIS,
        ``0`` for reverse AIS).
    replay
        Step sizes and inverse mass matrices per step and example; ``None`` adapts
        them, starting from the kernel's ``step_size`` and the starting ensemble's
        (co)variance.
    execution
        Segment length, progress, devices, checkpoint and batches of examples.
    label
        Progress-bar label.
    capture
        Path indices at which to keep the chains and their weights (index ``j``:
        after the transition at ``path[j]``, the pairs are weighted for it). Each
        capture cuts a segment, which may compile another segment length.
    resample_threshold
        With ``replay=None``: resample whenever the importance ESS falls below this
        fraction of the chains (the decisions are recorded in the tuning, to be
        replayed). Replayed runs resample where ``replay.resample`` says.
    resampling
        Compile the resampling step in (static). Runs that should share one
        compilation (a preliminary and a reported run, a reverse run) pass the same
        value; ``None``: only if some threshold is positive.
    """
    num_examples = int(data.shape[0])
    keys = jax.random.split(rng_key, num_examples)
    path = np.asarray(path, dtype=np.float64)
    num_steps = len(path) - 1
    adapt = replay is None
    if replay is None:
        shape = kernel.inverse_mass_matrix_shape(int(state.position.shape[-1]))
        replay = Tuning(
            np.ones((num_steps, num_examples)),
            np.ones((num_steps, num_examples, *shape)),
        )
        thresholds = np.full((num_steps, num_examples), resample_threshold or 0.0)
    else:
        thresholds = replay.resample_thresholds()
    if resampling is None:
        resampling = bool(np.any(thresholds > 0))
    elif not resampling and np.any(thresholds > 0):
        raise ValueError("resampling=False with positive resampling thresholds")
    batch = min(execution.batch_size or num_examples, num_examples)
    runs = []
    try:
        for first in range(0, num_examples, batch):
            size = min(batch, num_examples - first)
            # the last batch is padded with copies of the last example (same shapes,
            # so no recompilation); their results are dropped
            index = np.minimum(np.arange(first, first + batch), num_examples - 1)
            name = label
            if batch < num_examples:
                name = (
                    f"{label} [examples {first}-{first + size - 1} of {num_examples}]"
                )
                part = jax.tree.map(lambda x, i=index: x[i], state)
            else:  # one batch: the examples as they are (no gathered copy)
                part = state
            runs.append(
                _run_batch(
                    target,
                    kernel,
                    part,
                    path,
                    final_beta=final_beta,
                    replay=Tuning(
                        replay.step_size[:, index],
                        replay.inverse_mass_matrix[:, index],
                    ),
                    thresholds=thresholds[:, index],
                    adapt=adapt,
                    keys=keys[index],
                    data=data[index],
                    execution=execution,
                    label=name,
                    capture=capture,
                    layout=(first, size, batch, num_examples),
                    resampling=resampling,
                )
            )
    except BaseException:  # let another process take the checkpoint at once
        if execution.checkpoint is not None:
            execution.checkpoint.release()
        raise
    return runs[0] if len(runs) == 1 else _concatenate(runs)


def _concatenate(runs: list[AISRun]) -> AISRun:
    """Join the runs of consecutive batches of examples."""
    example_axis = {"captured_position": 1, "captured_log_weight": 1}
    values = {}
    for field in AISRun._fields:
        parts = [getattr(run, field) for run in runs]
        if field == "num_gradient_evaluations":
            values[field] = sum(parts)
        elif field == "tuning":
            values[field] = Tuning(
                *(
                    None
                    if parts[0][i] is None
                    else np.concatenate([p[i] for p in parts], axis=1)
                    for i in range(len(Tuning._fields))
                )
            )
        else:
            values[field] = np.concatenate(parts, axis=example_axis.get(field, 0))
    return AISRun(**values)


def _run_batch(
    target: TracedModel,
    kernel: MCMCKernel,
    state: ais.AISState,
    path: np.ndarray,
    *,
    final_beta: float,
    replay: Tuning,
    thresholds: np.ndarray,
    adapt: bool,
    keys: jax.Array,
    data: jax.Array,
    execution: Execution,
    label: str,
    capture: Sequence[int],
    layout: tuple[int, int, int, int],
    resampling: bool,
) -> AISRun:
    """:func:`run_path` on one batch of examples.

    ``layout``: the batch's first example, its number of real examples (whose
    results are kept), its padded size and the run's number of examples.
    """
    dtype = jnp.result_type(float)
    chunk = DEFAULT_CHUNK_SIZE if execution.chunk_size is None else execution.chunk_size
    devices = execution.devices
    store = execution.checkpoint
    num_examples = data.shape[0]
    num_steps = len(path) - 1
    size = layout[1]
    dim = int(state.position.shape[-1])
    shape = RunShape(
        *layout,
        num_steps=num_steps,
        chains=int(state.position.shape[-2]),
        dim=dim,
        mass_shape=tuple(kernel.inverse_mass_matrix_shape(dim)),
        capture=tuple(capture),
    )
    run_number = None if store is None else store.next_run()
    if store is not None:
        finished = store.finished(run_number, lambda a: run_from_arrays(a, shape))
        if finished is not None:
            return finished
    adapted = AdaptationState(
        jax.vmap(kernel.step_size_adaptation().init)(
            jnp.full((num_examples,), kernel.step_size, dtype)
        ),
        jax.vmap(kernel.mass_matrix_adaptation().init)(state.position),
    )
    carry, keys, data = shard_examples(((state, adapted), keys, data), devices)
    infos, used = [], []
    adapt = jnp.asarray(adapt)
    captured = {}

    def keep(index: int) -> None:
        if index in capture:
            chains = fetch(carry[0])
            captured[index] = (chains.position, absolute_log_weight(chains))

    keep(0)
    done = 0
    saved = None
    if store is not None:
        saved = store.progress(run_number, lambda a: restore_progress(a, carry, shape))
    if saved is not None:
        carry, infos, used, captured, done = saved
        carry = shard_examples(carry, devices)
    show = execution.progress and _interactive() and is_coordinator()
    bar = tqdm(
        total=num_steps,
        initial=done,
        desc=label,
        disable=not show,
        unit="temperature",
        dynamic_ncols=True,
    )
    first = True
    for segment in _segments(num_steps, chunk, [*capture, done]):
        if segment.start < done:
            continue
        length = segment.stop - segment.start
        inputs = _segment_inputs(path, replay, thresholds, segment, chunk, devices)
        if show and first:  # the first call of a shape compiles
            bar.set_postfix_str("compiling")
        _ACTIVE_BAR[0] = bar if show else None
        try:
            carry, records = _run_segment(
                target, kernel, carry, inputs, adapt, keys, data, show, resampling
            )
            records = fetch(records)  # waits for the segment
        finally:
            _ACTIVE_BAR[0] = None
        if show and first:
            bar.set_postfix_str("")
        first = False
        # Drop the padding on the host (slicing on the device would compile a
        # small program for every segment length).
        info, *settings = jax.tree.map(lambda r, n=length: np.asarray(r)[:n], records)
        infos.append(info)
        used.append(settings)
        bar.update(segment.stop - bar.n)
        keep(segment.stop)
        if store is not None and segment.stop < num_steps and store.due(length):
            arrays = progress_arrays(
                fetch(carry), infos, used, captured, segment.stop, shape
            )
            store.save_progress(run_number, arrays)
    bar.close()
    state = carry[0]
    final, last = fetch(
        _finish(
            target,
            state,
            jnp.asarray(path[-1], dtype),
            jnp.asarray(final_beta, dtype),
            data,
        )
    )
    # the last estimates are relative to the offset before the last increment
    last = last._replace(log_z=_plus_offset(last.log_z, fetch(state)))
    # keep the batch's real examples (drop the padding copies)
    real = slice(0, size)
    infos = [jax.tree.map(lambda r: r[:, real], info) for info in infos]
    used = [[u[0][:, real], u[1][:, real]] for u in used]
    run = _collect(
        infos,
        Tuning(
            np.concatenate([u[0] for u in used]),
            np.concatenate([u[1] for u in used]),
            np.concatenate([i.resampled for i in infos]).astype(bool),
        ),
        jax.tree.map(lambda r: r[real], last),
        jax.tree.map(lambda r: np.asarray(r)[real], final),
        [
            (position[real], log_weight[real])
            for position, log_weight in (captured[i] for i in capture)
        ],
        size,
    )
    if store is not None:
        store.save_finished(run_number, run_to_arrays(run, shape))
    return run


def _plus_offset(relative: np.ndarray, offsets: Any) -> np.ndarray:
    """Add the chains' common log factor, in float64 on the host."""
    offset = np.asarray(offsets.log_offset, np.float64) + np.asarray(
        offsets.log_offset_error, np.float64
    )
    return np.asarray(relative, np.float64) + offset.reshape(
        offset.shape + (1,) * (np.ndim(relative) - offset.ndim)
    )


def absolute_log_weight(state: ais.AISState) -> np.ndarray:
    """Log weights ``(..., chains)`` with the offset added, float64 on the host."""
    return _plus_offset(state.log_weight, state)


def _collect(
    infos: list[ais.AISInfo],
    tuning: Tuning,
    last: estimators.TemperatureEstimates,
    state: ais.AISState,
    captures: list[tuple[np.ndarray, np.ndarray]],
    num_examples: int,
) -> AISRun:
    """Host-side arrays along the path from the per-segment records."""
    infos = [info._replace(log_z=_plus_offset(info.log_z, info)) for info in infos]

    def along_path(field: str) -> np.ndarray:
        steps = np.concatenate([getattr(r, field) for r in infos], axis=0)
        return np.concatenate([steps, getattr(last, field)[None]], axis=0).T

    def transitions(steps: np.ndarray, start_value: float) -> np.ndarray:
        start = np.full((1, num_examples), start_value, dtype=steps.dtype)
        return np.concatenate([start, steps], axis=0).T

    def transition_field(field: str, start_value: float) -> np.ndarray:
        steps = np.concatenate([getattr(r, field) for r in infos], axis=0)
        return transitions(steps, start_value)

    return AISRun(
        log_z=along_path("log_z"),
        distortion=along_path("distortion"),
        distortion_variance=along_path("distortion_variance"),
        effective_sample_size=along_path("effective_sample_size"),
        num_nonfinite=along_path("num_nonfinite"),
        pareto_khat=along_path("pareto_khat"),
        acceptance_rate=transition_field("acceptance_rate", math.nan),
        step_size=transitions(tuning.step_size, math.nan),
        num_divergent=transition_field("num_divergent", 0),
        final_log_weight=absolute_log_weight(state),
        final_position=np.asarray(state.position),
        num_gradient_evaluations=sum(
            int(np.sum(r.num_gradient_evaluations, dtype=np.int64)) for r in infos
        ),
        captured_position=_stack_captures(
            [c[0] for c in captures], state.position.shape
        ),
        captured_log_weight=_stack_captures(
            [c[1] for c in captures], state.log_weight.shape
        ),
        tuning=tuning,
    )


def _stack_captures(arrays: list, shape: tuple[int, ...]) -> np.ndarray:
    if not arrays:
        return np.zeros((0, *shape))
    return np.stack([np.asarray(a) for a in arrays])
