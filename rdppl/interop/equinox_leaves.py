"""Equinox modules from files: :func:`load_equinox` with errors that name the leaf.

:func:`load_equinox` reads a module saved with ``eqx.tree_serialise_leaves`` into a
skeleton of the same architecture, as ``eqx.tree_deserialise_leaves`` does, and when
the skeleton is wrong says which file and which leaf do not match (too few leaves in
the file, a shape or dtype that differs, or data left after the last leaf).
"""

from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax
import numpy as np

__all__ = ["load_equinox"]


class _LeafError(ValueError):
    """A leaf of an Equinox file does not fit the skeleton (raised inside tree_map)."""


def load_equinox(path: str | os.PathLike, like: Any) -> Any:
    """Load a module saved with ``eqx.tree_serialise_leaves`` into a skeleton.

    Does what ``eqx.tree_deserialise_leaves(path, like)`` does, and checks that the
    file fits the skeleton ``like`` (the same architecture built fresh, or with
    ``eqx.filter_eval_shape``): every error names the file and the leaf, and a file
    holding more leaves than the skeleton is refused (Equinox would read the first
    ones and ignore the rest).

    Parameters
    ----------
    path
        The file written by ``eqx.tree_serialise_leaves(path, module)``.
    like
        A pytree of the same structure, with leaves of the same shapes and dtypes.

    Returns
    -------
    pytree
        ``like`` with its array leaves read from the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file ends before the skeleton's last leaf, a leaf's shape or dtype
        differs, or the file has data left after the skeleton's last leaf.

    Examples
    --------
    >>> import equinox as eqx, jax, os, tempfile
    >>> trained = eqx.nn.MLP(2, 5, 8, 1, key=jax.random.key(0))
    >>> path = os.path.join(tempfile.mkdtemp(), "decoder.eqx")
    >>> eqx.tree_serialise_leaves(path, trained)
    >>> skeleton = eqx.nn.MLP(2, 5, 8, 1, key=jax.random.key(1))
    >>> decoder = load_equinox(path, skeleton)
    >>> bool((decoder.layers[0].weight == trained.layers[0].weight).all())
    True
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no Equinox file at {path!r}")
    leaves = jax.tree_util.tree_flatten_with_path(like)[0]
    names = [jax.tree_util.keystr(leaf_path) or "<root>" for leaf_path, _ in leaves]
    position = iter(range(len(names)))

    def read_leaf(file, leaf):
        # Equinox reads the skeleton's leaves in flattening order: name each one
        name = names[next(position)]
        start = file.tell()
        try:
            value = eqx.default_deserialise_filter_spec(file, leaf)
        except Exception as error:
            file.seek(0, os.SEEK_END)
            ended = file.tell() <= start
            reason = "the file ends there" if ended else str(error)
            raise _LeafError(
                f"{path!r}: could not read leaf {name} of the skeleton ({reason}); "
                "the saved module has fewer leaves: build `like` with the "
                "architecture that was saved"
            ) from error
        if not hasattr(leaf, "shape"):
            return value
        expected = (tuple(leaf.shape), np.dtype(leaf.dtype))
        got = (tuple(value.shape), np.dtype(value.dtype))
        if got != expected:
            raise _LeafError(
                f"{path!r}: leaf {name} has shape {got[0]} and dtype {got[1]} in the "
                f"file but shape {expected[0]} and dtype {expected[1]} in the "
                "skeleton: build `like` with the architecture that was saved"
            )
        return value

    with open(path, "rb") as file:
        try:
            loaded = eqx.tree_deserialise_leaves(file, like, filter_spec=read_leaf)
        except Exception as error:
            # jax.tree_util wraps the error raised in read_leaf: raise that one
            cause = error
            while cause is not None and not isinstance(cause, _LeafError):
                cause = cause.__cause__
            if cause is None:
                raise
            raise ValueError(str(cause)) from cause.__cause__
        left = len(file.read())
    if left:
        raise ValueError(
            f"{path!r}: {left} bytes are left after the skeleton's last leaf "
            f"({names[-1] if names else 'none'}); the saved module has more leaves: "
            "build `like` with the architecture that was saved"
        )
    return loaded
