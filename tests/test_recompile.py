"""New closures of one program recompile; rdppl says so and points to ``model_args``.

Issue 18: a model built anew by a closure each call recompiled (seconds) and grew
memory; the pattern that reuses compilation was not documented where users meet it.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl
from rdppl.program import recompile
from rdppl.program.recompile import (
    RECOMPILATION_WARNING_THRESHOLD,
    RecompilationWarning,
)

DATA = np.zeros((2, 3))


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(recompile, "_SEEN", {})
    monkeypatch.setattr(recompile, "_WARNED", set())


def closure_model(weights):
    @rdppl.model(observed="x")
    def program(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(weights @ z, 1.0).to_event(1), obs=x)

    return program


@rdppl.model(observed="x")
def argument_model(weights, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("x", dist.Normal(weights @ z, 1.0).to_event(1), obs=x)


def weights(seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(3, 2)), jnp.float32)


def estimate(model, data=DATA, **kwargs):
    return rdppl.log_likelihood(
        model,
        data,
        rng_key=jax.random.key(0),
        method="importance",
        num_samples=2,
        **kwargs,
    )


def test_the_third_new_closure_warns_once_pointing_to_model_args():
    for seed in range(RECOMPILATION_WARNING_THRESHOLD - 1):
        estimate(closure_model(weights(seed)))
    with pytest.warns(RecompilationWarning, match="model_args=") as caught:
        estimate(closure_model(weights(10)))
    assert len(caught) == 1
    assert "compiled 3 times" in str(caught[0].message)
    assert caught[0].filename == __file__  # the user's line, not rdppl's
    assert issubclass(RecompilationWarning, rdppl.RDWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate(closure_model(weights(11)))  # once per program


def test_one_closure_reused_never_warns():
    model = closure_model(weights(0))
    for _ in range(RECOMPILATION_WARNING_THRESHOLD + 1):
        estimate(model)
        estimate(rdppl.model(model.fn, observed="x"))  # a new wrapper, same function


def test_rebuilding_a_closure_over_equal_values_counts_once():
    # the suite's own pattern (tests/conftest.py's make_linear_gaussian): the same
    # model rebuilt from the same seed; only new values call for model_args
    for _ in range(RECOMPILATION_WARNING_THRESHOLD + 1):
        estimate(closure_model(weights(0)))


def test_closures_over_large_arrays_are_told_apart():
    big = np.zeros((3, 2**22), np.float32)  # 48 MiB: fingerprinted from a sample
    prints = {recompile._fingerprint(closure_model(big + seed).fn) for seed in range(3)}
    assert len(prints) == 3
    same = {recompile._fingerprint(closure_model(big.copy()).fn) for _ in range(3)}
    assert len(same) == 1


def test_model_args_never_warn():
    for seed in range(RECOMPILATION_WARNING_THRESHOLD + 1):
        estimate(argument_model, model_args=(weights(seed),))


def test_decoder_model_with_new_weights_never_warns():
    for seed in range(RECOMPILATION_WARNING_THRESHOLD + 1):
        decoder = eqx.nn.MLP(2, 3, 4, 1, key=jax.random.key(seed))
        program = rdppl.decoder_model(decoder, latent_dim=2, likelihood="gaussian")
        estimate(program)


def test_closures_of_different_shapes_are_different_programs():
    for size in range(1, RECOMPILATION_WARNING_THRESHOLD + 2):
        weights = jnp.ones((size, 2))
        estimate(closure_model(weights), data=np.zeros((2, size)))


def test_new_closures_passed_in_model_args_count():
    @rdppl.model(observed="x")
    def program(decode, x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(decode(z), 1.0).to_event(1), obs=x)

    def decoder(scale):
        return lambda z: scale * jnp.concatenate([z, z[:1]])

    with pytest.warns(RecompilationWarning, match=r"decoder\.<locals>\.<lambda>'"):
        for scale in range(RECOMPILATION_WARNING_THRESHOLD):
            estimate(program, model_args=(decoder(float(scale)),))


ARGUMENTS = {
    "rng_key": jax.random.key(0),
    "num_chains": 2,
    "kernel": rdppl.HMC(num_leapfrog=1),
}
ENTRY_POINTS = {
    "rd_curve": lambda model: rdppl.rd_curve(
        model, DATA, schedule=rdppl.linear_schedule(2), **ARGUMENTS
    ),
    "bdmc": lambda model: rdppl.bdmc(
        model,
        DATA,
        betas=[1.0],
        schedule=rdppl.linear_schedule(2),
        num_examples=2,
        **ARGUMENTS,
    ),
    "log_likelihood": lambda model: rdppl.log_likelihood(
        model, DATA, method="ais", num_temperatures=2, **ARGUMENTS
    ),
    "variational_bounds": lambda model: rdppl.variational_bounds(
        model,
        DATA,
        encoder=lambda x: (jnp.zeros(2), jnp.ones(2)),
        rng_key=jax.random.key(0),
        num_samples=2,
    ),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_counts_before_compiling(entry, monkeypatch):
    monkeypatch.setattr(recompile, "RECOMPILATION_WARNING_THRESHOLD", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecompilationWarning)
        with pytest.raises(RecompilationWarning, match="model_args="):
            ENTRY_POINTS[entry](closure_model(weights(0)))


def test_the_guide_and_rd_curve_document_the_pattern():
    assert "model_args" in rdppl.rd_curve.__doc__
    assert "closure" in rdppl.rd_curve.__doc__
    guide = (
        __import__("pathlib").Path(__file__).parents[1] / "docs" / "guide.md"
    ).read_text()
    assert "### Reusing compilation" in guide
