r"""Result trees in netCDF-4 files (h5netcdf): :func:`to_netcdf`, :func:`from_netcdf`.

The guarantees and the attribute encoding are described in ``rdppl.results.files``.

Besides the digest of the content (``rdppl.results.digest``), a netCDF file ends with
a checksum of its own bytes, ``\nrdppl-sha256:<64 hex digits>\n`` after the HDF5
data (HDF5 ignores bytes past its end of allocation). Reading checks it before HDF5
parses anything: a damaged file can make the HDF5 library loop forever or crash, and
this way it is refused first. A file without the trailer (written before it, or with
the trailer itself damaged) is parsed and checked by its content digest alone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from typing import Any

import xarray as xr

from rdppl.results import atomic
from rdppl.results.attrs_codec import ResultFileError
from rdppl.results.tree_codec import decode_tree, encode_tree, estimated_size

__all__ = ["from_netcdf", "reader_error", "to_netcdf"]

_TRAILER = b"\nrdppl-sha256:"
_TRAILER_SIZE = len(_TRAILER) + 64 + 1
_HEX = re.compile(rb"[0-9a-f]{64}")
_BLOCK = 2**20


def reader_error(source: str, kind: str, error: BaseException) -> ResultFileError:
    """The error for a file the reader could not read or decode."""
    return ResultFileError(
        f"cannot read {source!r}: it is unreadable, corrupt or truncated, or not a "
        f"{kind} ({type(error).__name__}: {error})"
    )


def _hash_prefix(file: Any, length: int) -> bytes:
    """The SHA-256 hex digest of the first ``length`` bytes of an open file."""
    hasher = hashlib.sha256()
    file.seek(0)
    while length > 0:
        block = file.read(min(_BLOCK, length))
        if not block:
            break
        hasher.update(block)
        length -= len(block)
    return hasher.hexdigest().encode()


def _append_trailer(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "rb+") as file:
        digest = _hash_prefix(file, size)
        file.seek(size)
        file.write(_TRAILER + digest + b"\n")


def _check_trailer(source: str) -> None:
    """Refuse a file whose bytes do not match the checksum at its end, if it has one."""
    with open(source, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        if size < _TRAILER_SIZE:
            return
        file.seek(size - _TRAILER_SIZE)
        tail = file.read(_TRAILER_SIZE)
        stored = tail[len(_TRAILER) : -1]
        if not (tail.startswith(_TRAILER) and tail.endswith(b"\n")):
            return  # no trailer (or a damaged one): the content digest decides
        if not _HEX.fullmatch(stored) or _hash_prefix(file, size - _TRAILER_SIZE) != (
            stored
        ):
            raise ResultFileError(
                f"cannot read {source!r}: its bytes do not match the checksum at its "
                "end, so the file is damaged; pass strict=False to read what is left "
                "unchecked"
            )


def _open_hdf5(source: str) -> None:
    """Open ``source`` with h5py and read its root attributes, as h5netcdf does first.

    Where that fails, h5netcdf's half-built ``File`` raises again when it is garbage
    collected (an "Exception ignored in" message); failing here first avoids it.
    """
    import h5py  # h5netcdf's own dependency

    with h5py.File(source, "r") as file:
        file.attrs.get("_nc3_strict")


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a netCDF-4 file, atomically.

    Every attribute and variable is checked and encoded first (see
    ``rdppl.results.files``: values netCDF cannot hold become JSON strings that
    :func:`from_netcdf` decodes back exactly), and a checksum of the content is
    stored with it. The tree is then written to a temporary file beside ``path``,
    flushed to disk and moved onto ``path`` in one step, so ``path`` holds either its
    previous content or the complete new tree, never a partial file, even if the
    process is killed. ``tree`` is not modified.

    Parameters
    ----------
    tree
        The tree to write (any ``xarray.DataTree``; rdppl's results are ones).
    path
        The file to create or replace. A symbolic link is refused, not followed (pass
        the path it points to). The suffix is not interpreted: use
        :func:`to_zarr` for Zarr.

    Raises
    ------
    TypeError
        If ``tree`` is not a DataTree, or an attribute value or a variable cannot be
        stored (object dtype); the message names the group, variable and attribute.
    ValueError
        If an attribute uses a reserved name (``rdppl_format_version``,
        ``rdppl_tree_name``, ``rdppl_attr_types``, ``rdppl_layout``,
        ``rdppl_digest``, one HDF5 reserves, or, on a variable, a CF encoding
        attribute such as ``_FillValue`` or ``scale_factor``).
    FileExistsError
        If ``path`` is a symbolic link.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    OSError
        With ``errno.ENOSPC`` if the directory has less free space than the file
        needs (with a margin); nothing is written then.

    See Also
    --------
    from_netcdf : read the file back.
    to_zarr : the same for a Zarr store.

    Examples
    --------
    >>> import xarray as xr
    >>> tree = xr.DataTree.from_dict({"/curve": xr.Dataset({"rate": ("beta", [0.5])})})
    >>> to_netcdf(tree, "result.nc")  # doctest: +SKIP
    """
    target, _, _ = atomic.target(path)
    encoded = encode_tree(tree, "netcdf")
    if os.path.isdir(target):
        raise IsADirectoryError(
            errno.EISDIR, "cannot replace a directory with a netCDF file", target
        )

    def write(temporary: str) -> None:
        encoded.to_netcdf(temporary, engine="h5netcdf")
        _append_trailer(temporary)

    atomic.replace_file(path, write, size=estimated_size(encoded))


def from_netcdf(path: str | os.PathLike, *, strict: bool = True) -> xr.DataTree:
    """Read a result tree written by :func:`to_netcdf`, into memory.

    The file is closed before the tree is returned, so the same path can be written
    again at once. Attributes come back with the values and types they were written
    with, and the tree with its name. The content is checked against the checksum
    stored with it, so a damaged file raises an error rather than reading back
    changed values (files written by rdppl before it stored checksums, file format
    1, are read unchecked).

    Parameters
    ----------
    path
        A netCDF-4 file.
    strict
        If True (default), refuse a valid netCDF file that rdppl did not write (no
        ``rdppl_format_version`` root attribute; results written by rdppl before it
        set the marker, which carry ``rdppl_version``, are accepted) and a file whose
        content does not match its checksum. If False, a foreign file is returned
        as xarray reads it, and an rdppl file is decoded without checking its
        checksum (to recover what is left of a damaged file).

    Returns
    -------
    xarray.DataTree
        The tree, loaded into memory.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory (a Zarr store: read it with
        :func:`from_zarr`).
    ResultFileError
        A :class:`ValueError` naming the file: it is not netCDF-4/HDF5, is corrupt
        or truncated (the reader's error is chained), does not match its checksum,
        is a netCDF file rdppl did not write (with ``strict=True``), or is in a
        newer rdppl file format.

    See Also
    --------
    to_netcdf : write a tree.
    from_zarr : the same for a Zarr store.
    """
    source = atomic.fspath(path)
    if not os.path.exists(source):
        raise FileNotFoundError(errno.ENOENT, "no result file", source)
    if os.path.isdir(source):
        raise IsADirectoryError(
            errno.EISDIR,
            "a directory, not a netCDF file (a Zarr store? use rdppl.from_zarr)",
            source,
        )
    with open(source, "rb"):  # a file we may not read raises PermissionError here
        pass
    if strict:
        _check_trailer(source)
    try:
        _open_hdf5(source)
        with xr.open_datatree(source, engine="h5netcdf") as opened:
            tree = opened.load()
        return decode_tree(tree, source, strict=strict)
    except (MemoryError, ResultFileError):
        raise
    except Exception as error:
        raise reader_error(source, "netCDF-4/HDF5 file", error) from error
