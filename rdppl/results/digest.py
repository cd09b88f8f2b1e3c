"""A checksum of a result tree's content, stored in its file and checked on reading.

:func:`tree_digest` hashes (SHA-256) what a reader gives back: the tree's name, its
groups in order, every attribute (name, value and type, as in the attribute encoding),
and every variable's name, dimensions, dtype, shape and values. :func:`rdppl.to_netcdf`
and :func:`rdppl.to_zarr` store the digest of the tree they were given as the root
attribute ``rdppl_digest``; :func:`rdppl.from_netcdf` and :func:`rdppl.from_zarr`
recompute it over the tree they decoded. Any change to a value that reading would give
back (a flipped bit in the data, in an attribute, in a name) changes the digest, so a
damaged file raises :class:`~rdppl.results.files.ResultFileError` instead of reading
back changed numbers; damage that reading does not see (unused bytes, free space) is
not an error.

Values are hashed in a form that does not depend on how a format stores them: numbers
as little-endian bytes (NaN payloads and signed zeros included), strings as their
text, whatever the width of their NumPy dtype.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import xarray as xr

from rdppl.results.attrs_codec import canonical_json

__all__ = ["ALGORITHM", "tree_digest"]

ALGORITHM = "sha256"


def _feed(hasher: Any, label: str, payload: str | bytes) -> None:
    """Add one labelled, length-prefixed record (records never run together)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    hasher.update(f"{label}:{len(payload)}:".encode())
    hasher.update(payload)


def _feed_attrs(hasher: Any, attrs: dict[Any, Any]) -> None:
    _feed(hasher, "attrs", str(len(attrs)))
    for key, value in attrs.items():
        _feed(hasher, "key", str(key))
        _feed(hasher, "value", canonical_json(value))


def _feed_values(hasher: Any, values: np.ndarray) -> None:
    values = np.asarray(values)
    shape = json.dumps(list(values.shape))
    if values.dtype.kind in "US":
        # a string's stored width is the format's choice; its text is the value
        items = values.ravel().tolist()
        if values.dtype.kind == "S":
            items = [item.hex() for item in items]
        _feed(hasher, "strings", f"{values.dtype.kind}{shape}")
        _feed(hasher, "text", json.dumps(items))
        return
    little = values.dtype.newbyteorder("<")
    _feed(hasher, "array", f"{little.str}{shape}")
    flat = np.ascontiguousarray(values, dtype=little).reshape(-1)
    hasher.update(f"bytes:{flat.nbytes}:".encode())
    hasher.update(memoryview(flat.view(np.uint8)))  # no copy of the data


def tree_digest(tree: xr.DataTree) -> str:
    """The digest of everything reading ``tree`` back gives, as ``"sha256:<hex>"``.

    Parameters
    ----------
    tree
        A tree whose attributes are storable (see :mod:`rdppl.results.files`); the
        reserved ``rdppl_*`` attributes of a file are removed before hashing.

    Returns
    -------
    str
        The algorithm's name, a colon and the hexadecimal digest.

    Raises
    ------
    TypeError
        If an attribute holds a value the attribute encoding cannot store.
    """
    hasher = hashlib.new(ALGORITHM)
    _feed(hasher, "name", canonical_json(tree.name))
    for relative, node in tree.subtree_with_keys:
        _feed(hasher, "group", relative)
        dataset = node.to_dataset(inherit=False)
        _feed_attrs(hasher, dataset.attrs)
        for name, variable in dataset.variables.items():
            _feed(hasher, "variable", str(name))
            _feed(hasher, "dims", json.dumps([str(dim) for dim in variable.dims]))
            _feed_attrs(hasher, variable.attrs)
            _feed_values(hasher, variable.values)
    return f"{ALGORITHM}:{hasher.hexdigest()}"
