"""Result trees in Zarr stores: :func:`to_zarr` and :func:`from_zarr`.

The guarantees and the attribute encoding are described in ``rdppl.results.files``.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile

import xarray as xr

from rdppl.results import atomic
from rdppl.results.attrs_codec import ResultFileError
from rdppl.results.netcdf import reader_error
from rdppl.results.tree_codec import decode_tree, encode_tree, estimated_size

__all__ = ["from_zarr", "to_zarr"]

_ZARR_MARKERS = (".zgroup", ".zmetadata", ".zarray", "zarr.json")


def _is_zarr_store(path: str) -> bool:
    return os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, marker)) for marker in _ZARR_MARKERS
    )


def _require_zarr() -> None:
    try:
        import zarr  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "reading and writing Zarr stores needs the zarr package: "
            "pip install 'rdppl[zarr]'"
        ) from error


def to_zarr(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a Zarr store (a directory), atomically.

    The same checks, attribute encoding and checksum as
    :func:`to_netcdf`. The store (Zarr format 2, consolidated
    metadata) is written into a temporary directory beside ``path``, flushed to
    disk, and then swapped with the existing store in one atomic step where the
    system supports it (Linux), or else the old store is renamed aside, the new one
    renamed into place and the old one deleted. A failure leaves the old store in
    place; a process killed during the rename-aside fallback leaves the old store in
    a ``.NAME.<random>.old`` directory beside ``path``, which :func:`from_zarr`
    points to.

    Parameters
    ----------
    tree
        The tree to write. It is not modified.
    path
        The store to create or replace. An existing path must be a Zarr store: any
        other file or directory, and a symbolic link, is refused rather than
        replaced.

    Raises
    ------
    ImportError
        If zarr is not installed (``pip install 'rdppl[zarr]'``).
    TypeError
        If an attribute value or a variable cannot be stored; the message names the
        group, variable and attribute.
    ValueError
        If an attribute uses a reserved name.
    FileExistsError
        If ``path`` exists and is not a Zarr store, or is a symbolic link.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    OSError
        With ``errno.ENOSPC`` if the directory has less free space than the store
        needs (with a margin); nothing is written then.

    See Also
    --------
    from_zarr : read the store back.
    to_netcdf : the same for a netCDF-4 file.
    """
    _require_zarr()
    encoded = encode_tree(tree, "zarr")
    target, directory, name = atomic.target(path)
    if os.path.lexists(target) and not _is_zarr_store(target):
        raise FileExistsError(
            errno.EEXIST,
            "refusing to replace something that is not a Zarr store",
            target,
        )
    atomic.check_free_space(directory, estimated_size(encoded), atomic.fspath(path))
    mode = atomic.mode_for(target, 0o777)
    temporary = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        # every chunk written, even one equal to the fill value (a missing chunk would
        # read back as the canonical NaN, not the NaN or -0.0 written)
        encoded.to_zarr(
            temporary,
            mode="w",
            consolidated=True,
            zarr_format=2,
            write_empty_chunks=True,
        )
        with contextlib.suppress(OSError):
            os.chmod(temporary, mode)
        atomic.fsync_tree(temporary)
        old = atomic.swap_into_place(temporary, target, directory, name)
    except BaseException:
        atomic.remove(temporary)
        raise
    atomic.fsync(directory, directory=True)
    if old is not None:
        atomic.remove(old)


def from_zarr(path: str | os.PathLike, *, strict: bool = True) -> xr.DataTree:
    """Read a result tree written by :func:`to_zarr`, into memory.

    The content is checked against the checksum stored with it, as in
    :func:`from_netcdf`.

    Parameters
    ----------
    path
        A Zarr store (directory).
    strict
        If True (default), refuse a Zarr store that rdppl did not write (no
        consolidated metadata or no ``rdppl_format_version`` root attribute) and one
        whose content does not match its checksum. If False, a foreign store is
        returned as xarray reads it, and an rdppl store is decoded without checking
        its checksum.

    Returns
    -------
    xarray.DataTree
        The tree, loaded into memory, with its name and attributes as written.

    Raises
    ------
    ImportError
        If zarr is not installed (``pip install 'rdppl[zarr]'``).
    FileNotFoundError
        If ``path`` does not exist (the message points to the previous store if an
        interrupted :func:`to_zarr` left it aside).
    ResultFileError
        A :class:`ValueError` naming the store: it is not a Zarr store, is corrupt
        (the reader's error is chained), does not match its checksum, was not
        written by rdppl (with ``strict=True``), or is in a newer rdppl file format.

    See Also
    --------
    to_zarr : write a tree.
    from_netcdf : the same for a netCDF-4 file.
    """
    _require_zarr()
    source = atomic.fspath(path)
    if not os.path.exists(source):
        message = "no result store"
        head, name = os.path.split(os.path.abspath(source))
        aside = sorted(
            glob.glob(os.path.join(glob.escape(head), f".{name}.*.old", name))
        )
        if aside:
            message += f" (an interrupted write left the previous one at {aside[-1]!r})"
        raise FileNotFoundError(errno.ENOENT, message, source)
    if not os.path.isdir(source):
        raise ResultFileError(
            f"cannot read {source!r}: it is a file, not a Zarr store (a directory); "
            "a netCDF file? use rdppl.from_netcdf"
        )
    # rdppl's stores have consolidated metadata; with strict=False, try without too
    attempts = [True] if strict else [True, False]
    for attempt, consolidated in enumerate(attempts, start=1):
        try:
            with xr.open_datatree(
                source, engine="zarr", consolidated=consolidated
            ) as opened:
                tree = opened.load()
            break
        except MemoryError:
            raise
        except Exception as error:
            if attempt == len(attempts):
                raise reader_error(source, "Zarr store", error) from error
    try:
        return decode_tree(tree, source, strict=strict)
    except (MemoryError, ResultFileError):
        raise
    except Exception as error:
        raise reader_error(source, "Zarr store", error) from error
