"""WGAN-GP generators for the gallery examples (equinox + optax).

A generator is an MLP ``z -> sigmoid(mlp(z))`` with pixels in [0, 1]; the critic is an
MLP ``x -> score``. Training follows Gulrajani et al. (2017): ``critic_steps`` critic
updates per generator update, a gradient penalty ``penalty * (||grad critic(x~)|| -
1)^2`` on random interpolates ``x~``, Adam with ``b1=0.5, b2=0.9``. The whole training
loop is one compiled ``lax.scan``; training can be continued from a :class:`GANState`
(to evaluate the generator along the way), and is deterministic given the keys.

A GAN has no likelihood. To evaluate it, :func:`generator_program` puts a Gaussian
observation model of fixed standard deviation around the generator's output (Wu et
al., 2017; Huang et al., 2020), so ``rdppl.rd_curve`` with
``distortion="squared_error"`` gives its rate-distortion curve and
``rdppl.log_likelihood`` its ``log p(x)``.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rdppl.decoders import decoder_model


class Generator(eqx.Module):
    """``z -> sigmoid(mlp(z))``: an image with pixels in [0, 1]."""

    mlp: eqx.nn.MLP

    def __init__(self, latent_dim: int, features: int, width: int, depth: int, *, key):
        self.mlp = eqx.nn.MLP(latent_dim, features, width, depth, key=key)

    @property
    def latent_dim(self) -> int:
        return self.mlp.in_size

    def __call__(self, z: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(self.mlp(z))


class Critic(eqx.Module):
    """``x -> score`` (a real number; no sigmoid, as the Wasserstein critic needs)."""

    mlp: eqx.nn.MLP

    def __init__(self, features: int, width: int, depth: int, *, key):
        self.mlp = eqx.nn.MLP(
            features, "scalar", width, depth, activation=jax.nn.leaky_relu, key=key
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.mlp(x)


class GANState(NamedTuple):
    """Everything training needs to continue: networks, optimiser states, step."""

    generator: Generator
    critic: Critic
    generator_opt: optax.OptState
    critic_opt: optax.OptState
    step: int


def _optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.adam(learning_rate, b1=0.5, b2=0.9)


def init_gan(
    rng_key: jax.Array,
    *,
    latent_dim: int,
    features: int = 64,
    width: int = 128,
    generator_depth: int = 2,
    critic_depth: int = 2,
    learning_rate: float = 1e-4,
) -> GANState:
    """Fresh generator and critic with their Adam states."""
    k_gen, k_crit = jax.random.split(rng_key)
    generator = Generator(latent_dim, features, width, generator_depth, key=k_gen)
    critic = Critic(features, width, critic_depth, key=k_crit)
    optimizer = _optimizer(learning_rate)
    return GANState(
        generator,
        critic,
        optimizer.init(eqx.filter(generator, eqx.is_inexact_array)),
        optimizer.init(eqx.filter(critic, eqx.is_inexact_array)),
        0,
    )


def _critic_loss(critic, generator, real, z, epsilon, penalty):
    fake = jax.vmap(generator)(z)
    mixed = epsilon[:, None] * real + (1.0 - epsilon[:, None]) * fake
    gradients = jax.vmap(jax.grad(critic))(mixed)
    norms = jnp.sqrt(jnp.sum(gradients**2, axis=-1) + 1e-12)
    wasserstein = jnp.mean(jax.vmap(critic)(fake)) - jnp.mean(jax.vmap(critic)(real))
    return wasserstein + penalty * jnp.mean((norms - 1.0) ** 2)


def _generator_loss(generator, critic, z):
    return -jnp.mean(jax.vmap(critic)(jax.vmap(generator)(z)))


@eqx.filter_jit
def _train(state, data, rng_key, num_steps, batch_size, critic_steps, penalty, rate):
    optimizer = _optimizer(rate)
    latent_dim = state.generator.latent_dim
    gen_params, gen_static = eqx.partition(state.generator, eqx.is_inexact_array)
    crit_params, crit_static = eqx.partition(state.critic, eqx.is_inexact_array)

    def critic_update(carry, key):
        crit_params, crit_opt, gen_params = carry
        k_batch, k_z, k_eps = jax.random.split(key, 3)
        real = data[jax.random.randint(k_batch, (batch_size,), 0, data.shape[0])]
        z = jax.random.normal(k_z, (batch_size, latent_dim))
        epsilon = jax.random.uniform(k_eps, (batch_size,))

        def loss(params):
            critic = eqx.combine(params, crit_static)
            generator = eqx.combine(gen_params, gen_static)
            return _critic_loss(critic, generator, real, z, epsilon, penalty)

        grads = jax.grad(loss)(crit_params)
        updates, crit_opt = optimizer.update(grads, crit_opt, crit_params)
        return (optax.apply_updates(crit_params, updates), crit_opt, gen_params), None

    def step(carry, key):
        gen_params, gen_opt, crit_params, crit_opt = carry
        k_critic, k_z = jax.random.split(key)
        (crit_params, crit_opt, _), _ = jax.lax.scan(
            critic_update,
            (crit_params, crit_opt, gen_params),
            jax.random.split(k_critic, critic_steps),
        )
        z = jax.random.normal(k_z, (batch_size, latent_dim))

        def loss(params):
            generator = eqx.combine(params, gen_static)
            return _generator_loss(generator, eqx.combine(crit_params, crit_static), z)

        grads = jax.grad(loss)(gen_params)
        updates, gen_opt = optimizer.update(grads, gen_opt, gen_params)
        gen_params = optax.apply_updates(gen_params, updates)
        return (gen_params, gen_opt, crit_params, crit_opt), None

    carry = (gen_params, state.generator_opt, crit_params, state.critic_opt)
    carry, _ = jax.lax.scan(step, carry, jax.random.split(rng_key, num_steps))
    gen_params, gen_opt, crit_params, crit_opt = carry
    return (
        eqx.combine(gen_params, gen_static),
        eqx.combine(crit_params, crit_static),
        gen_opt,
        crit_opt,
    )


def train_gan(
    state: GANState,
    data: np.ndarray,
    *,
    rng_key: jax.Array,
    num_steps: int,
    batch_size: int = 64,
    critic_steps: int = 5,
    penalty: float = 10.0,
    learning_rate: float = 1e-4,
) -> GANState:
    """Continue WGAN-GP training for ``num_steps`` generator updates.

    Parameters
    ----------
    state
        From :func:`init_gan` or a previous call (same ``learning_rate``).
    data
        Training images, ``(examples, features)``, pixels in [0, 1].
    rng_key
        Key of this segment of training.
    num_steps
        Generator updates (each after ``critic_steps`` critic updates).
    """
    generator, critic, gen_opt, crit_opt = _train(
        state,
        jnp.asarray(data, dtype=jnp.float32),
        rng_key,
        int(num_steps),
        int(batch_size),
        int(critic_steps),
        float(penalty),
        float(learning_rate),
    )
    return GANState(generator, critic, gen_opt, crit_opt, state.step + int(num_steps))


def generator_program(generator: Generator, *, scale: float):
    """The generator as an rdppl model: ``x ~ N(G(z), scale^2 I)``, ``z ~ N(0, I)``.

    Its reconstruction site ``x_hat`` is the generator's output, so it works with
    ``distortion="squared_error"`` as well as ``"nll"``.
    """
    return decoder_model(
        generator, latent_dim=generator.latent_dim, likelihood="gaussian", scale=scale
    )


def samples(generator: Generator, rng_key: jax.Array, num: int) -> np.ndarray:
    """``num`` images from the generator (no observation noise)."""
    z = jax.random.normal(rng_key, (num, generator.latent_dim))
    return np.asarray(jax.vmap(generator)(z))
