"""Checkpoint and resume long runs.

A call of :func:`rdppl.rd_curve`, :func:`rdppl.bdmc` or :func:`rdppl.log_likelihood`
with ``checkpoint="run.ckpt"`` saves, every ``every_seconds`` (or
``every_temperatures``) and at the end of every AIS run it makes (the preliminary
run, the reported run, each BDMC direction), everything the call has computed so far:
the finished runs' records and tuning (step sizes, mass matrices, schedule decisions)
and the running one's chains (the AIS carry), records and captured posteriors. The
file also holds a *fingerprint* of everything that determines the result
(:mod:`rdppl.sampler.fingerprint`): the model (its traced structure, its computations
and the content of every array they use: weights, ``model_args``), the data, the
schedule, the kernel (its class, settings and functions), the key, the other settings,
the floating-point precision and the library versions. Each run also records which
examples it ran in which batch (``batch_size``).

Calling the same function again with the same arguments resumes: finished runs are
read back, the running one restarts from its saved carry at the next temperature.
Every random number is a function of the key and the temperature's index, so a
resumed call returns a result bit-identical to an uninterrupted one (the wall time
aside). A call with different arguments (``batch_size`` included) raises
:class:`CheckpointError` naming what differs; so does a file that is damaged, not a
checkpoint, or written by another version of rdppl. The file is written atomically
(a temporary file beside it, flushed and renamed), so a kill at any moment leaves
the previous checkpoint intact. While a call runs it holds an advisory lock,
``<checkpoint>.lock`` (:mod:`rdppl.sampler.checkpoint_lock`): a second process on the
same checkpoint is refused. The checkpoint's directory must exist, and its path must not
be a symbolic link. The file is kept after the call returns (calling again returns
at once from it); delete it to start afresh.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rdppl.sampler.fingerprint import FINGERPRINT_VERSION, fingerprint

__all__ = ["Checkpoint", "CheckpointError", "CheckpointStore", "fingerprint"]

FORMAT = f"rdppl-checkpoint-{FINGERPRINT_VERSION}"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for this call (names file and reason)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """Where and how often a long call saves its progress.

    Pass it (or just a path) as ``checkpoint=`` to :func:`rdppl.rd_curve`,
    :func:`rdppl.bdmc` or :func:`rdppl.log_likelihood`; see
    :mod:`rdppl.sampler.checkpoint`.

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


# --- the store -----------------------------------------------------------------------


class CheckpointStore:
    """The checkpoint of one call: its finished runs and the running one's state.

    Runs are numbered in the order the call starts them (deterministic for given
    arguments). Created by the public entry points;
    :func:`rdppl.sampler.runner.run_path` asks it for finished runs and saved progress,
    and reports both. The store holds the checkpoint's lock
    (:mod:`rdppl.sampler.checkpoint_lock`) until :meth:`release`, the end of a ``with``
    block on it, or its garbage collection.

    Raises
    ------
    CheckpointError
        The checkpoint's directory does not exist, its path is a symbolic link or a
        directory, another process holds its lock, or the file there is not an
        rdppl checkpoint of this version, is damaged, or belongs to another call.
    """

    def __init__(self, settings: Checkpoint, entries: Mapping[str, str]) -> None:
        from rdppl.sampler.checkpoint_lock import lock_checkpoint
        from rdppl.sampler.devices import is_coordinator

        self.settings = settings
        self.path = os.fspath(settings.path)
        self.entries = dict(entries)
        self.arrays: dict[str, np.ndarray] = {}
        self.calls = 0
        self.last_save = time.monotonic()
        self.steps_since_save = 0
        _check_path(self.path)
        # in a multi-process run only process 0 reads and writes the file
        self.lock = (
            lock_checkpoint(self.path, CheckpointError) if (is_coordinator()) else None
        )
        try:
            if os.path.lexists(self.path):
                self.arrays = self._load()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Release the checkpoint's lock (the call is over; idempotent)."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exception: object) -> None:
        self.release()

    # reading

    def _refuse(self, reason: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {self.path!r} {reason}; delete it or choose another path"
        )

    def _load(self) -> dict[str, np.ndarray]:
        try:
            with open(self.path, "rb") as file:
                return self._check(self._read_archive(file))
        except OSError as error:
            raise self._refuse(f"cannot be read ({error.strerror or error})") from error

    def _read_archive(self, file: Any) -> dict[str, np.ndarray]:
        start = file.read(4)
        if not start.startswith(_ZIP_MAGIC):
            raise self._refuse(
                "cannot be read: it is empty"
                if not start
                else "cannot be read: it is not an rdppl checkpoint (not an archive "
                "of NumPy arrays)"
            )
        file.seek(0)
        arrays, entry = {}, ""
        try:
            with np.load(file, allow_pickle=False) as archive:
                for name in archive.files:
                    entry = f" (entry {name!r})"
                    arrays[name] = archive[name]
        except Exception as error:  # noqa: BLE001 - any reader error means unusable
            reason = f"{type(error).__name__}: {error}"
            if "allow_pickle" in str(error):
                reason = "it holds Python objects, which no checkpoint holds"
            raise self._refuse(
                f"cannot be read{entry}: it is damaged or not an rdppl checkpoint "
                f"({reason})"
            ) from error
        return arrays

    def _check(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        marker = arrays.get("meta/format")
        marker = str(marker) if marker is not None and marker.shape == () else None
        if marker != FORMAT:
            if marker is not None and marker.startswith("rdppl-checkpoint-"):
                raise self._refuse(
                    f"was written by another version of rdppl (format {marker!r}, "
                    f"this one reads {FORMAT!r}), whose fingerprint does not "
                    "detect every change of arguments; it cannot be resumed"
                )
            raise self._refuse(
                f"is not an rdppl checkpoint (format {marker or 'missing'!r})"
            )
        saved = _saved_fingerprint(arrays.get("meta/fingerprint"))
        if saved is None:
            raise self._refuse("is damaged: its fingerprint is missing or unreadable")
        run = arrays.get("partial/run")
        if run is not None and (run.shape != () or run.dtype.kind not in "iu"):
            raise self._refuse("is damaged: entry 'partial/run' is not a run number")
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

    def _read(self, run: int, prefix: str, template: Callable[[dict], Any]) -> Any:
        arrays = {
            name[len(prefix) :]: value
            for name, value in self.arrays.items()
            if name.startswith(prefix)
        }
        try:
            return template(arrays)
        except CheckpointError as error:
            raise CheckpointError(
                f"checkpoint {self.path!r} cannot be resumed: run {run} {error}"
            ) from None
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise self._refuse(
                f"is damaged: run {run} cannot be read back ({type(error).__name__}: "
                f"{error})"
            ) from error

    def next_run(self) -> int:
        """Number the run that starts now."""
        self.calls += 1
        return self.calls - 1

    def finished(self, run: int, template: Callable[[dict], Any]) -> Any | None:
        """The finished run ``run`` rebuilt by ``template(arrays)``, or ``None``.

        ``template`` raises :class:`CheckpointError` for arrays this call cannot
        use (the store names the file and the run).
        """
        if f"run/{run}/done" not in self.arrays:
            return None
        return self._read(run, f"run/{run}/", template)

    def progress(self, run: int, template: Callable[[dict], Any]) -> Any | None:
        """The saved state of the running run ``run`` rebuilt by ``template``.

        ``None`` unless the file's running run is ``run``.
        """
        if int(self.arrays.get("partial/run", -1)) != run:
            return None
        return self._read(run, "partial/", template)

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
        from rdppl.results.files import replace_file
        from rdppl.sampler.devices import is_coordinator

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


def _check_path(path: str) -> None:
    """Refuse a checkpoint path that cannot be written safely, before any run."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.basename(os.path.abspath(path)) or path.endswith(os.sep):
        raise CheckpointError(f"checkpoint={path!r} names no file")
    if not os.path.isdir(directory):
        raise CheckpointError(
            f"checkpoint={path!r}: its directory {directory!r} does not exist; "
            "create it, or pass a path in an existing directory"
        )
    if os.path.islink(path):
        raise CheckpointError(
            f"checkpoint={path!r} is a symbolic link (to {os.readlink(path)!r}); "
            "rdppl does not write a checkpoint through a link: pass the path it "
            "points to, or remove the link"
        )
    if os.path.lexists(path) and not os.path.isfile(path):
        raise CheckpointError(
            f"checkpoint={path!r} exists and is not a regular file (a directory?); "
            "choose another path"
        )


def _saved_fingerprint(value: np.ndarray | None) -> dict[str, str] | None:
    """The fingerprint a file holds, or ``None`` if it is absent or unreadable."""
    if value is None or value.shape != () or value.dtype.kind != "U":
        return None
    try:
        saved = json.loads(str(value))
    except ValueError:
        return None
    if not isinstance(saved, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in saved.items()
    ):
        return None
    return saved


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
