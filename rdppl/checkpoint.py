"""Checkpoint and resume long runs.

A call of :func:`rdppl.rd_curve`, :func:`rdppl.bdmc` or :func:`rdppl.log_likelihood`
with ``checkpoint="run.ckpt"`` saves, every ``every_seconds`` (or
``every_temperatures``) and at the end of every AIS run it makes (the preliminary
run, the reported run, each BDMC direction), everything the call has computed so far:
the finished runs' records and tuning (step sizes, mass matrices, schedule decisions)
and the running one's chains (the AIS carry), records and captured posteriors. The
file also holds a *fingerprint* of everything that determines the result: the model
(its traced structure, its computation and its values at fixed points), the data, the
schedule, the kernel, the key, the other settings, the floating-point precision and
the library versions.

Calling the same function again with the same arguments resumes: finished runs are
read back, the running one restarts from its saved carry at the next temperature.
Every random number is a function of the key and the temperature's index, so a
resumed call returns a result bit-identical to an uninterrupted one (the wall time
aside). A call with different arguments raises :class:`CheckpointError` naming what
differs. The file is written atomically (a temporary file beside it, flushed and
renamed), so a kill at any moment leaves the previous checkpoint intact. The file is
kept after the call returns (calling again returns at once from it); delete it to
start afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Checkpoint", "CheckpointError", "CheckpointStore", "fingerprint"]

FORMAT = "rdppl-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for this call (names file and reason)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Where and how often a long call saves its progress.

    Pass it (or just a path) as ``checkpoint=`` to :func:`rdppl.rd_curve`,
    :func:`rdppl.bdmc` or :func:`rdppl.log_likelihood`; see :mod:`rdppl.checkpoint`.

    Parameters
    ----------
    path
        The checkpoint file (created or replaced atomically; its directory must
        exist).
    every_seconds
        Save the running AIS run when at least this long has passed since the last
        save (checked after each compiled segment of ``chunk_size`` temperatures).
    every_temperatures
        Also save when at least this many temperatures have run since the last
        save. ``None``: by time only.

    Examples
    --------
    >>> rdppl.Checkpoint("curve.ckpt", every_seconds=300)  # doctest: +SKIP
    """

    path: str | os.PathLike
    every_seconds: float = 60.0
    every_temperatures: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str | os.PathLike):
            raise TypeError(
                f"checkpoint path must be a str or os.PathLike, got {self.path!r}"
            )
        seconds = self.every_seconds
        if isinstance(seconds, bool) or not isinstance(
            seconds, int | float | np.integer | np.floating
        ):
            raise TypeError(
                f"every_seconds must be a number of seconds, got {seconds!r}"
            )
        if not (np.isfinite(float(seconds)) and seconds >= 0):
            raise ValueError(f"every_seconds must be finite and >= 0, got {seconds!r}")
        count = self.every_temperatures
        if count is not None and (
            isinstance(count, bool)
            or not isinstance(count, int | np.integer)
            or count < 1
        ):
            raise ValueError(
                f"every_temperatures must be None or an integer >= 1, got {count!r}"
            )


def as_checkpoint(value: Any) -> Checkpoint | None:
    """``None``, a :class:`Checkpoint`, or a path (default periods)."""
    if value is None or isinstance(value, Checkpoint):
        return value
    if isinstance(value, str | os.PathLike):
        return Checkpoint(value)
    raise TypeError(
        f"checkpoint must be None, a path or rdppl.Checkpoint(path, ...), got {value!r}"
    )


# --- the fingerprint -----------------------------------------------------------------


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def _array_digest(value: Any) -> str:
    array = np.asarray(value)
    digest = _digest(
        str(array.dtype).encode(),
        str(array.shape).encode(),
        np.ascontiguousarray(array).tobytes(),
    )
    return f"sha256:{digest} {array.dtype}{list(array.shape)}"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _describe(value: Any) -> str:
    """A stable text for a setting (arrays by digest, no memory addresses)."""
    if isinstance(value, np.ndarray | jax.Array) and np.ndim(value) > 0:
        return _array_digest(value)
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(
        value.dtype, jax.dtypes.prng_key
    ):
        return str(np.asarray(jax.random.key_data(value)).tolist())
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    return _ADDRESS.sub("", repr(value))


def _model_digest(target: Any, data: Any) -> str:
    """The traced program: structure, computation, and values at fixed points."""
    example = jnp.asarray(data)[0]
    dim = int(target.structure.num_latent_dimensions)
    dtype = jnp.result_type(float)
    points = jnp.stack(
        [
            jnp.zeros(dim, dtype),
            jnp.linspace(-1.0, 1.0, dim, dtype=dtype) * 0.7,
        ]
    )
    jaxpr = jax.make_jaxpr(target.log_prior_and_distortion)(points[0], example)
    values = jax.vmap(lambda u: target.log_prior_and_distortion(u, example))(points)
    return "sha256:" + _digest(
        _ADDRESS.sub("", repr(target.structure)).encode(),
        _ADDRESS.sub("", str(jaxpr)).encode(),
        np.asarray(values[0]).tobytes(),
        np.asarray(values[1]).tobytes(),
    )


def fingerprint(
    function: str, target: Any, data: Any, settings: Mapping[str, Any]
) -> dict[str, str]:
    """Everything that determines a call's result, as comparable text.

    Parameters
    ----------
    function
        The public function's name.
    target
        The traced model (:class:`rdppl.TracedModel`).
    data
        The examples the runs use (or a template for BDMC).
    settings
        The call's other result-determining arguments, already validated.
    """
    from rdppl.results.core import versions

    entries = {
        "function": function,
        "model": _model_digest(target, data),
        "data": _array_digest(data),
        "precision": str(jnp.result_type(float)),
        "versions": json.dumps(versions(), sort_keys=True),
    }
    entries.update({name: _describe(value) for name, value in settings.items()})
    return entries


# --- the store -----------------------------------------------------------------------


class CheckpointStore:
    """The checkpoint of one call: its finished runs and the running one's state.

    Runs are numbered in the order the call starts them (deterministic for given
    arguments). Created by the public entry points; :func:`rdppl.runner.run_path`
    asks it for finished runs and saved progress, and reports both.
    """

    def __init__(self, settings: Checkpoint, entries: Mapping[str, str]) -> None:
        self.settings = settings
        self.path = os.fspath(settings.path)
        self.entries = dict(entries)
        self.arrays: dict[str, np.ndarray] = {}
        self.calls = 0
        self.last_save = time.monotonic()
        self.steps_since_save = 0
        if os.path.exists(self.path):
            self.arrays = self._load()

    # reading

    def _load(self) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception as error:  # noqa: BLE001 - any reader error means unusable
            raise CheckpointError(
                f"checkpoint {self.path!r} cannot be read ({error}); it is not an "
                "rdppl checkpoint or it is damaged: delete it or choose another path"
            ) from error
        if str(arrays.get("meta/format", "")) != FORMAT:
            raise CheckpointError(
                f"checkpoint {self.path!r} is not an rdppl checkpoint (format "
                f"{str(arrays.get('meta/format', 'missing'))!r}); delete it or "
                "choose another path"
            )
        saved = json.loads(str(arrays["meta/fingerprint"]))
        differs = [
            name
            for name in sorted(set(saved) | set(self.entries))
            if saved.get(name) != self.entries.get(name)
        ]
        if differs:
            details = "; ".join(
                f"{name}: checkpoint {saved.get(name, '(absent)')!r}, "
                f"now {self.entries.get(name, '(absent)')!r}"
                for name in differs
            )
            raise CheckpointError(
                f"checkpoint {self.path!r} belongs to a different call: "
                f"{', '.join(differs)} differ ({details}). Call with the same "
                "arguments to resume, or delete the file or choose another path "
                "to start afresh"
            )
        return arrays

    def next_run(self) -> int:
        """Number the run that starts now."""
        self.calls += 1
        return self.calls - 1

    def finished(self, run: int, template: Callable[[dict], Any]) -> Any | None:
        """The finished run ``run`` rebuilt by ``template(arrays)``, or ``None``."""
        prefix = f"run/{run}/"
        if prefix + "done" not in self.arrays:
            return None
        return template(
            {
                name[len(prefix) :]: value
                for name, value in self.arrays.items()
                if name.startswith(prefix)
            }
        )

    def progress(self, run: int) -> dict[str, np.ndarray] | None:
        """The saved state of the running run ``run``, if that is the one saved."""
        if int(self.arrays.get("partial/run", -1)) != run:
            return None
        return {
            name[len("partial/") :]: value
            for name, value in self.arrays.items()
            if name.startswith("partial/")
        }

    # writing

    def due(self, steps: int) -> bool:
        """Count ``steps`` more temperatures; whether a save is due."""
        self.steps_since_save += steps
        every = self.settings.every_temperatures
        return time.monotonic() - self.last_save >= self.settings.every_seconds or (
            every is not None and self.steps_since_save >= every
        )

    def save_progress(self, run: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Save the running run's state (replacing the previous one)."""
        kept = {k: v for k, v in self.arrays.items() if not k.startswith("partial/")}
        kept.update({f"partial/{k}": np.asarray(v) for k, v in arrays.items()})
        kept["partial/run"] = np.asarray(run)
        self._write(kept)

    def save_finished(self, run: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Save a finished run and drop the running state."""
        kept = {k: v for k, v in self.arrays.items() if not k.startswith("partial/")}
        kept.update({f"run/{run}/{k}": np.asarray(v) for k, v in arrays.items()})
        kept[f"run/{run}/done"] = np.asarray(True)
        self._write(kept)

    def _write(self, arrays: dict[str, np.ndarray]) -> None:
        from rdppl.devices import is_coordinator
        from rdppl.results.files import replace_file

        if not is_coordinator():  # in a multi-process run, process 0 writes
            self.arrays = arrays
            self.last_save = time.monotonic()
            self.steps_since_save = 0
            return

        arrays["meta/format"] = np.asarray(FORMAT)
        arrays["meta/fingerprint"] = np.asarray(json.dumps(self.entries))

        def write(temporary: str) -> None:
            with open(temporary, "wb") as file:
                np.savez(file, **arrays)

        try:
            replace_file(self.path, write)
        except OSError as error:
            warnings.warn(
                f"could not save checkpoint {self.path!r} ({error}); the run goes "
                "on and tries again at the next save; the previous checkpoint is "
                "intact",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            self.arrays = arrays
        self.last_save = time.monotonic()
        self.steps_since_save = 0


def open_store(
    checkpoint: Checkpoint | None,
    function: str,
    target: Any,
    data: Any,
    settings: Mapping[str, Any],
) -> CheckpointStore | None:
    """The store of a call (``None`` without a checkpoint), checked against the file."""
    if checkpoint is None:
        return None
    return CheckpointStore(checkpoint, fingerprint(function, target, data, settings))
