"""Whole trees to and from their stored form: attributes, layout, name and checksum.

:func:`encode_tree` checks and converts a tree for a backend before anything touches
the filesystem; :func:`decode_tree` undoes it on a tree a file gave back and checks
the content against the stored digest (:mod:`rdppl.results.digest`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from rdppl.results.attrs_codec import (
    DIGEST_ATTR,
    FORMAT_ATTR,
    FORMAT_VERSION,
    LAYOUT_ATTR,
    NAME_ATTR,
    TYPES_ATTR,
    ResultFileError,
    decode_attrs,
    encode_attrs,
    encode_value,
    where,
)
from rdppl.results.digest import ALGORITHM, tree_digest

__all__ = ["decode_tree", "encode_tree", "estimated_size"]

# storage-layout encodings that leave values unchanged; anything else a tree carries
# (dtype, _FillValue, scale_factor, units of times read from another file...) is
# dropped, so that the file gives back exactly the values written
_LOSSLESS_ENCODING = frozenset(
    {
        "zlib",
        "complevel",
        "compression",
        "compression_opts",
        "shuffle",
        "fletcher32",
        "chunksizes",
        "contiguous",
        "compressor",
        "compressors",
        "filters",
        "chunks",
    }
)


# Results written before rdppl's files kept lists of str (format 1) carry the group
# attribute ``sample_dims = "[]"``, a str that arviz-base 1.x would take for dimension
# names: reading such a file drops it (format 2 files keep every attribute as written)
_SAMPLE_DIMS = "sample_dims"


def _finish_attrs(encoded: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    if tags:
        encoded[TYPES_ATTR] = json.dumps(tags)
    return encoded


def _check_variable(variable: xr.Variable, place: str) -> None:
    if variable.dtype == object:
        raise TypeError(
            f"cannot store {place}: its dtype is object, which has no netCDF or Zarr "
            "equivalent; convert it to a numeric or string dtype (for strings: "
            ".astype(str))"
        )


def encode_tree(tree: xr.DataTree, backend: str) -> xr.DataTree:
    """A new tree ready for ``backend`` (``"netcdf"`` or ``"zarr"``), with its digest.

    ``tree`` is not modified. Raises :class:`TypeError` or :class:`ValueError`
    naming the group, variable and attribute that cannot be stored.
    """
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
            place = where(group, name)
            _check_variable(variable, place)
            encoded, tags = encode_attrs(
                dict(variable.attrs), place, backend, variable=True
            )
            variable.attrs = _finish_attrs(encoded, tags)
            variable.encoding = {
                key: value
                for key, value in variable.encoding.items()
                if key in _LOSSLESS_ENCODING
            }
        encoded, tags = encode_attrs(dict(dataset.attrs), where(group, None), backend)
        if group == "/":
            encoded[FORMAT_ATTR] = (
                np.int64(FORMAT_VERSION) if backend == "netcdf" else FORMAT_VERSION
            )
            if tree.name is not None:
                try:
                    encoded[NAME_ATTR], tag = encode_value(tree.name, backend)
                except TypeError as error:
                    raise TypeError(f"cannot store the tree name: {error}") from None
                if tag is not None:
                    tags[NAME_ATTR] = tag
        dataset.attrs = _finish_attrs(encoded, tags)
        datasets[group] = dataset
        layout[group] = list(dataset.variables)
    # Zarr lists groups and variables alphabetically: record their order
    datasets["/"].attrs[LAYOUT_ATTR] = json.dumps(layout)
    datasets["/"].attrs[DIGEST_ATTR] = tree_digest(tree)
    return xr.DataTree.from_dict(datasets)


def estimated_size(tree: xr.DataTree) -> int:
    """About how many bytes an encoded tree takes on disk (an overestimate)."""
    size = 64 * 1024  # superblock, root group, consolidated metadata
    for node in tree.subtree:
        dataset = node.to_dataset(inherit=False)
        size += 8 * 1024 + sum(len(str(value)) for value in dataset.attrs.values())
        for variable in dataset.variables.values():
            size += 8 * 1024 + variable.nbytes  # object header, chunk index
            size += sum(len(str(value)) for value in variable.attrs.values())
    return size


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


def _check_version(tree: xr.DataTree, source: str, *, strict: bool) -> Any:
    """The file's format version; None for a file to give back as xarray read it."""
    version = tree.attrs.get(FORMAT_ATTR)
    if version is None:
        if not strict:
            return None
        if DIGEST_ATTR in tree.attrs or LAYOUT_ATTR in tree.attrs:
            raise ResultFileError(
                f"cannot read {source!r}: it has rdppl's {DIGEST_ATTR!r} or "
                f"{LAYOUT_ATTR!r} but no {FORMAT_ATTR!r} root attribute (damaged?)"
            )
        # files written before rdppl marked them: results carry their rdppl version
        if "rdppl_version" in tree.attrs:
            return None
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
    return int(version)


def _verify(tree: xr.DataTree, digest: Any, version: int, source: str) -> None:
    if digest is None:
        if version >= 2:  # format 2 files always carry one
            raise ResultFileError(
                f"cannot read {source!r}: its {DIGEST_ATTR!r} root attribute is "
                "missing (damaged?); pass strict=False to read it unchecked"
            )
        return  # format 1 files were written without a digest
    if not isinstance(digest, str) or not digest.startswith(f"{ALGORITHM}:"):
        raise ResultFileError(
            f"cannot read {source!r}: its {DIGEST_ATTR!r} is {digest!r:.80}, not a "
            f"{ALGORITHM} digest (damaged?); pass strict=False to read it unchecked"
        )
    try:
        actual = tree_digest(tree)
    except TypeError as error:
        raise ResultFileError(
            f"cannot read {source!r}: it holds values rdppl does not write ({error})"
        ) from error
    if actual != digest:
        raise ResultFileError(
            f"cannot read {source!r}: its content does not match its checksum "
            f"({DIGEST_ATTR}), so the file is damaged; pass strict=False to read "
            "what is left unchecked"
        )


def decode_tree(tree: xr.DataTree, source: str, *, strict: bool) -> xr.DataTree:
    """Undo :func:`encode_tree` on a tree read from ``source`` and check its digest.

    With ``strict=False``, a file rdppl did not write is returned as it is, and the
    digest of an rdppl file is not checked.
    """
    version = _check_version(tree, source, strict=strict)
    if version is None:
        return tree
    datasets = {}
    name = layout = digest = None
    for relative, node in tree.subtree_with_keys:
        group = "/" if relative == "." else f"/{relative}"
        dataset = node.to_dataset(inherit=False)
        for variable_name, variable in dataset.variables.items():
            variable.attrs = decode_attrs(
                variable.attrs, where(group, variable_name), source
            )
        attrs = decode_attrs(dataset.attrs, where(group, None), source)
        if version == 1 and isinstance(attrs.get(_SAMPLE_DIMS), str):
            del attrs[_SAMPLE_DIMS]  # rdppl's '[]', which arviz-base 1.x cannot use
        if group == "/":
            attrs.pop(FORMAT_ATTR)
            name = attrs.pop(NAME_ATTR, None)
            layout = attrs.pop(LAYOUT_ATTR, None)
            digest = attrs.pop(DIGEST_ATTR, None)
        dataset.attrs = attrs
        datasets[group] = dataset
    decoded = xr.DataTree.from_dict(_in_order(datasets, layout), name=name)
    if strict:
        _verify(decoded, digest, version, source)
    return decoded
