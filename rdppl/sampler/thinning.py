"""A run's records at a chosen number of curve points, whatever its length.

A run of ``K`` transitions visits ``K + 1`` temperatures. Keeping its records at all of
them costs memory in proportion to ``K`` (about 50 bytes per example and temperature,
gigabytes at the ``10^6`` temperatures of the field's largest runs).
:func:`curve_points` chooses ``P + 1`` of the path's indices ``0 = k_0 < ... < k_P =
K`` and :class:`Recorder` keeps, while the run goes on:

- the estimates *at* each kept temperature (``log Z``, distortion, importance ESS,
  k-hat, ...): exactly those of the full run there, because every estimate at
  ``beta_k`` depends only on the weights reached at ``beta_k``;
- the transitions *between* kept temperatures summed up: the mean acceptance rate,
  the number of divergent transitions, the gradient evaluations, and whether the
  chains were resampled;
- the step size and inverse mass matrix each block of transitions ``k_b .. k_{b+1}
  - 1`` started with (the preliminary run), replayed for the whole block by a
  reported run (:class:`rdppl.sampler.records.Tuning` in blocks);
- the resampling decisions of every transition (one bit each, to be replayed,
  :class:`~rdppl.sampler.flags.Flags`).

With ``P = K`` every block is one transition and the records are those of the full
run, bit for bit.
"""

from __future__ import annotations

import numpy as np

from rdppl.sampler import ais
from rdppl.sampler.flags import Flags

__all__ = ["POINT_FIELDS", "Recorder", "curve_points"]

#: AISInfo fields that are estimates at a temperature (kept at the curve points).
POINT_FIELDS = (
    "log_z",
    "distortion",
    "distortion_variance",
    "effective_sample_size",
    "num_nonfinite",
    "pareto_khat",
    "log_offset",
    "log_offset_error",
)
#: AISInfo fields of a transition, summed over each block.
SUMMED_FIELDS = ("acceptance_rate", "num_divergent", "num_gradient_evaluations")


def curve_points(num_steps: int, num_points: int | None) -> np.ndarray:
    """The path indices kept: ``num_points`` of ``0 .. num_steps``, evenly spread.

    Always the first and the last; ``None`` (or at least ``num_steps + 1``): all.
    """
    if num_points is None or num_points >= num_steps + 1:
        return np.arange(num_steps + 1)
    if num_points < 2:
        raise ValueError(f"num_points must be at least 2, got {num_points}")
    spread = np.round(np.linspace(0, num_steps, num_points)).astype(np.int64)
    return np.unique(spread)


class Recorder:
    """The records of one batch of examples at its curve points, filled as it runs.

    Parameters
    ----------
    kept
        The kept path indices (:func:`curve_points`), ``k_0 = 0 .. k_P = K``.
    batch
        Examples in the batch.
    mass_shape
        The shape of one inverse mass matrix.
    """

    def __init__(
        self, kept: np.ndarray, batch: int, mass_shape: tuple[int, ...]
    ) -> None:
        self.kept = np.asarray(kept, np.int64)
        self.num_steps = int(self.kept[-1])
        self.batch, self.mass_shape = batch, tuple(mass_shape)
        self.arrays: dict[str, np.ndarray] = {}  # allocated by the first segment

    def _allocate(self, info: ais.AISInfo, used: list[np.ndarray]) -> None:
        """Arrays for every block, in the dtypes of the run's records."""
        blocks, batch = len(self.kept) - 1, self.batch
        arrays = {
            "counts": np.zeros(blocks, np.int64),
            "resampled": Flags.zeros(self.num_steps, batch).packed,
            "used/0": np.ones((blocks, batch), used[0].dtype),
            "used/1": np.ones((blocks, batch, *self.mass_shape), used[1].dtype),
        }
        for field in POINT_FIELDS:
            dtype = np.asarray(getattr(info, field)).dtype
            arrays[f"point/{field}"] = np.zeros((blocks, batch), dtype)
        for field in SUMMED_FIELDS:  # sums in float64 or int64, read back as run
            kind = np.asarray(getattr(info, field)).dtype.kind
            dtype = np.float64 if kind == "f" else np.int64
            arrays[f"sum/{field}"] = np.zeros((blocks, batch), dtype)
        for field in SUMMED_FIELDS:  # the dtype each field is read back in
            arrays[f"dtype/{field}"] = np.zeros(
                0, np.asarray(getattr(info, field)).dtype
            )
        self.arrays = arrays

    @property
    def starts(self) -> np.ndarray:
        """The first transition of each block."""
        return self.kept[:-1]

    def add(self, start: int, info: ais.AISInfo, used: list[np.ndarray]) -> None:
        """Record the transitions ``start, start + 1, ...`` of one segment.

        ``info`` holds host arrays ``(transitions, batch)``; ``used`` the step sizes
        and inverse mass matrices the transitions used.
        """
        if not self.arrays:
            self._allocate(info, used)
        steps = np.arange(start, start + len(info.log_z))
        block = np.searchsorted(self.kept, steps, side="right") - 1
        first = self.kept[block] == steps  # the transitions that start a block
        arrays = self.arrays
        for field in POINT_FIELDS:  # the estimates at beta_{k_b}, before its move
            arrays[f"point/{field}"][block[first]] = getattr(info, field)[first]
        for field in SUMMED_FIELDS:
            values = np.asarray(getattr(info, field))
            total = arrays[f"sum/{field}"]
            np.add.at(total, block, values.astype(total.dtype))
        np.add.at(arrays["counts"], block, 1)
        self.decisions().write(start, np.asarray(info.resampled, bool))
        arrays["used/0"][block[first]] = used[0][first]
        arrays["used/1"][block[first]] = used[1][first]

    def point(self, field: str) -> np.ndarray:
        """``(blocks, batch)`` values of a point field at ``k_0 .. k_{P-1}``."""
        return self.arrays[f"point/{field}"]

    def transition(self, field: str) -> np.ndarray:
        """``(blocks, batch)``: the mean acceptance, or the sums, of each block."""
        total = self.arrays[f"sum/{field}"]
        if field == "acceptance_rate":
            counts = np.maximum(self.arrays["counts"], 1)
            total = total / counts.reshape(-1, *([1] * (total.ndim - 1)))
        return total.astype(self.arrays[f"dtype/{field}"].dtype)

    def decisions(self) -> Flags:
        """The resampling decisions of every transition (a view of the records)."""
        return Flags(self.arrays["resampled"], self.num_steps)

    def resampled_in_block(self) -> np.ndarray:
        """``(blocks, batch)``: whether any transition of the block resampled."""
        return self.decisions().any_in_blocks(self.starts)
