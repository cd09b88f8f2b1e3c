"""Reading and writing result trees safely: netCDF-4 (h5netcdf) and Zarr.

Guarantees
----------
Writing never damages an existing result. :func:`to_netcdf` and :func:`to_zarr` first
check and convert every attribute and variable (nothing touches the filesystem before
that succeeds), then write into a temporary file (``.NAME.<random>.tmp``) or directory
in the target's own directory, flush it to disk, and only then move it onto the target
(``os.replace`` for a file; an atomic exchange, or on systems without one a rename
aside, for a Zarr directory). On any error the temporary copy is removed and the target
is untouched; a process killed mid-write leaves the previous result readable (and, at
worst, an orphaned ``.NAME.<random>.tmp`` beside it, safe to delete).

Reading checks what it reads. :func:`from_netcdf` and :func:`from_zarr` raise
:class:`FileNotFoundError` for a missing path, :class:`ResultFileError` (a
:class:`ValueError`) naming the file for a corrupt, truncated or foreign file, and
return a tree loaded into memory with the file closed.

Attribute encoding
------------------
What :func:`to_netcdf` accepts, :func:`from_netcdf` gives back exactly: same values,
same Python and NumPy types (and the same for Zarr). Attributes of the root, of every
group and of every variable may hold:

- ``str``, ``int``, ``float``, ``bool`` and ``None``;
- ``list``, ``tuple`` and ``dict`` (string keys), nested, of these and of NumPy values;
- NumPy scalars and arrays of booleans, integers, floats and fixed-width strings.

Values netCDF holds natively stay native (readable by any netCDF tool): strings,
Python ``int`` (64-bit) and ``float``, NumPy integer and floating scalars, and
one-dimensional non-empty NumPy integer and floating arrays. Everything else
(``bool``, ``None``, every ``list``, ``tuple`` and ``dict``, other arrays and scalars,
strings holding NUL characters, integers beyond 64 bits) is stored as a JSON string.
Zarr keeps strings, 64-bit ``int`` and finite ``float`` native and stores everything
else as a JSON string. Inside the JSON, tuples, NumPy arrays and NumPy scalars are
tagged objects (``{"__tuple__": [...]}``, ``{"__ndarray__": [dtype, shape, items]}``,
``{"__numpy__": [dtype, item]}``), and a dict whose only key is such a tag is wrapped
as ``{"__dict__": {...}}``.

Each attribute set that needs decoding carries one more attribute,
``rdppl_attr_types``: a JSON object mapping an attribute name to how to restore it
(``"json"``, ``"int"``, ``"float"`` or ``"array"``; for instance a Python ``int`` is
stored as a 64-bit integer and given back as ``int``, not ``numpy.int64``). The root
also carries ``rdppl_format_version`` (``1``; it marks the file as written by rdppl),
``rdppl_tree_name`` (the tree's name) and ``rdppl_layout`` (the order of groups and
variables, which Zarr does not keep). These names are reserved. Anything else (a
function, an arbitrary object, a ``dict`` with non-string keys, a subclass of ``list``
or ``dict``, complex numbers, dates) is refused with a :class:`TypeError` naming the
group, variable and attribute. Data variables and coordinates of ``object`` dtype are
refused too (convert strings with ``.astype(str)``).

The functions do not dispatch on the path's suffix: :func:`to_netcdf` always writes
netCDF-4 and :func:`to_zarr` always writes a Zarr store (format 2, consolidated
metadata), whatever the name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import math
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "ResultFileError",
    "from_netcdf",
    "from_zarr",
    "replace_file",
    "to_netcdf",
    "to_zarr",
]

FORMAT_VERSION = 1
FORMAT_ATTR = "rdppl_format_version"
NAME_ATTR = "rdppl_tree_name"
TYPES_ATTR = "rdppl_attr_types"
LAYOUT_ATTR = "rdppl_layout"
_RESERVED = frozenset({FORMAT_ATTR, NAME_ATTR, TYPES_ATTR, LAYOUT_ATTR})
# attribute names HDF5 dimension scales and the netCDF-C library keep for themselves
_HDF5_RESERVED = frozenset(
    {
        "REFERENCE_LIST",
        "CLASS",
        "DIMENSION_LIST",
        "NAME",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_nc3_strict",
        "_NCProperties",
    }
)
# the NumPy types netCDF-4 attributes hold natively (native byte order only)
_NETCDF_DTYPES = frozenset(
    np.dtype(name)
    for name in (
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
    )
)
_JSON_KINDS = frozenset("biufU")  # NumPy kinds storable as JSON items
_TAGS = frozenset({"__tuple__", "__ndarray__", "__numpy__", "__dict__"})
_INT64 = np.iinfo(np.int64)
_SUPPORTED = (
    "str, int, float, bool, None, list, tuple, dict with str keys, and NumPy "
    "booleans, numbers and strings (scalars or arrays)"
)
_ZARR_MARKERS = (".zgroup", ".zmetadata", ".zarray", "zarr.json")


class ResultFileError(ValueError):
    """A file or store that is not a readable rdppl result.

    Raised by :func:`from_netcdf` and :func:`from_zarr` for a corrupt, truncated or
    foreign file; the message names the file, and the error of the underlying reader,
    if any, is chained as ``__cause__``.
    """


# --- attribute encoding ------------------------------------------------------------


def _where(group: str, variable: str | None) -> str:
    if variable is None:
        return f"group {group!r}"
    return f"variable {variable!r} in group {group!r}"


def _to_json(value: Any, trail: str) -> Any:
    """A JSON-ready structure that :func:`_from_json` turns back into ``value``."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [_to_json(item, f"{trail}[{i}]") for i, item in enumerate(value)]
    if kind is tuple:
        return {
            "__tuple__": [_to_json(v, f"{trail}[{i}]") for i, v in enumerate(value)]
        }
    if kind is dict:
        encoded = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{trail} has the key {key!r} of type {type(key).__name__}: "
                    "dict keys must be str"
                )
            encoded[key] = _to_json(item, f"{trail}[{key!r}]")
        if len(encoded) == 1 and next(iter(encoded)) in _TAGS:
            return {"__dict__": encoded}
        return encoded
    if kind is np.ndarray and value.dtype.kind in _JSON_KINDS:
        return {
            "__ndarray__": [value.dtype.str, list(value.shape), value.ravel().tolist()]
        }
    if isinstance(value, np.generic) and value.dtype.kind in _JSON_KINDS:
        return {"__numpy__": [value.dtype.str, value.item()]}
    raise TypeError(f"{trail} is a {kind.__name__}, which is not storable")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "__tuple__":
                return tuple(_from_json(item) for item in inner)
            if tag == "__dict__":
                return {key: _from_json(item) for key, item in inner.items()}
            if tag == "__ndarray__":
                dtype, shape, items = inner
                return np.array(items, dtype=np.dtype(dtype)).reshape(shape)
            if tag == "__numpy__":
                dtype, item = inner
                return np.array(item, dtype=np.dtype(dtype))[()]
        return {key: _from_json(item) for key, item in value.items()}
    return value


def _plain_string(value: str) -> bool:
    """Whether HDF5 stores ``value`` as a UTF-8 string and gives it back unchanged."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _encode_value(value: Any, backend: str) -> tuple[Any, str | None]:
    """The stored form of one attribute and its ``rdppl_attr_types`` tag (or None)."""
    kind = type(value)
    if kind is str and (backend == "zarr" or _plain_string(value)):
        return value, None
    if kind is int and _INT64.min <= value <= _INT64.max:
        return (value, None) if backend == "zarr" else (np.int64(value), "int")
    if kind is float:
        if backend == "netcdf":
            return np.float64(value), "float"
        if math.isfinite(value):
            return value, None
    if backend == "netcdf":
        if isinstance(value, np.generic) and value.dtype in _NETCDF_DTYPES:
            return value, None
        if (
            kind is np.ndarray
            and value.ndim == 1
            and value.size > 0
            and value.dtype in _NETCDF_DTYPES
        ):
            return value.copy(), "array"
    structure = _to_json(value, "the value")
    return json.dumps(structure, allow_nan=True), "json"


def _encode_attrs(
    attrs: dict[Any, Any], where: str, backend: str
) -> tuple[dict[str, Any], dict[str, str]]:
    encoded: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for key, value in attrs.items():
        if type(key) is not str or not key:
            raise TypeError(
                f"cannot store the attribute {key!r} of {where}: attribute names must "
                "be non-empty str"
            )
        if key in _RESERVED:
            raise ValueError(
                f"cannot store the attribute {key!r} of {where}: the name is reserved "
                "for rdppl's file format"
            )
        if backend == "netcdf" and key in _HDF5_RESERVED:
            raise ValueError(
                f"cannot store the attribute {key!r} of {where}: the name is reserved "
                "by HDF5/netCDF"
            )
        try:
            encoded[key], tag = _encode_value(value, backend)
        except TypeError as error:
            raise TypeError(
                f"cannot store the attribute {key!r} of {where}: {error} (storable: "
                f"{_SUPPORTED}); convert it first, for example with str()"
            ) from None
        if tag is not None:
            tags[key] = tag
    return encoded, tags


def _finish_attrs(encoded: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    if tags:
        encoded[TYPES_ATTR] = json.dumps(tags)
    return encoded


def _check_variable(variable: xr.Variable, where: str) -> None:
    if variable.dtype == object:
        raise TypeError(
            f"cannot store {where}: its dtype is object, which has no netCDF or Zarr "
            "equivalent; convert it to a numeric or string dtype (for strings: "
            ".astype(str))"
        )


def _encode_tree(tree: xr.DataTree, backend: str) -> xr.DataTree:
    """A new tree ready for ``backend``; ``tree`` is not modified."""
    if not isinstance(tree, xr.DataTree):
        hint = ""
        if isinstance(tree, xr.Dataset):
            hint = " (wrap a Dataset: xarray.DataTree(dataset))"
        raise TypeError(f"expected an xarray.DataTree, got {type(tree).__name__}{hint}")
    datasets = {}
    layout = {}
    for relative, node in tree.subtree_with_keys:
        group = "/" if relative == "." else f"/{relative}"
        # a shallow copy: new Variable objects and attribute dicts, shared data
        dataset = node.to_dataset(inherit=False).copy(deep=False)
        for name, variable in dataset.variables.items():
            where = _where(group, name)
            _check_variable(variable, where)
            encoded, tags = _encode_attrs(dict(variable.attrs), where, backend)
            variable.attrs = _finish_attrs(encoded, tags)
        encoded, tags = _encode_attrs(dict(dataset.attrs), _where(group, None), backend)
        if group == "/":
            encoded[FORMAT_ATTR] = (
                np.int64(FORMAT_VERSION) if backend == "netcdf" else FORMAT_VERSION
            )
            if tree.name is not None:
                try:
                    encoded[NAME_ATTR], tag = _encode_value(tree.name, backend)
                except TypeError as error:
                    raise TypeError(f"cannot store the tree name: {error}") from None
                if tag is not None:
                    tags[NAME_ATTR] = tag
        dataset.attrs = _finish_attrs(encoded, tags)
        datasets[group] = dataset
        layout[group] = list(dataset.variables)
    # Zarr lists groups and variables alphabetically: record their order
    datasets["/"].attrs[LAYOUT_ATTR] = json.dumps(layout)
    return xr.DataTree.from_dict(datasets)


def _decode_value(value: Any, tag: Any) -> Any:
    if tag == "json" and isinstance(value, str):
        return _from_json(json.loads(value))
    if tag == "int" and isinstance(value, int | np.integer):
        return int(value)
    if tag == "float" and isinstance(value, float | np.floating):
        return float(value)
    if tag == "array" and isinstance(value, np.ndarray | np.number):
        return np.array(value, ndmin=1)
    raise ValueError(f"cannot decode {type(value).__name__} value as {tag!r}")


def _decode_attrs(attrs: Any, where: str, source: str) -> dict[str, Any]:
    decoded = dict(attrs)
    raw = decoded.pop(TYPES_ATTR, None)
    if raw is None:
        return decoded
    try:
        tags = json.loads(raw)
        if not isinstance(tags, dict):
            raise ValueError(f"{TYPES_ATTR} is not a JSON object")
        for key, tag in tags.items():
            if key not in decoded:
                raise ValueError(f"{TYPES_ATTR} names the missing attribute {key!r}")
            try:
                decoded[key] = _decode_value(decoded[key], tag)
            except (ValueError, TypeError, KeyError) as error:
                raise ValueError(f"attribute {key!r}: {error}") from error
    except (ValueError, TypeError) as error:
        raise ResultFileError(
            f"cannot read {source!r}: the attributes of {where} are corrupt ({error})"
        ) from error
    return decoded


def _decode_tree(tree: xr.DataTree, source: str, *, strict: bool) -> xr.DataTree:
    """Undo :func:`_encode_tree` on a tree read from ``source``."""
    version = tree.attrs.get(FORMAT_ATTR)
    if version is None:
        # files written before rdppl marked them: results carry their rdppl version
        if not strict or "rdppl_version" in tree.attrs:
            return tree
        raise ResultFileError(
            f"{source!r} was not written by rdppl: it has no {FORMAT_ATTR!r} root "
            "attribute; pass strict=False to read it as a plain xarray.DataTree"
        )
    if not isinstance(version, int | np.integer) or version < 1:
        raise ResultFileError(
            f"cannot read {source!r}: its {FORMAT_ATTR!r} is {version!r}, not a format "
            "version"
        )
    if version > FORMAT_VERSION:
        raise ResultFileError(
            f"cannot read {source!r}: it was written in rdppl's file format "
            f"{int(version)}, newer than this version of rdppl reads "
            f"({FORMAT_VERSION}); upgrade rdppl"
        )
    datasets = {}
    name = layout = None
    for relative, node in tree.subtree_with_keys:
        group = "/" if relative == "." else f"/{relative}"
        dataset = node.to_dataset(inherit=False)
        for variable_name, variable in dataset.variables.items():
            variable.attrs = _decode_attrs(
                variable.attrs, _where(group, variable_name), source
            )
        attrs = _decode_attrs(dataset.attrs, _where(group, None), source)
        if group == "/":
            attrs.pop(FORMAT_ATTR)
            name = attrs.pop(NAME_ATTR, None)
            layout = attrs.pop(LAYOUT_ATTR, None)
        dataset.attrs = attrs
        datasets[group] = dataset
    return xr.DataTree.from_dict(_in_order(datasets, layout), name=name)


def _in_order(datasets: dict[str, xr.Dataset], layout: Any) -> dict[str, xr.Dataset]:
    """Groups and variables in the order they were written (where it is known)."""
    try:
        order = json.loads(layout) if isinstance(layout, str) else {}
    except ValueError:
        order = {}
    if not isinstance(order, dict):
        order = {}
    ordered = {group: datasets[group] for group in order if group in datasets}
    ordered.update(datasets)
    for group, dataset in ordered.items():
        names = order.get(group)
        if isinstance(names, list) and sorted(map(str, names)) == sorted(
            map(str, dataset.variables)
        ):
            ordered[group] = dataset[names]
    return ordered


# --- the filesystem ------------------------------------------------------------------


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


def _mode(target: str, default: int) -> int:
    """Permissions for a new result: the replaced one's, else the umask's."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return default & ~_umask()


def _fspath(path: Any) -> str:
    """``os.fspath(path)``, with an error that names the ``path`` argument."""
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"path must be a str or os.PathLike naming a file, got "
            f"{type(path).__name__} {path!r:.80}"
        )
    return os.fspath(path)


def _target(path: str | os.PathLike) -> tuple[str, str, str]:
    """The absolute target (through a symbolic link), its directory and name."""
    target = os.path.abspath(_fspath(path))
    if os.path.islink(target):
        target = os.path.realpath(target)
    directory, name = os.path.split(target)
    if not name:
        raise ValueError(f"{os.fspath(path)!r} names no file")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT, "no such directory to write the result in", directory
        )
    return target, directory, name


def _fsync(path: str, *, directory: bool = False) -> None:
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


def _fsync_tree(root: str) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(directory, name))
        _fsync(directory, directory=True)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: str, second: str) -> bool:
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


def _swap_into_place(new: str, target: str, directory: str, name: str) -> str | None:
    """Put ``new`` at ``target``; return what to delete afterwards (the old store).

    Either ``target`` ends up holding ``new`` or, on an error, what it held before.
    """
    if not os.path.lexists(target):
        os.rename(new, target)
        return None
    if _exchange(new, target):
        return new  # now holds the old store
    # rename the old store aside, the new one into place, then delete the old
    holder = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".old")
    aside = os.path.join(holder, name)
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        os.rmdir(holder)
        raise
    return holder


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


def _reader_error(source: str, kind: str, error: BaseException) -> ResultFileError:
    return ResultFileError(
        f"cannot read {source!r}: it is unreadable, corrupt or truncated, or not a "
        f"{kind} ({type(error).__name__}: {error})"
    )


# --- public functions ----------------------------------------------------------------


def to_netcdf(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a netCDF-4 file, atomically.

    Every attribute and variable is checked and encoded first (see the module notes:
    values netCDF cannot hold become JSON strings that :func:`from_netcdf` decodes
    back exactly). The tree is then written to a temporary file beside ``path``,
    flushed to disk and moved onto ``path`` in one step, so ``path`` holds either its
    previous content or the complete new tree, never a partial file, even if the
    process is killed. The tree's name and rdppl's format marker are stored as root
    attributes. ``tree`` is not modified.

    Parameters
    ----------
    tree
        The tree to write (any ``xarray.DataTree``; rdppl's results are ones).
    path
        The file to create or replace. A symbolic link is followed and its target
        replaced. The suffix is not interpreted: use :func:`to_zarr` for Zarr.

    Raises
    ------
    TypeError
        If ``tree`` is not a DataTree, or an attribute value or a variable cannot be
        stored (object dtype); the message names the group, variable and attribute.
    ValueError
        If an attribute uses a reserved name (``rdppl_format_version``,
        ``rdppl_tree_name``, ``rdppl_attr_types``, ``rdppl_layout``, or one HDF5
        reserves).
    FileNotFoundError
        If the directory of ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.

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
    target, _, _ = _target(path)
    encoded = _encode_tree(tree, "netcdf")
    if os.path.isdir(target):
        raise IsADirectoryError(
            errno.EISDIR, "cannot replace a directory with a netCDF file", target
        )
    replace_file(
        target, lambda temporary: encoded.to_netcdf(temporary, engine="h5netcdf")
    )


def replace_file(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Create or replace the file ``path`` atomically.

    ``write(temporary)`` writes the new content to a temporary file beside ``path``,
    which is then flushed to disk and renamed onto ``path`` (keeping the replaced
    file's permissions). ``path`` holds either its previous content or the complete
    new one, even if the process is killed; on an error the temporary file is
    removed and the error raised.
    """
    target, directory, name = _target(path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "cannot replace a directory", target)
    mode = _mode(target, 0o666)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(temporary)
        with contextlib.suppress(OSError):
            os.chmod(temporary, mode)
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync(directory, directory=True)


def from_netcdf(path: str | os.PathLike, *, strict: bool = True) -> xr.DataTree:
    """Read a result tree written by :func:`to_netcdf`, into memory.

    The file is closed before the tree is returned, so the same path can be written
    again at once. Attributes come back with the values and types they were written
    with, and the tree with its name.

    Parameters
    ----------
    path
        A netCDF-4 file.
    strict
        If True (default), refuse a valid netCDF file that rdppl did not write (no
        ``rdppl_format_version`` root attribute; results written by rdppl before it
        set the marker, which carry ``rdppl_version``, are accepted). If False, such
        a file is returned as xarray reads it.

    Returns
    -------
    xarray.DataTree
        The tree, loaded into memory.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory (a Zarr store: read it with :func:`from_zarr`).
    ResultFileError
        A :class:`ValueError` naming the file: it is not netCDF-4/HDF5, is corrupt
        or truncated (the reader's error is chained), is a netCDF file rdppl did not
        write (with ``strict=True``), or is in a newer rdppl file format.

    See Also
    --------
    to_netcdf : write a tree.
    from_zarr : the same for a Zarr store.
    """
    source = _fspath(path)
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
    try:
        with xr.open_datatree(source, engine="h5netcdf") as opened:
            tree = opened.load()
    except MemoryError:
        raise
    except Exception as error:
        raise _reader_error(source, "netCDF-4/HDF5 file", error) from error
    return _decode_tree(tree, source, strict=strict)


def to_zarr(tree: xr.DataTree, path: str | os.PathLike) -> None:
    """Write a result tree to a Zarr store (a directory), atomically.

    The same checks and attribute encoding as :func:`to_netcdf`. The store (Zarr
    format 2, consolidated metadata) is written into a temporary directory beside
    ``path``, flushed to disk, and then swapped with the existing store in one atomic
    step where the system supports it (Linux), or else the old store is renamed
    aside, the new one renamed into place and the old one deleted. A failure leaves
    the old store in place; a process killed during the rename-aside fallback leaves
    the old store in a ``.NAME.<random>.old`` directory beside ``path``, which
    :func:`from_zarr` points to.

    Parameters
    ----------
    tree
        The tree to write. It is not modified.
    path
        The store to create or replace. An existing path must be a Zarr store: any
        other file or directory is refused rather than deleted.

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
        If ``path`` exists and is not a Zarr store.
    FileNotFoundError
        If the directory of ``path`` does not exist.

    See Also
    --------
    from_zarr : read the store back.
    to_netcdf : the same for a netCDF-4 file.
    """
    _require_zarr()
    encoded = _encode_tree(tree, "zarr")
    target, directory, name = _target(path)
    if os.path.lexists(target) and not _is_zarr_store(target):
        raise FileExistsError(
            errno.EEXIST,
            "refusing to replace something that is not a Zarr store",
            target,
        )
    mode = _mode(target, 0o777)
    temporary = tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        encoded.to_zarr(temporary, mode="w", consolidated=True, zarr_format=2)
        with contextlib.suppress(OSError):
            os.chmod(temporary, mode)
        _fsync_tree(temporary)
        old = _swap_into_place(temporary, target, directory, name)
    except BaseException:
        _remove(temporary)
        raise
    _fsync(directory, directory=True)
    if old is not None:
        _remove(old)


def from_zarr(path: str | os.PathLike, *, strict: bool = True) -> xr.DataTree:
    """Read a result tree written by :func:`to_zarr`, into memory.

    Parameters
    ----------
    path
        A Zarr store (directory).
    strict
        If True (default), refuse a Zarr store that rdppl did not write (no
        consolidated metadata or no ``rdppl_format_version`` root attribute). If
        False, such a store is returned as xarray reads it.

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
        (the reader's error is chained), was not written by rdppl (with
        ``strict=True``), or is in a newer rdppl file format.

    See Also
    --------
    to_zarr : write a tree.
    from_netcdf : the same for a netCDF-4 file.
    """
    _require_zarr()
    source = _fspath(path)
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
                raise _reader_error(source, "Zarr store", error) from error
    return _decode_tree(tree, source, strict=strict)
