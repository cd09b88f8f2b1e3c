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

__all__ = [
    "AISRun",
    "Tuning",
    "absolute_log_weight",
    "collect",
    "concatenate_runs",
    "plus_offset",
]


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


def concatenate_runs(runs: list[AISRun]) -> AISRun:
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
    infos: list[ais.AISInfo],
    tuning: Tuning,
    last: estimators.TemperatureEstimates,
    state: ais.AISState,
    captures: list[tuple[np.ndarray, np.ndarray]],
    num_examples: int,
) -> AISRun:
    """Host-side arrays along the path from the per-segment records."""
    infos = [info._replace(log_z=plus_offset(info.log_z, info)) for info in infos]

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
        captured_position=stack_captures(
            [c[0] for c in captures], state.position.shape
        ),
        captured_log_weight=stack_captures(
            [c[1] for c in captures], state.log_weight.shape
        ),
        tuning=tuning,
    )


def stack_captures(arrays: list, shape: tuple[int, ...]) -> np.ndarray:
    if not arrays:
        return np.zeros((0, *shape))
    return np.stack([np.asarray(a) for a in arrays])
