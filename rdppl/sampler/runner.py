"""Run AIS over a path of temperatures, in batches of examples, with checkpoints.

:func:`run_path` runs the examples in batches through compiled segments of the path
(:mod:`rdppl.sampler.segments`), resumes from and saves to the checkpoint store, and
returns an :class:`~rdppl.sampler.records.AISRun`. The step sizes are either adapted
(the preliminary run) or replayed (every reported run); see
:mod:`rdppl.sampler.protocol`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from rdppl.program.decorator import TracedModel
from rdppl.sampler import ais, segments
from rdppl.sampler.checkpoint import CheckpointStore
from rdppl.sampler.checkpoint_arrays import (
    RunShape,
    progress_arrays,
    restore_progress,
    run_from_arrays,
    run_to_arrays,
)
from rdppl.sampler.devices import fetch, is_coordinator, shard_examples
from rdppl.sampler.flags import as_flags
from rdppl.sampler.kernels import MCMCKernel
from rdppl.sampler.records import (
    AISRun,
    Tuning,
    absolute_log_weight,
    collect,
    concatenate_runs,
    plus_offset,
)
from rdppl.sampler.thinning import Recorder, curve_points

__all__ = ["DEFAULT_EXECUTION", "Execution", "run_path"]

DEFAULT_CHUNK_SIZE = 256


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
        Save progress to and resume from this store (:mod:`rdppl.sampler.checkpoint`).
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
    num_points: int | None = None,
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
    num_points
        Keep the records at this many temperatures of the path, evenly spread
        (:mod:`rdppl.sampler.thinning`); the tuning is then recorded, and replayed,
        in the blocks of transitions between them. ``None``: every temperature.
    """
    num_examples = int(data.shape[0])
    keys = jax.random.split(rng_key, num_examples)
    path = np.asarray(path, dtype=np.float64)
    num_steps = len(path) - 1
    adapt = replay is None
    threshold = 0.0
    if replay is None:  # one block of placeholders: the run uses its adapted values
        shape = kernel.inverse_mass_matrix_shape(int(state.position.shape[-1]))
        replay = Tuning(
            np.ones((1, num_examples)),
            np.ones((1, num_examples, *shape)),
            starts=np.zeros(1, np.int64),
        )
        threshold = float(resample_threshold or 0.0)
    positive = threshold > 0 or (
        replay.resample is not None and as_flags(replay.resample).any()
    )
    if resampling is None:
        resampling = positive
    elif not resampling and positive:
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
                    replay=replay.take_examples(index),
                    threshold=threshold,
                    adapt=adapt,
                    keys=keys[index],
                    data=data[index],
                    execution=execution,
                    label=name,
                    capture=capture,
                    layout=(first, size, batch, num_examples),
                    resampling=resampling,
                    kept=curve_points(num_steps, num_points),
                )
            )
    except BaseException:  # let another process take the checkpoint at once
        if execution.checkpoint is not None:
            execution.checkpoint.release()
        raise
    return runs[0] if len(runs) == 1 else concatenate_runs(runs)


def _run_batch(
    target: TracedModel,
    kernel: MCMCKernel,
    state: ais.AISState,
    path: np.ndarray,
    *,
    final_beta: float,
    replay: Tuning,
    threshold: float,
    adapt: bool,
    keys: jax.Array,
    data: jax.Array,
    execution: Execution,
    label: str,
    capture: Sequence[int],
    layout: tuple[int, int, int, int],
    resampling: bool,
    kept: np.ndarray,
) -> AISRun:
    """:func:`run_path` on one batch of examples.

    ``layout``: the batch's first example, its number of real examples (whose
    results are kept), its padded size and the run's number of examples.
    """
    store = execution.checkpoint
    dim = int(state.position.shape[-1])
    shape = RunShape(
        *layout,
        num_steps=len(path) - 1,
        chains=int(state.position.shape[-2]),
        dim=dim,
        mass_shape=tuple(kernel.inverse_mass_matrix_shape(dim)),
        capture=tuple(capture),
        num_points=len(kept),
    )
    run_number = None if store is None else store.next_run()
    if store is not None:
        finished = store.finished(run_number, lambda a: run_from_arrays(a, shape))
        if finished is not None:
            return finished
    carry, keys, data = shard_examples(
        (
            (state, _initial_adaptation(kernel, state), _placeholder(kernel, state)),
            keys,
            data,
        ),
        execution.devices,
    )
    path_run = _PathRun(
        target, kernel, path, replay, threshold, jnp.asarray(adapt), keys, data,
        execution, shape, run_number, resampling, kept,
    )  # fmt: skip
    carry, recorder, captured = _scan_path(path_run, carry, label)
    run = _finish_batch(path_run, carry[0], final_beta, recorder, captured)
    if store is not None:
        store.save_finished(run_number, run_to_arrays(run, shape))
    return run


def _initial_adaptation(
    kernel: MCMCKernel, state: ais.AISState
) -> segments.AdaptationState:
    """The adaptation's starting point: the kernel's step size, the chains' spread."""
    num_examples = int(state.position.shape[0])
    return segments.AdaptationState(
        jax.vmap(kernel.step_size_adaptation().init)(
            jnp.full((num_examples,), kernel.step_size, jnp.result_type(float))
        ),
        jax.vmap(kernel.mass_matrix_adaptation().init)(state.position),
    )


def _placeholder(kernel: MCMCKernel, state: ais.AISState) -> ais.Evaluation | tuple:
    """Room for the chains' evaluation (filled by the first segment), or ``()``."""
    if not kernel.caches_gradients:
        return ()
    chains, dtype = state.position.shape[:-1], state.position.dtype
    return ais.Evaluation(
        jnp.zeros(chains, dtype),
        jnp.zeros(chains, dtype),
        jnp.zeros_like(state.position),
        jnp.zeros_like(state.position),
    )


class _PathRun(NamedTuple):
    """Everything one batch's walk along the path holds fixed."""

    target: TracedModel
    kernel: MCMCKernel
    path: np.ndarray
    replay: Tuning
    threshold: float
    adapt: jax.Array
    keys: jax.Array
    data: jax.Array
    execution: Execution
    shape: RunShape
    run_number: int | None
    resampling: bool
    kept: np.ndarray


def _scan_path(run: _PathRun, carry: tuple, label: str) -> tuple:
    """Walk the path segment by segment, resuming and saving the checkpoint.

    Returns the final carry, the records at the curve points (a
    :class:`~rdppl.sampler.thinning.Recorder`), and the captured chains by path
    index.
    """
    store, devices = run.execution.checkpoint, run.execution.devices
    chunk = run.execution.chunk_size or DEFAULT_CHUNK_SIZE
    num_steps, capture = run.shape.num_steps, run.shape.capture
    recorder = Recorder(run.kept, run.shape.batch, run.shape.mass_shape)
    captured, done = {}, 0

    def keep(index: int) -> None:
        if index in capture:
            chains = fetch(carry[0])
            captured[index] = (chains.position, absolute_log_weight(chains))

    keep(0)
    if store is not None:
        saved = store.progress(
            run.run_number, lambda a: restore_progress(a, carry, run.shape, recorder)
        )
        if saved is not None:
            carry, captured, done = saved
            carry = shard_examples(carry, devices)
    show = run.execution.progress and segments.interactive() and is_coordinator()
    bar = tqdm(
        total=num_steps,
        initial=done,
        desc=label,
        disable=not show,
        unit="temperature",
        dynamic_ncols=True,
    )
    first = True
    for segment in segments.segments(num_steps, chunk, [*capture, done]):
        if segment.start < done:
            continue
        length = segment.stop - segment.start
        inputs = segments.segment_inputs(
            run.path, run.replay, run.threshold, segment, chunk, devices
        )
        if show and first:  # the first call of a shape compiles
            bar.set_postfix_str("compiling")
        with segments.moving(bar if show else None):
            carry, records = segments.run_segment(
                run.target, run.kernel, carry, inputs, run.adapt, run.keys,
                run.data, show, run.resampling,
            )  # fmt: skip
            records = fetch(records)  # waits for the segment
        if show and first:
            bar.set_postfix_str("")
        first = False
        # Drop the padding on the host (slicing on the device would compile a
        # small program for every segment length).
        info, *settings = jax.tree.map(lambda r, n=length: np.asarray(r)[:n], records)
        recorder.add(segment.start, info, settings)
        bar.update(segment.stop - bar.n)
        keep(segment.stop)
        if store is not None and segment.stop < num_steps and store.due(length):
            arrays = progress_arrays(
                fetch(carry), recorder, captured, segment.stop, run.shape
            )
            store.save_progress(run.run_number, arrays)
    bar.close()
    return carry, recorder, captured


def _finish_batch(
    run: _PathRun,
    state: ais.AISState,
    final_beta: float,
    recorder: Recorder,
    captured: dict,
) -> AISRun:
    """The last weight increment, then the batch's real examples as an AISRun."""
    dtype = jnp.result_type(float)
    final, last = fetch(
        segments.finish(
            run.target,
            state,
            jnp.asarray(run.path[-1], dtype),
            jnp.asarray(final_beta, dtype),
            run.data,
        )
    )
    # the last estimates are relative to the offset before the last increment
    last = last._replace(log_z=plus_offset(last.log_z, fetch(state)))
    final = jax.tree.map(np.asarray, final)
    return collect(
        recorder,
        last,
        final,
        [captured[i] for i in run.shape.capture],
        slice(0, run.shape.size),  # the batch's real examples (not the padding)
    )
