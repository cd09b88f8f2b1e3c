"""An advisory lock on a checkpoint, so two processes never share one file.

The lock is ``fcntl.flock`` on a file beside the checkpoint, ``<checkpoint>.lock``,
which holds the owner's process id. A second process that asks for it is refused at
once (:class:`rdppl.CheckpointError`), instead of overwriting the first one's
progress. Within one process, calls on the same path share the lock (a call that
failed and is retried does not lock itself out). The lock is released, and its file
removed, by :meth:`CheckpointLock.release` or when the last store holding it is
garbage collected (a killed process releases it with its open files). Where
``fcntl`` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CheckpointLock", "lock_checkpoint"]

_HELD: weakref.WeakValueDictionary[str, CheckpointLock] = weakref.WeakValueDictionary()
_GUARD = threading.Lock()


def _release(fd: int, path: str, identity: tuple[int, int]) -> None:
    """Remove the lock file (if it is still ours), then close and so unlock it."""
    try:
        status = os.stat(path, follow_symlinks=False)
        if (status.st_dev, status.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass
    try:
        os.close(fd)
    except OSError:
        pass


class CheckpointLock:
    """The held lock of one checkpoint path (see :func:`lock_checkpoint`)."""

    def __init__(self, path: str, fd: int, identity: tuple[int, int]) -> None:
        self.path = path
        self._finalizer = weakref.finalize(self, _release, fd, path, identity)

    @property
    def held(self) -> bool:
        """Whether the lock is still held."""
        return self._finalizer.alive

    def release(self) -> None:
        """Release the lock now (idempotent)."""
        with _GUARD:
            if _HELD.get(self.path) is self:
                del _HELD[self.path]
            self._finalizer()


def _holder(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            pid = file.read(32).strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid.isdigit() else "another process"


def lock_checkpoint(checkpoint: str, error: type[Exception]) -> Any:
    """Take the lock of ``checkpoint`` or raise ``error`` naming who holds it.

    Parameters
    ----------
    checkpoint
        The checkpoint's path (the lock file is this path with ``.lock`` added).
    error
        The exception type to raise (:class:`rdppl.CheckpointError`).

    Returns
    -------
    CheckpointLock or None
        The lock, the one this process already holds for the same path if there is
        one, or ``None`` where file locks do not exist.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    path = os.path.abspath(checkpoint) + ".lock"
    with _GUARD:
        held = _HELD.get(path)
        if held is not None and held.held:
            return held
        for _ in range(10):  # the file may be replaced between open and lock
            try:
                fd = os.open(
                    path,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o666,
                )
            except OSError as failure:
                raise error(
                    f"cannot lock checkpoint {checkpoint!r}: cannot open its lock "
                    f"file {path!r} ({failure.strerror or failure}); remove it if it "
                    "is not a regular file, or choose another path"
                ) from failure
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as failure:
                os.close(fd)
                raise error(
                    f"checkpoint {checkpoint!r} is in use: {_holder(path)} holds its "
                    f"lock {path!r}. Two calls must not share a checkpoint: wait "
                    "for the other one to finish, or choose another path"
                ) from failure
            status = os.fstat(fd)
            identity = (status.st_dev, status.st_ino)
            try:
                current = os.stat(path, follow_symlinks=False)
            except OSError:
                current = None
            if current is None or (current.st_dev, current.st_ino) != identity:
                os.close(fd)  # removed by its previous holder: lock the new one
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            lock = CheckpointLock(path, fd, identity)
            _HELD[path] = lock
            return lock
    raise error(f"cannot lock checkpoint {checkpoint!r}: its lock file keeps changing")
