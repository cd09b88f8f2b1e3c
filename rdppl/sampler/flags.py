"""One boolean per transition and example, packed eight transitions to a byte.

A run resamples, or not, before each of its ``K`` transitions, for each example; the
preliminary run's decisions are replayed by the reported run (docs/math.md §3.7). At
the ``10^6`` temperatures of the field's largest runs a byte each would be the one
record that still grows with ``K`` (50 MB per array at 50 examples); :class:`Flags`
keeps them as bits, and reads and writes them a range of transitions at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Flags", "as_flags"]

# transitions unpacked at a time by the whole-array operations
_CHUNK = 1 << 16


class Flags:
    """Booleans ``(rows, columns)``, stored as ``uint8`` ``(ceil(rows / 8), columns)``.

    Parameters
    ----------
    packed
        The bits, row ``r`` in bit ``r % 8`` of byte row ``r // 8`` (little bit
        order); written in place by :meth:`write`.
    num_rows
        The number of rows.
    """

    __slots__ = ("num_rows", "packed")

    def __init__(self, packed: np.ndarray, num_rows: int) -> None:
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.ndim != 2:
            raise ValueError(f"packed flags must be 2-d uint8, got {packed.dtype}")
        if packed.shape[0] != -(-num_rows // 8):
            raise ValueError(f"{packed.shape[0]} byte rows cannot hold {num_rows} rows")
        self.packed, self.num_rows = packed, int(num_rows)

    @classmethod
    def zeros(cls, num_rows: int, num_columns: int) -> Flags:
        """All false."""
        return cls(np.zeros((-(-num_rows // 8), num_columns), np.uint8), num_rows)

    @classmethod
    def from_bools(cls, bools: Any) -> Flags:
        """Pack a 2-d boolean array."""
        bools = np.asarray(bools, bool)
        return cls(np.packbits(bools, axis=0, bitorder="little"), len(bools))

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        return self.num_rows, int(self.packed.shape[1])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop - 1`` as booleans ``(stop - start, columns)``."""
        start, stop = max(0, int(start)), min(self.num_rows, int(stop))
        stop = max(start, stop)
        low, high = start // 8, -(-stop // 8)
        bits = np.unpackbits(self.packed[low:high], axis=0, bitorder="little")
        return bits[start - 8 * low : stop - 8 * low].astype(bool)

    def write(self, start: int, values: Any) -> None:
        """Set rows ``start, start + 1, ...`` to the booleans ``values``."""
        values = np.asarray(values, bool)
        stop = int(start) + len(values)
        if not 0 <= start <= stop <= self.num_rows:
            raise IndexError(f"rows {start}..{stop - 1} outside 0..{self.num_rows - 1}")
        low, high = start // 8, -(-stop // 8)
        bits = np.unpackbits(self.packed[low:high], axis=0, bitorder="little")
        bits = bits.astype(bool)
        bits[start - 8 * low : stop - 8 * low] = values
        self.packed[low:high] = np.packbits(bits, axis=0, bitorder="little")

    def to_bools(self) -> np.ndarray:
        """All rows as booleans (``num_rows`` bytes per column)."""
        return self.rows(0, self.num_rows)

    def take_columns(self, index: Any) -> Flags:
        """The columns ``index`` (a slice or integer array)."""
        return Flags(self.packed[:, index], self.num_rows)

    def any(self) -> bool:
        """Whether any flag is set."""
        return bool(np.any(self.packed))

    def any_in_blocks(self, starts: np.ndarray) -> np.ndarray:
        """``(blocks, columns)``: whether any row of each block is set.

        Block ``b`` holds rows ``starts[b] .. starts[b + 1] - 1``, the last block
        the rows to the end.
        """
        starts = np.asarray(starts, np.int64)
        out = np.zeros((len(starts), self.shape[1]), bool)
        for first in range(0, self.num_rows, _CHUNK):
            last = min(first + _CHUNK, self.num_rows)
            block = np.searchsorted(starts, np.arange(first, last), side="right") - 1
            np.logical_or.at(out, block, self.rows(first, last))
        return out

    def gathered(self, owner: np.ndarray, num_rows: int) -> Flags:
        """New flags of ``num_rows`` rows, each the or of the rows it owns.

        Row ``j`` is set if any row ``r`` with ``owner[r] == j`` is; ``owner`` is
        non-decreasing, one entry per row.
        """
        owner = np.asarray(owner, np.int64)
        out = Flags.zeros(num_rows, self.shape[1])
        for first in range(0, self.num_rows, _CHUNK):
            last = min(first + _CHUNK, self.num_rows)
            own = owner[first:last]
            low, high = int(own[0]), int(own[-1]) + 1
            merged = out.rows(low, high)
            np.logical_or.at(merged, own - low, self.rows(first, last))
            out.write(low, merged)
        return out

    @staticmethod
    def concatenate_columns(parts: list[Flags]) -> Flags:
        """The columns of ``parts`` side by side (same number of rows)."""
        rows = {part.num_rows for part in parts}
        if len(rows) != 1:
            raise ValueError(f"flags of {sorted(rows)} rows cannot be joined")
        return Flags(np.concatenate([p.packed for p in parts], axis=1), rows.pop())

    def __repr__(self) -> str:
        return f"Flags(shape={self.shape}, set={int(self.to_bools().sum())})"


def as_flags(value: Any) -> Flags | None:
    """``value`` as :class:`Flags`: packed if a boolean array, ``None`` kept."""
    if value is None or isinstance(value, Flags):
        return value
    return Flags.from_bools(value)
