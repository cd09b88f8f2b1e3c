"""A run's checkpointed arrays: written by the runner, checked before any use.

:func:`rdppl.sampler.runner.run_path` saves a finished run (an
:class:`~rdppl.sampler.records.AISRun`) and the state of a running one as named host
arrays. Read back, every array is checked against the shape and kind this call expects,
and the run's *layout* (which examples it ran, in batches of which size) against this
call's, so a damaged or crafted file, or one written with another ``batch_size``, raises
:class:`rdppl.CheckpointError` (the store adds the file's name) instead of an error
deep inside compiled code or a silently mixed result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from rdppl.sampler.checkpoint import CheckpointError
from rdppl.sampler.flags import Flags, as_flags
from rdppl.sampler.records import AISRun, Tuning
from rdppl.sampler.thinning import POINT_FIELDS, SUMMED_FIELDS, Recorder, curve_points

__all__ = [
    "RunShape",
    "progress_arrays",
    "restore_progress",
    "run_from_arrays",
    "run_to_arrays",
]

_FLOAT, _INTEGER, _BOOL, _BYTES = "f", "iu", "b", "u"
_BYTE = np.dtype(np.uint8)  # packed bits (rdppl.sampler.flags)
_COUNTS = ("num_nonfinite", "num_divergent", "num_gradient_evaluations")
_DERIVED = ("tuning", "kept")  # saved apart, or recomputed from the run's shape


class RunShape(NamedTuple):
    """What one run of a batch of examples looks like in this call.

    Attributes
    ----------
    first, size, batch, num_examples
        The batch's first example, its number of real examples, its padded size,
        and the number of examples of the whole run (its layout).
    num_steps
        Transitions of the run.
    chains, dim
        Chains per example and latent dimensions.
    mass_shape
        The shape of one inverse mass matrix.
    capture
        The path indices whose chains the run keeps.
    num_points
        The temperatures its records are kept at (:mod:`rdppl.sampler.thinning`).
    """

    first: int
    size: int
    batch: int
    num_examples: int
    num_steps: int
    chains: int
    dim: int
    mass_shape: tuple[int, ...]
    capture: tuple[int, ...]
    num_points: int

    def kept(self) -> np.ndarray:
        """The kept path indices."""
        return curve_points(self.num_steps, self.num_points)

    def layout(self) -> np.ndarray:
        """The layout as saved: ``[first, size, batch, num_examples]``."""
        return np.asarray([self.first, self.size, self.batch, self.num_examples])


def _entry(
    arrays: dict[str, np.ndarray],
    name: str,
    shape: Sequence[int],
    kinds: str,
    dtype: Any = None,
) -> np.ndarray:
    if name not in arrays:
        raise CheckpointError(f"entry {name!r} is missing")
    value = arrays[name]
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(
            f"entry {name!r} has shape {tuple(value.shape)}, expected {tuple(shape)}"
        )
    if value.dtype.kind not in kinds or (dtype is not None and value.dtype != dtype):
        expected = dtype or {"f": "floats", "iu": "integers", "b": "booleans"}[kinds]
        raise CheckpointError(
            f"entry {name!r} holds {value.dtype}, expected {expected}"
        )
    return value


def _check_layout(arrays: dict[str, np.ndarray], shape: RunShape) -> None:
    saved = _entry(arrays, "layout", (4,), _INTEGER)
    if not np.array_equal(saved, shape.layout()):
        first, size, batch, total = (int(v) for v in saved)
        raise CheckpointError(
            f"ran examples {first}-{first + size - 1} of {total} in a batch of "
            f"{batch}, where this call runs examples {shape.first}-"
            f"{shape.first + shape.size - 1} of {shape.num_examples} in a batch of "
            f"{shape.batch}: the checkpoint was written with another batch_size "
            "(or number of examples). Call with the batch_size it was written "
            "with to resume, or delete the file to start afresh"
        )


def run_to_arrays(run: Any, shape: RunShape) -> dict[str, np.ndarray]:
    """A finished :class:`~rdppl.sampler.records.AISRun` as named host arrays."""
    arrays = {f: np.asarray(getattr(run, f)) for f in run._fields if f not in _DERIVED}
    for field in run.tuning._fields[:-1]:  # the blocks' starts follow from kept
        value = getattr(run.tuning, field)
        if field == "resample" and value is not None:  # the bits, packed
            value = as_flags(value).packed
        if value is not None:
            arrays[f"tuning/{field}"] = np.asarray(value)
    arrays["layout"] = shape.layout()
    return arrays


def run_from_arrays(arrays: dict[str, np.ndarray], shape: RunShape) -> AISRun:
    """The finished run saved as ``arrays``, checked against ``shape``."""
    _check_layout(arrays, shape)
    size, steps, chains, dim = shape.size, shape.num_steps, shape.chains, shape.dim
    kept = shape.kept()
    path, blocks = (size, len(kept)), len(kept) - 1
    captures = len(shape.capture)
    float64 = np.dtype(np.float64)
    specs = {
        "log_z": (path, _FLOAT, float64),
        "num_nonfinite": (path, _INTEGER, None),
        "num_divergent": (path, _INTEGER, None),
        "final_log_weight": ((size, chains), _FLOAT, float64),
        "final_position": ((size, chains, dim), _FLOAT, None),
        "num_gradient_evaluations": ((), _INTEGER, None),
        "captured_position": ((captures, size, chains, dim), _FLOAT, None),
        "captured_log_weight": ((captures, size, chains), _FLOAT, float64),
        "resampled": (path, _BOOL, None),
    }
    values = {
        field: _entry(arrays, field, *specs.get(field, (path, _FLOAT, None)))
        for field in AISRun._fields
        if field not in _DERIVED
    }
    values["num_gradient_evaluations"] = int(values["num_gradient_evaluations"])
    tuning = Tuning(
        _entry(arrays, "tuning/step_size", (blocks, size), _FLOAT),
        _entry(
            arrays,
            "tuning/inverse_mass_matrix",
            (blocks, size, *shape.mass_shape),
            _FLOAT,
        ),
        Flags(
            _entry(arrays, "tuning/resample", (-(-steps // 8), size), _BYTES, _BYTE),
            steps,
        ),
        kept[:-1] if blocks < steps else None,
    )
    return AISRun(**values, kept=kept, tuning=tuning)


def progress_arrays(
    carry: Any,
    recorder: Recorder,
    captured: dict,
    done: int,
    shape: RunShape,
) -> dict[str, np.ndarray]:
    """A running run's state as named host arrays (``carry`` already on the host)."""
    arrays = {"done": np.asarray(done), "layout": shape.layout()}
    arrays.update(
        {f"carry/{i}": np.asarray(v) for i, v in enumerate(jax.tree.leaves(carry))}
    )
    arrays.update({f"records/{k}": v for k, v in recorder.arrays.items()})
    for index, (position, log_weight) in captured.items():
        arrays[f"captured/{index}/position"] = np.asarray(position)
        arrays[f"captured/{index}/log_weight"] = np.asarray(log_weight)
    return arrays


def _restore_records(
    arrays: dict[str, np.ndarray], shape: RunShape, recorder: Recorder
) -> None:
    """Fill ``recorder`` with the saved records, each checked against ``shape``."""
    blocks, batch = shape.num_points - 1, shape.batch
    specs = {
        "counts": ((blocks,), _INTEGER),
        "resampled": ((-(-shape.num_steps // 8), batch), _BYTES, _BYTE),
        "used/0": ((blocks, batch), _FLOAT),
        "used/1": ((blocks, batch, *shape.mass_shape), _FLOAT),
    }
    for field in POINT_FIELDS:
        kind = _INTEGER if field in _COUNTS else _FLOAT
        specs[f"point/{field}"] = ((blocks, batch), kind)
    for field in SUMMED_FIELDS:
        kind = _INTEGER if field in _COUNTS else _FLOAT
        specs[f"sum/{field}"] = ((blocks, batch), kind)
        specs[f"dtype/{field}"] = ((0,), kind)
    recorder.arrays = {
        name: _entry(arrays, f"records/{name}", *spec) for name, spec in specs.items()
    }


def restore_progress(
    arrays: dict[str, np.ndarray], carry: Any, shape: RunShape, recorder: Recorder
) -> tuple[Any, dict, int]:
    """The carry, captures and step count of a saved running run.

    ``carry`` is this call's starting carry: the saved one must have its structure,
    shapes and dtypes. The saved records go into ``recorder``.
    """
    _check_layout(arrays, shape)
    done = int(_entry(arrays, "done", (), _INTEGER))
    if not 0 < done < shape.num_steps:
        raise CheckpointError(
            f"entry 'done' is {done}, outside 1..{shape.num_steps - 1}"
        )
    leaves, structure = jax.tree.flatten(carry)
    restored = []
    for i, leaf in enumerate(leaves):
        restored.append(
            _entry(arrays, f"carry/{i}", leaf.shape, leaf.dtype.kind, leaf.dtype)
        )
    _restore_records(arrays, shape, recorder)
    captured = {
        index: (
            _entry(
                arrays,
                f"captured/{index}/position",
                (shape.batch, shape.chains, shape.dim),
                _FLOAT,
            ),
            _entry(
                arrays,
                f"captured/{index}/log_weight",
                (shape.batch, shape.chains),
                _FLOAT,
                np.dtype(np.float64),
            ),
        )
        for index in shape.capture
        if index <= done
    }
    return jax.tree.unflatten(structure, restored), captured, done
