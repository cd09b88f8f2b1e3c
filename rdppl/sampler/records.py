"""What an AIS run leaves on the host: its records along the path and its tuning.

:class:`AISRun` holds one run's per-temperature estimates and kernel diagnostics as
NumPy arrays; :class:`Tuning` the step sizes, inverse mass matrices and resampling
decisions its transitions used (the preliminary run records them, reported runs replay
them). :func:`collect` assembles a run from the per-segment records of
:mod:`rdppl.sampler.segments`; :func:`concatenate_runs` joins batches of examples.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from rdppl.numerics import estimators
from rdppl.sampler import ais
from rdppl.sampler.flags import Flags, as_flags
from rdppl.sampler.thinning import Recorder

__all__ = [
    "AISRun",
    "Tuning",
    "absolute_log_weight",
    "collect",
    "concatenate_runs",
    "plus_offset",
]


class Tuning(NamedTuple):
    """What the transitions of a run used, one row per block of them, on the host.

    Without ``starts`` every transition is its own block (one row per transition);
    with it, transitions ``starts[b] .. starts[b + 1] - 1`` share row ``b`` (a run
    kept at fewer curve points than it has temperatures, :mod:`rdppl.sampler.thinning`).

    Attributes
    ----------
    step_size
        ``(blocks, examples)``.
    inverse_mass_matrix
        ``(blocks, examples, *shape)`` with the kernel's
        :meth:`~rdppl.MCMCKernel.inverse_mass_matrix_shape` (``(1,)`` for the
        identity).
    resample
        ``(transitions, examples)`` :class:`~rdppl.sampler.flags.Flags` (or
        booleans, packed when read), one per transition: resample the chains
        before the transition (docs/math.md §3.7); ``None`` never resamples.
    starts
        The first transition of each block, increasing from 0; ``None``: one block
        per transition.
    """

    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray
    resample: Flags | np.ndarray | None = None
    starts: np.ndarray | None = None

    def rows(self, steps: np.ndarray) -> np.ndarray:
        """The row of each of the transitions ``steps``."""
        steps = np.asarray(steps)
        if self.starts is None:
            return steps
        return np.searchsorted(self.starts, steps, side="right") - 1

    def reversed(self, num_steps: int | None = None) -> Tuning:
        """The same tuning walked backwards (reverse AIS, which never resamples).

        ``num_steps``, the number of transitions, is needed with blocks.
        """
        if self.starts is None:
            return Tuning(self.step_size[::-1], self.inverse_mass_matrix[::-1])
        if num_steps is None:
            raise ValueError("reversing a tuning in blocks needs num_steps")
        stops = np.append(np.asarray(self.starts)[1:], num_steps)
        return Tuning(
            self.step_size[::-1],
            self.inverse_mass_matrix[::-1],
            None,
            (num_steps - stops)[::-1],
        )

    def resample_thresholds(self, steps: slice = slice(None)) -> np.ndarray:
        """ESS thresholds ``(transitions, examples)`` that replay the decisions.

        Only for a tuning that resamples, or has one row per transition.
        """
        if self.resample is None:
            return np.zeros(np.shape(self.step_size[steps]))
        flags = as_flags(self.resample)
        start, stop, _ = steps.indices(flags.num_rows)
        return np.where(flags.rows(start, stop), np.inf, 0.0)

    def take_examples(self, index: np.ndarray) -> Tuning:
        """The tuning of the examples ``index``."""
        return Tuning(
            self.step_size[:, index],
            self.inverse_mass_matrix[:, index],
            None
            if self.resample is None
            else as_flags(self.resample).take_columns(index),
            self.starts,
        )


class AISRun(NamedTuple):
    """Host-side results of one AIS run over a schedule (NumPy arrays).

    Per-temperature arrays have shape ``(examples, points)`` at the kept path indices
    ``kept`` (every temperature unless the run was thinned,
    :mod:`rdppl.sampler.thinning`) and follow the path order; the kernel diagnostics
    at a point sum up the transitions since the previous one (mean acceptance,
    divergences, any resampling), and at the starting temperature (no transition)
    are NaN (rates, step sizes) or 0 (counts). ``log_z`` and the log weights are float64
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
    resampled: np.ndarray
    kept: np.ndarray
    tuning: Tuning


def concatenate_runs(runs: list[AISRun]) -> AISRun:
    """Join the runs of consecutive batches of examples."""
    example_axis = {"captured_position": 1, "captured_log_weight": 1}
    values = {}
    for field in AISRun._fields:
        parts = [getattr(run, field) for run in runs]
        if field == "num_gradient_evaluations":
            values[field] = sum(parts)
        elif field == "kept":
            values[field] = parts[0]
        elif field == "tuning":
            resample = [p.resample for p in parts]
            values[field] = Tuning(
                np.concatenate([p.step_size for p in parts], axis=1),
                np.concatenate([p.inverse_mass_matrix for p in parts], axis=1),
                None
                if resample[0] is None
                else Flags.concatenate_columns([as_flags(r) for r in resample]),
                parts[0].starts,
            )
        else:
            values[field] = np.concatenate(parts, axis=example_axis.get(field, 0))
    return AISRun(**values)


def plus_offset(relative: np.ndarray, offsets: Any) -> np.ndarray:
    """Add the chains' common log factor, in float64 on the host."""
    offset = np.asarray(offsets.log_offset, np.float64) + np.asarray(
        offsets.log_offset_error, np.float64
    )
    return np.asarray(relative, np.float64) + offset.reshape(
        offset.shape + (1,) * (np.ndim(relative) - offset.ndim)
    )


def absolute_log_weight(state: ais.AISState) -> np.ndarray:
    """Log weights ``(..., chains)`` with the offset added, float64 on the host."""
    return plus_offset(state.log_weight, state)


def collect(
    recorder: Recorder,
    last: estimators.TemperatureEstimates,
    state: ais.AISState,
    captures: list[tuple[np.ndarray, np.ndarray]],
    real: slice,
) -> AISRun:
    """Host-side arrays at the curve points from a batch's recorder.

    ``real``: the batch's real examples (the rest are padding copies).
    """
    kept = recorder.kept
    thinned = len(kept) < recorder.num_steps + 1

    def along_path(field: str, values: np.ndarray) -> np.ndarray:
        return np.concatenate([values, getattr(last, field)[None]], axis=0)[:, real].T

    def transitions(steps: np.ndarray, start_value: Any) -> np.ndarray:
        start = np.full((1, *steps.shape[1:]), start_value, dtype=steps.dtype)
        return np.concatenate([start, steps], axis=0)[:, real].T

    offsets = _Offsets(recorder.point("log_offset"), recorder.point("log_offset_error"))
    values = {
        field: along_path(field, recorder.point(field))
        for field in (
            "distortion",
            "distortion_variance",
            "effective_sample_size",
            "num_nonfinite",
            "pareto_khat",
        )
    }
    step_size = recorder.arrays["used/0"]
    tuning = Tuning(
        step_size[:, real],
        recorder.arrays["used/1"][:, real],
        recorder.decisions().take_columns(real),
        recorder.starts if thinned else None,
    )
    return AISRun(
        log_z=along_path("log_z", plus_offset(recorder.point("log_z"), offsets)),
        **values,
        acceptance_rate=transitions(recorder.transition("acceptance_rate"), math.nan),
        step_size=transitions(step_size, math.nan),
        num_divergent=transitions(recorder.transition("num_divergent"), 0),
        final_log_weight=absolute_log_weight(state)[real],
        final_position=np.asarray(state.position)[real],
        num_gradient_evaluations=int(
            np.sum(
                recorder.transition("num_gradient_evaluations")[:, real], dtype=np.int64
            )
        ),
        captured_position=stack_captures(
            [c[0][real] for c in captures], state.position[real].shape
        ),
        captured_log_weight=stack_captures(
            [c[1][real] for c in captures], state.log_weight[real].shape
        ),
        resampled=transitions(recorder.resampled_in_block(), False),
        kept=kept,
        tuning=tuning,
    )


class _Offsets(NamedTuple):
    log_offset: np.ndarray
    log_offset_error: np.ndarray


def stack_captures(arrays: list, shape: tuple[int, ...]) -> np.ndarray:
    if not arrays:
        return np.zeros((0, *shape))
    return np.stack([np.asarray(a) for a in arrays])
