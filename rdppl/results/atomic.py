"""Replacing a file or a directory atomically, never through a symbolic link.

The filesystem side of rdppl's result files and checkpoints: resolve and check the
target (:func:`target`), check free space (:func:`check_free_space`), then write into
a temporary sibling, flush it and move it into place (:func:`replace_file`, and
:func:`swap_into_place` for a directory), removing the temporary copy on any error.

A symbolic link at the target is refused rather than written through: replacing the
file a link points to would let a link (planted, or left from an old layout) direct a
write at any file the user may write, and replacing the link itself would silently
undo the user's layout. The final rename replaces a directory entry, never follows
one, so a link created after the check is replaced, not written through.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import Any

__all__ = [
    "check_free_space",
    "exchange",
    "fspath",
    "fsync",
    "fsync_tree",
    "mode_for",
    "remove",
    "replace_file",
    "swap_into_place",
    "target",
]

# free space to keep beyond the estimated size: 10 % and 1 MiB
_MARGIN_FRACTION = 0.1
_MARGIN_BYTES = 2**20


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other portable way to read it
    os.umask(mask)
    return mask


def mode_for(path: str, default: int) -> int:
    """Permissions for a new result: the replaced one's, else the umask's."""
    try:
        return stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        return default & ~_umask()


def fspath(path: Any) -> str:
    """``os.fspath(path)``, with an error that names the ``path`` argument."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"path must be a str or os.PathLike naming a file, got "
            f"{type(path).__name__} {path!r:.80}"
        )
    return os.fspath(path)


def target(path: str | os.PathLike) -> tuple[str, str, str]:
    """The absolute target, its directory and its name; refuse a symbolic link."""
    given = fspath(path)
    absolute = os.path.abspath(given)
    if os.path.islink(absolute):
        raise FileExistsError(
            errno.EEXIST,
            f"refusing to write through the symbolic link {given!r} (to "
            f"{os.readlink(absolute)!r}): pass the path it points to, or remove the "
            "link first",
            given,
        )
    directory, name = os.path.split(absolute)
    if not name:
        raise ValueError(f"{given!r} names no file")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, "no such directory to write the result in", directory
        )
    return absolute, directory, name


def check_free_space(directory: str, size: int, path: str) -> None:
    """Raise :class:`OSError` (``ENOSPC``) if ``directory`` lacks room for ``size``.

    Libraries such as HDF5 may crash rather than raise on a full disk, so the writers
    check first, with a margin (10 % and 1 MiB). Where the free space cannot be read,
    nothing is checked.
    """
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    needed = int(size * (1 + _MARGIN_FRACTION)) + _MARGIN_BYTES
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"not enough free space to write {path!r}: it needs about {needed} bytes "
            f"and {free} are free in {directory!r}",
            path,
        )


def fsync(path: str, *, directory: bool = False) -> None:
    """Flush a file (or, best effort, a directory entry list) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    except OSError:
        if directory:  # not possible everywhere (Windows)
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """Flush every file and directory under ``root``."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync(os.path.join(directory, name))
        fsync(directory, directory=True)


def remove(path: str) -> None:
    """Delete a file, link or directory tree, ignoring errors (never follows links)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(first: str, second: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), first, None, second)


def swap_into_place(new: str, path: str, directory: str, name: str) -> str | None:
    """Put the directory ``new`` at ``path``; return what to delete afterwards.

    Either ``path`` ends up holding ``new`` or, on an error, what it held before.
    """
    if not os.path.lexists(path):
        os.rename(new, path)
        return None
    if exchange(new, path):
        return new  # now holds the old store
    # rename the old store aside, the new one into place, then delete the old
    holder = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".old")
    aside = os.path.join(holder, name)
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)
        os.rmdir(holder)
        raise
    return holder


def replace_file(
    path: str | os.PathLike, write: Callable[[str], Any], *, size: int | None = None
) -> None:
    """Create or replace the file ``path`` atomically.

    ``write(temporary)`` writes the new content to a temporary file beside ``path``,
    which is then flushed to disk and renamed onto ``path`` (keeping the replaced
    file's permissions). ``path`` holds either its previous content or the complete
    new one, even if the process is killed; on an error the temporary file is
    removed and the error raised.

    Parameters
    ----------
    path
        The file to create or replace; a symbolic link there is refused.
    write
        Writes the content to the path it is given.
    size
        The content's expected size in bytes, if known: a directory with less free
        space (and a margin) is refused before anything is written.

    Raises
    ------
    FileExistsError
        If ``path`` is a symbolic link.
    IsADirectoryError
        If ``path`` is a directory.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    OSError
        With ``errno.ENOSPC`` if ``size`` does not fit; any error of ``write``.
    """
    absolute, directory, name = target(path)
    if os.path.isdir(absolute):
        raise IsADirectoryError(errno.EISDIR, "cannot replace a directory", absolute)
    if size is not None:
        check_free_space(directory, size, fspath(path))
    mode = mode_for(absolute, 0o666)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temporary)
        with contextlib.suppress(OSError):
            os.chmod(temporary, mode)
        fsync(temporary)
        os.replace(temporary, absolute)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync(directory, directory=True)
