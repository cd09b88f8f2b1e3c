"""The modules the trainers build, and how they are rebuilt from a result tree.

Every trainer of :mod:`rdppl.training` builds, per rate weight, an encoder (a
:class:`~rdppl.variational.GaussianEncoder` or an :class:`~rdppl.echo.EchoChannel` whose
networks are MLPs) and, except :func:`~rdppl.training.train_amortized_encoder`, an MLP
decoder. An :class:`Architecture` holds the constructor settings; the trained arrays are
stored in the ``trained_parameters`` group of the result tree
(:func:`rdppl.results.trained_parameters_group`), and :func:`trained_encoders` /
:func:`trained_decoders` combine them with a freshly built template
(``eqx.partition`` / ``eqx.combine``). None of this needs Optax.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from rdppl import results
from rdppl.encoders.echo import EchoChannel
from rdppl.variational import GaussianEncoder

__all__ = [
    "TRAINERS",
    "Architecture",
    "parameter_leaves",
    "trained_decoders",
    "trained_encoders",
]

TRAINERS = ("beta_vae", "echo_autoencoder", "amortized_encoder")
_INTEGER_SETTINGS = ("features", "latent_dim", "width_size", "depth")


class Architecture(NamedTuple):
    """Constructor settings of one trainer's encoder and decoder.

    Attributes
    ----------
    trainer
        ``"beta_vae"``, ``"echo_autoencoder"`` or ``"amortized_encoder"``.
    features
        Size of one example.
    latent_dim
        Dimension of ``z``.
    width_size, depth
        Hidden width and number of hidden layers of every MLP.
    num_terms, clip
        Settings of the Echo channel (``None`` for the Gaussian encoders); ``clip`` is
        the resolved clipping factor, so a rebuild does not depend on the float type.
    """

    trainer: str
    features: int
    latent_dim: int
    width_size: int
    depth: int
    num_terms: int | None = None
    clip: float | None = None

    @property
    def trains_decoder(self) -> bool:
        """Whether the trainer trains a decoder (all but the amortised encoder)."""
        return self.trainer != "amortized_encoder"

    def build(self, key: jax.Array) -> tuple[Any, Any]:
        """Initialise ``(encoder, decoder)``; ``decoder`` is ``None`` if not trained.

        Parameters
        ----------
        key
            PRNG key for the initial weights.

        Returns
        -------
        encoder, decoder
            Equinox modules.
        """
        if not self.trains_decoder:
            k1, k2 = jax.random.split(key)
            return self._gaussian_encoder(k1, k2), None
        k1, k2, k3 = jax.random.split(key, 3)
        if self.trainer == "beta_vae":
            encoder = self._gaussian_encoder(k1, k2)
        else:
            encoder = EchoChannel(
                self._mlp(self.features, self.latent_dim, k1),
                self._mlp(self.features, self.latent_dim, k2),
                latent_dim=self.latent_dim,
                num_terms=self.num_terms,
                clip=self.clip,
            )
        return encoder, self._mlp(self.latent_dim, self.features, k3)

    def _mlp(self, in_size: int, out_size: int, key: jax.Array) -> eqx.nn.MLP:
        return eqx.nn.MLP(in_size, out_size, self.width_size, self.depth, key=key)

    def _gaussian_encoder(self, k1: jax.Array, k2: jax.Array) -> GaussianEncoder:
        return GaussianEncoder(
            self._mlp(self.features, self.latent_dim, k1),
            self._mlp(self.features, self.latent_dim, k2),
            latent_dim=self.latent_dim,
        )

    def to_attrs(self) -> dict[str, Any]:
        """The settings as netCDF-safe attributes (the Echo ones only for Echo)."""
        return {k: v for k, v in self._asdict().items() if v is not None}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Architecture:
        """Read the settings back from attributes (e.g. after a netCDF round trip)."""
        missing = [k for k in ("trainer", *_INTEGER_SETTINGS) if k not in attrs]
        if missing or attrs["trainer"] not in TRAINERS:
            raise ValueError(
                f"the {results.TRAINED_PARAMETERS_GROUP!r} group does not describe a "
                f"trainer of {TRAINERS} (missing {missing}, trainer "
                f"{attrs.get('trainer')!r})"
            )
        settings = {name: int(attrs[name]) for name in _INTEGER_SETTINGS}
        if attrs["trainer"] == "echo_autoencoder":
            settings["num_terms"] = int(attrs["num_terms"])
            settings["clip"] = float(attrs["clip"])
        return cls(trainer=str(attrs["trainer"]), **settings)


def parameter_leaves(modules: Any) -> list[np.ndarray]:
    """The array leaves of a (stack of) module(s), in pytree order, as NumPy arrays."""
    return [
        np.asarray(leaf) for leaf in jax.tree.leaves(eqx.filter(modules, eqx.is_array))
    ]


def _rebuild(tree: xr.DataTree, part: str) -> tuple[Any, ...]:
    group = results.trained_parameters(tree)
    architecture = Architecture.from_attrs(group.attrs)
    encoder, decoder = architecture.build(jax.random.key(0))
    template = encoder if part == "encoder" else decoder
    params, static = eqx.partition(template, eqx.is_array)
    leaves, treedef = jax.tree.flatten(params)
    stored = results.stored_parameters(group, part)
    shapes = [array.shape[1:] for array in stored]
    if shapes != [leaf.shape for leaf in leaves]:
        raise ValueError(
            f"the stored {part} arrays have shapes {shapes}, but the "
            f"{architecture.trainer} architecture {architecture.to_attrs()} has "
            f"{[leaf.shape for leaf in leaves]}"
        )
    num = group.sizes[results.RATE_WEIGHT_DIM]
    return tuple(
        eqx.combine(
            jax.tree.unflatten(treedef, [jnp.asarray(array[i]) for array in stored]),
            static,
        )
        for i in range(num)
    )


def trained_encoders(tree: xr.DataTree) -> tuple[Any, ...]:
    """The trained encoders of a trainer's result, one per rate weight.

    Parameters
    ----------
    tree
        A result of :func:`rdppl.training.train_beta_vae`,
        :func:`~rdppl.training.train_echo_autoencoder` or
        :func:`~rdppl.training.train_amortized_encoder`, possibly read back with
        :func:`rdppl.from_netcdf`.

    Returns
    -------
    tuple
        :class:`~rdppl.variational.GaussianEncoder` or
        :class:`~rdppl.echo.EchoChannel` modules, in the order of the ``rate_weight``
        coordinate.

    Raises
    ------
    ValueError
        If the tree has no ``trained_parameters`` group, or its arrays do not fit the
        architecture its attributes describe.
    """
    return _rebuild(tree, "encoder")


def trained_decoders(tree: xr.DataTree) -> tuple[Any, ...]:
    """The trained decoders of a trainer's result, one per rate weight.

    Parameters
    ----------
    tree
        A result of :func:`rdppl.training.train_beta_vae` or
        :func:`~rdppl.training.train_echo_autoencoder`, possibly read back with
        :func:`rdppl.from_netcdf`.

    Returns
    -------
    tuple
        ``equinox.nn.MLP`` decoders (latent to logits or mean), in the order of the
        ``rate_weight`` coordinate.

    Raises
    ------
    ValueError
        If the result comes from :func:`~rdppl.training.train_amortized_encoder`, whose
        decoder is the caller's frozen callable and is not stored, or as for
        :func:`trained_encoders`.
    """
    group = results.trained_parameters(tree)
    if not Architecture.from_attrs(group.attrs).trains_decoder:
        raise ValueError(
            "this result comes from train_amortized_encoder, which trains encoders "
            "against the caller's frozen decoder; that decoder is not stored in the "
            "tree, use the decoder that was passed to train_amortized_encoder"
        )
    return _rebuild(tree, "decoder")
