"""Attribute encoding of result files: exact round trips, bounded decoding.

:func:`encode_attrs` turns one attribute set into values netCDF-4 or Zarr store (and
the ``rdppl_attr_types`` tags that say how to restore them); :func:`decode_attrs`
undoes it on what a file gives back. The rules are in ``rdppl.results.files``.

Decoding reads untrusted files, so it never allocates more than
:data:`MAX_DECODED_BYTES` for one attribute (a crafted ``{"__ndarray__": ["<U300000000",
[1], [""]]}`` of a few bytes would otherwise ask for 1.2 GB) and reports every malformed
value as :class:`ResultFileError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

__all__ = [
    "DIGEST_ATTR",
    "FORMAT_ATTR",
    "FORMAT_VERSION",
    "LAYOUT_ATTR",
    "MAX_DECODED_BYTES",
    "NAME_ATTR",
    "ResultFileError",
    "TYPES_ATTR",
    "canonical_json",
    "decode_attrs",
    "encode_attrs",
    "encode_value",
    "where",
]

# 2: the root carries ``rdppl_digest`` (format 1 files, without it, still read)
FORMAT_VERSION = 2
FORMAT_ATTR = "rdppl_format_version"
NAME_ATTR = "rdppl_tree_name"
TYPES_ATTR = "rdppl_attr_types"
LAYOUT_ATTR = "rdppl_layout"
DIGEST_ATTR = "rdppl_digest"
RESERVED = frozenset({FORMAT_ATTR, NAME_ATTR, TYPES_ATTR, LAYOUT_ATTR, DIGEST_ATTR})
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
# variable attributes xarray's CF decoding consumes on reading (they would change the
# values or vanish, so the round trip could not be exact)
_CF_RESERVED = frozenset(
    {
        "_FillValue",
        "missing_value",
        "scale_factor",
        "add_offset",
        "_Unsigned",
        "_Encoding",
        "coordinates",
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
# the most the NumPy values in one decoded attribute may occupy; writing refuses more
MAX_DECODED_BYTES = 64 * 2**20


class ResultFileError(ValueError):
    """A file or store that is not a readable rdppl result.

    Raised by :func:`rdppl.from_netcdf` and :func:`rdppl.from_zarr` for a corrupt,
    truncated or foreign file, or one whose content no longer matches its checksum;
    the message names the file, and the error of the underlying reader, if any, is
    chained as ``__cause__``.
    """


def where(group: str, variable: str | None) -> str:
    """``group '/g'`` or ``variable 'v' in group '/g'``, for messages."""
    if variable is None:
        return f"group {group!r}"
    return f"variable {variable!r} in group {group!r}"


# --- JSON structures -----------------------------------------------------------------


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


def canonical_json(value: Any) -> str:
    """One JSON text per value: different types or values give different texts."""
    return json.dumps(_to_json(value, "the value"), allow_nan=True)


class _Budget:
    """What decoding one attribute may still allocate, in bytes."""

    def __init__(self) -> None:
        self.left = MAX_DECODED_BYTES

    def dtype(self, name: Any, count: int) -> np.dtype:
        if not isinstance(name, str):
            raise ValueError(f"the dtype {name!r:.40} is not a string")
        dtype = np.dtype(name)
        if dtype.kind not in _JSON_KINDS:
            raise ValueError(f"the dtype {name!r:.40} is not storable")
        size = dtype.itemsize * count
        if size > self.left:
            raise ValueError(
                f"it would allocate {size} bytes for a {name!r:.40} array of {count} "
                f"items, more than the {MAX_DECODED_BYTES} an attribute may hold"
            )
        self.left -= size
        return dtype


def _from_json(value: Any, budget: _Budget) -> Any:
    if isinstance(value, list):
        return [_from_json(item, budget) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "__tuple__" and isinstance(inner, list):
                return tuple(_from_json(item, budget) for item in inner)
            if tag == "__dict__" and isinstance(inner, dict):
                return {key: _from_json(item, budget) for key, item in inner.items()}
            if tag == "__ndarray__":
                name, shape, items = inner
                if not (
                    isinstance(shape, list)
                    and all(type(n) is int and n >= 0 for n in shape)
                    and isinstance(items, list)
                    and math.prod(shape) == len(items)
                ):
                    raise ValueError("an __ndarray__ has a malformed shape or items")
                dtype = budget.dtype(name, len(items))
                return np.array(items, dtype=dtype).reshape(shape)
            if tag == "__numpy__":
                name, item = inner
                return np.array(item, dtype=budget.dtype(name, 1))[()]
            if tag in _TAGS:
                raise ValueError(f"a {tag} holds a {type(inner).__name__}")
        return {key: _from_json(item, budget) for key, item in value.items()}
    return value


# --- encoding ------------------------------------------------------------------------


def _plain_string(value: str) -> bool:
    """Whether HDF5 stores ``value`` as a UTF-8 string and gives it back unchanged."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def _string_list(value: list[Any], backend: str) -> bool:
    """Whether ``value`` is a list that both formats hold natively: non-empty str."""
    return bool(value) and all(
        type(item) is str and item and (backend == "zarr" or _plain_string(item))
        for item in value
    )


def _check_size(value: Any) -> None:
    """Refuse what reading would refuse: NumPy values over the decoding budget."""
    total = _size(value)
    if total > MAX_DECODED_BYTES:
        raise TypeError(
            f"the value holds {total} bytes of NumPy data, more than the "
            f"{MAX_DECODED_BYTES} an attribute may hold (store it as a variable)"
        )


def _size(value: Any) -> int:
    if isinstance(value, np.ndarray | np.generic):
        return value.nbytes
    if isinstance(value, list | tuple):
        return sum(_size(item) for item in value)
    if isinstance(value, dict):
        return sum(_size(item) for item in value.values())
    return 0


def encode_value(value: Any, backend: str) -> tuple[Any, str | None]:
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
    if kind is list and _string_list(value, backend):
        return list(value), "str_list"
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
    _check_size(value)
    structure = _to_json(value, "the value")
    return json.dumps(structure, allow_nan=True), "json"


def encode_attrs(
    attrs: dict[Any, Any], place: str, backend: str, *, variable: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """Stored attributes of ``place`` and their tags; refuse what cannot be stored."""
    encoded: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for key, value in attrs.items():
        if type(key) is not str or not key:
            raise TypeError(
                f"cannot store the attribute {key!r} of {place}: attribute names must "
                "be non-empty str"
            )
        if key in RESERVED:
            raise ValueError(
                f"cannot store the attribute {key!r} of {place}: the name is reserved "
                "for rdppl's file format"
            )
        if backend == "netcdf" and key in _HDF5_RESERVED:
            raise ValueError(
                f"cannot store the attribute {key!r} of {place}: the name is reserved "
                "by HDF5/netCDF"
            )
        if variable and key in _CF_RESERVED:
            raise ValueError(
                f"cannot store the attribute {key!r} of {place}: reading would apply "
                "it as a CF encoding (changing the values), so the name is reserved"
            )
        try:
            encoded[key], tag = encode_value(value, backend)
        except TypeError as error:
            raise TypeError(
                f"cannot store the attribute {key!r} of {place}: {error} (storable: "
                f"{_SUPPORTED}); convert it first, for example with str()"
            ) from None
        if tag is not None:
            tags[key] = tag
    return encoded, tags


# --- decoding ------------------------------------------------------------------------


def _decode_value(value: Any, tag: Any) -> Any:
    if tag == "json" and isinstance(value, str):
        return _from_json(json.loads(value), _Budget())
    if tag == "int" and isinstance(value, int | np.integer):
        return int(value)
    if tag == "float" and isinstance(value, float | np.floating):
        return float(value)
    if tag == "array" and isinstance(value, np.ndarray | np.number):
        return np.array(value, ndmin=1)
    if tag == "str_list":
        # netCDF readers give back a one-item list of strings as the string itself
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list | tuple | np.ndarray) and all(
            isinstance(item, str) for item in items
        ):
            return [str(item) for item in items]
    raise ValueError(f"cannot decode {type(value).__name__} value as {tag!r}")


# what a malformed or crafted attribute may raise while it is decoded
_DECODING_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
)


def decode_attrs(attrs: Any, place: str, source: str) -> dict[str, Any]:
    """Undo :func:`encode_attrs`; raise :class:`ResultFileError` naming ``source``."""
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
            except _DECODING_ERRORS as error:
                raise ValueError(f"attribute {key!r}: {error}") from error
    except _DECODING_ERRORS as error:
        raise ResultFileError(
            f"cannot read {source!r}: the attributes of {place} are corrupt ({error})"
        ) from error
    return decoded
