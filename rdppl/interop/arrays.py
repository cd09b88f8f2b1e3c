"""Reading named weight arrays: ``.npz`` files, nested mappings, tensors and variables.

The helpers that turn what :func:`~rdppl.interop.pytorch.mlp_from_torch` and
:func:`~rdppl.interop.flax_params.mlp_from_flax` are given (a path, a ``state_dict``,
nested Flax parameters) into a flat dictionary of NumPy-convertible arrays: the path of
an ``.npz`` file is read with :func:`numpy.load`, nested mappings are flattened to key
paths, and ``flax.nnx`` variables and PyTorch tensors are unwrapped to their arrays.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__: list[str] = []


def _as_path(source: Any) -> str | None:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return None


def _read_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weights file at {path!r}")
    if not path.endswith(".npz"):
        raise ValueError(
            f"{path!r}: rdppl reads weights from .npz files (np.savez); load other "
            "formats yourself (torch.load, flax.serialization.msgpack_restore, "
            "pickle) and pass the dictionary"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} is not a readable .npz file: {error}") from error


def _unwrap(value: Any) -> Any:
    # flax.nnx.State leaves are Variables (nnx.Param) holding the array in .value;
    # torch tensors are converted by np.asarray only on the CPU, without grad
    if not hasattr(value, "__array__") and hasattr(value, "value"):
        value = value.value
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return value


def _flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, Any]:
    flat = {}
    for key, value in tree.items():
        path = (*prefix, key)
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path))
        else:
            flat[path] = _unwrap(value)
    return flat
