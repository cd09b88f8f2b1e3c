"""Training sweeps, their result trees, decoders as models, and AIS vs amortised."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr
from numpyro import handlers

import rdppl
from rdppl.decoders import decoder_model, observation_distribution
from rdppl.echo import EchoChannel
from rdppl.training import (
    train_amortized_encoder,
    train_beta_vae,
    train_echo_autoencoder,
)
from rdppl.variational import gaussian_rate, variational_bounds

BETAS = [0.05, 5.0]
SMALL = {
    "width_size": 16,
    "depth": 1,
    "num_steps": 400,
    "optimizer": optax.adam(3e-3),
    "progress": False,
}


def simulate(decoder, num_examples, latent_dim, seed):
    """Binary data from a decoder: z ~ N(0, I), x ~ Bernoulli(sigmoid(decoder(z)))."""
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(num_examples, latent_dim)), jnp.float32)
    probabilities = np.asarray(jax.nn.sigmoid(jax.vmap(decoder)(z)))
    return (rng.random(probabilities.shape) < probabilities).astype(np.float32)


@pytest.fixture(scope="module")
def binary_data():
    decoder = eqx.nn.MLP(2, 12, 16, 1, key=jax.random.key(0))
    decoder = jax.tree.map(lambda a: 3.0 * a if eqx.is_array(a) else a, decoder)
    data = simulate(decoder, 304, 2, seed=1)
    return data[:256], data[256:]


@pytest.fixture(scope="module")
def vae_sweep(binary_data):
    train, test = binary_data
    return train_beta_vae(
        train,
        betas=BETAS,
        latent_dim=2,
        rng_key=jax.random.key(2),
        batch_size=32,
        eval_data=test,
        **SMALL,
    )


@pytest.fixture(scope="module")
def echo_sweep(binary_data):
    train, test = binary_data
    return train_echo_autoencoder(
        train,
        betas=BETAS,
        latent_dim=2,
        rng_key=jax.random.key(3),
        batch_size=32,
        eval_data=test,
        **SMALL,
    )


def assert_netcdf_safe(attrs):
    for key, value in attrs.items():
        assert isinstance(value, str | int | float | np.integer | np.floating), key
        assert not isinstance(value, bool), key


@pytest.mark.parametrize(
    "sweep_name, group, variables",
    [
        ("vae_sweep", "variational", ["distortion", "elbo", "rate"]),
        ("echo_sweep", "echo", ["distortion", "information"]),
    ],
)
def test_sweep_tree_schema(request, sweep_name, group, variables):
    sweep = request.getfixturevalue(sweep_name)
    assert list(sweep.tree.children) == [group]
    dataset = sweep.tree[group].to_dataset()
    assert sorted(dataset.data_vars) == variables
    for name in variables:
        assert dataset[name].dims == ("example", "beta")
        assert bool(np.all(np.isfinite(dataset[name].values)))
    assert dataset["beta"].dtype == np.float64
    np.testing.assert_array_equal(dataset["beta"].values, BETAS)
    np.testing.assert_array_equal(dataset["example"].values, np.arange(48))
    assert dataset.attrs["objective"] == "distortion + beta * rate"
    assert_netcdf_safe(dataset.attrs)
    assert_netcdf_safe(sweep.tree.attrs)
    assert len(sweep.encoders) == len(sweep.decoders) == len(BETAS)


def test_sweep_tree_round_trips_through_netcdf(tmp_path, echo_sweep):
    pytest.importorskip("h5py", reason="h5netcdf needs h5py to write netCDF4")
    path = tmp_path / "echo.nc"
    rdppl.to_netcdf(echo_sweep.tree, path)
    loaded = rdppl.from_netcdf(path)
    xr.testing.assert_allclose(
        loaded["echo"].to_dataset(), echo_sweep.tree["echo"].to_dataset()
    )


def test_rate_distortion_trade_off_follows_beta(vae_sweep, echo_sweep):
    # A larger weight on the rate buys less information at more distortion. Compare
    # per-example differences between the two betas with their standard error.
    vae = vae_sweep.tree["variational"].to_dataset()
    echo = echo_sweep.tree["echo"].to_dataset()
    for rate, distortion in (
        (vae.rate.values, vae.distortion.values),
        (echo.information.values, echo.distortion.values),
    ):
        for lower_at_high_beta, values in ((True, rate), (False, distortion)):
            difference = values[:, 0] - values[:, 1]
            if not lower_at_high_beta:
                difference = -difference
            standard_error = difference.std(ddof=1) / math.sqrt(len(difference))
            assert difference.mean() > 3 * standard_error
    # The ELBO is -(R + D) example by example.
    np.testing.assert_allclose(vae.elbo, -(vae.rate + vae.distortion), rtol=1e-6)


def test_returned_modules_reproduce_the_tree(binary_data, vae_sweep, echo_sweep):
    _, test = binary_data
    echo = echo_sweep.tree["echo"].to_dataset()
    vae = vae_sweep.tree["variational"].to_dataset()
    for index, channel in enumerate(echo_sweep.encoders):
        assert isinstance(channel, EchoChannel)
        np.testing.assert_allclose(
            channel.information(test), echo.information[:, index], rtol=1e-5
        )
        assert bool(np.all(echo.information[:, index] >= channel.rate_floor - 1e-5))
    for index, encoder in enumerate(vae_sweep.encoders):
        loc, scale = jax.vmap(encoder)(test)
        np.testing.assert_allclose(
            gaussian_rate(loc, scale), vae.rate[:, index], rtol=1e-5, atol=1e-6
        )
    attrs = echo.attrs
    assert attrs["num_terms"] == 31  # batch_size - 1
    assert attrs["rate_floor"] == pytest.approx(-2 * math.log(attrs["clip"]))
    assert attrs["truncation_error"] <= np.finfo(np.float32).eps


def test_progress_is_shown_and_can_be_switched_off(capsys, binary_data, vae_sweep):
    train, test = binary_data
    # The settings of the `vae_sweep` fixture, so that nothing recompiles.
    settings = {
        **SMALL,
        "betas": BETAS,
        "latent_dim": 2,
        "rng_key": jax.random.key(2),
        "batch_size": 32,
        "eval_data": test,
    }
    settings["progress"] = True
    train_beta_vae(train, **settings)
    assert "beta-VAE" in capsys.readouterr().err
    settings["progress"] = False
    again = train_beta_vae(train, **settings)
    assert capsys.readouterr().err == ""
    # Same key, same result.
    xr.testing.assert_equal(
        again.tree["variational"].to_dataset().drop_attrs(),
        vae_sweep.tree["variational"].to_dataset().drop_attrs(),
    )


@pytest.mark.parametrize(
    "trainer, kwargs, match",
    [
        (train_beta_vae, {"betas": [1.0, 0.5]}, "increasing"),
        (train_beta_vae, {"betas": [-1.0]}, "non-negative"),
        (train_beta_vae, {"batch_size": 1000}, "batch_size"),
        (train_beta_vae, {"data": np.full((64, 12), 2.0)}, r"\[0, 1\]"),
        (train_echo_autoencoder, {"num_terms": 40}, "at least 41"),
        (train_echo_autoencoder, {"eval_data": np.zeros((8, 12))}, "eval_data"),
    ],
)
def test_trainers_validate_arguments(binary_data, trainer, kwargs, match):
    train, _ = binary_data
    arguments = {
        "data": train,
        "betas": [1.0],
        "latent_dim": 2,
        "rng_key": jax.random.key(0),
        "batch_size": 32,
        **kwargs,
    }
    data = arguments.pop("data")
    with pytest.raises(ValueError, match=match):
        trainer(data, **arguments)


def test_amortized_encoder_checks_the_decoder_output(binary_data):
    train, _ = binary_data
    wrong = eqx.nn.MLP(2, 5, 4, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="features"):
        train_amortized_encoder(
            wrong, train, betas=[1.0], latent_dim=2, rng_key=jax.random.key(0)
        )


# --- decoders as NumPyro models ----------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decoder_model_sites_and_likelihood(likelihood):
    decoder = eqx.nn.MLP(3, 5, 8, 1, key=jax.random.key(5))
    program = decoder_model(decoder, latent_dim=3, likelihood=likelihood, scale=0.3)
    assert isinstance(program, rdppl.Model)
    assert (program.observed, program.reconstruction) == ("x", "x_hat")
    x = jnp.array([1.0, 0.0, 1.0, 1.0, 0.0])
    trace = handlers.trace(handlers.seed(program, jax.random.key(6))).get_trace(x=x)
    assert set(trace) == {"z", "x_hat", "x"}
    assert trace["z"]["fn"].event_shape == (3,)
    assert trace["x"]["is_observed"]
    z = trace["z"]["value"]
    expected = observation_distribution(
        decoder(z), likelihood=likelihood, scale=0.3
    ).log_prob(x)
    log_likelihood = trace["x"]["fn"].log_prob(trace["x"]["value"])
    np.testing.assert_allclose(log_likelihood, expected, rtol=1e-6)
    x_hat = jax.nn.sigmoid(decoder(z)) if likelihood == "bernoulli" else decoder(z)
    np.testing.assert_allclose(trace["x_hat"]["value"], x_hat, rtol=1e-6)
    # Unobserved, the program simulates an example of the right shape.
    simulated = handlers.seed(program, jax.random.key(7))
    sample = handlers.trace(simulated).get_trace()["x"]["value"]
    assert sample.shape == (5,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"scale": -1.0}, "scale"),
    ],
)
def test_decoder_model_validates_arguments(kwargs, match):
    decoder = eqx.nn.MLP(3, 5, 8, 1, key=jax.random.key(5))
    with pytest.raises(ValueError, match=match):
        decoder_model(decoder, **{"latent_dim": 3, **kwargs})


# --- the amortised curve of a frozen decoder lies on or above its AIS curve ---------


def smooth_decoder():
    """An MLP decoder: near-Gaussian posteriors, where amortisation is nearly tight."""
    decoder = eqx.nn.MLP(2, 8, 16, 1, key=jax.random.key(10))
    return jax.tree.map(lambda a: 2.0 * a if eqx.is_array(a) else a, decoder)


def symmetric_decoder():
    """A decoder of z ** 2: four-mode posteriors, beyond a Gaussian encoder."""
    mlp = eqx.nn.MLP(2, 24, 16, 1, key=jax.random.key(11))
    mlp = jax.tree.map(lambda a: 3.0 * a if eqx.is_array(a) else a, mlp)
    return eqx.nn.Sequential([eqx.nn.Lambda(jnp.square), mlp])


@pytest.mark.parametrize(
    "make_decoder, betas, beta_max",
    [
        (smooth_decoder, [0.5, 1.0, 2.0], 4.0),
        (symmetric_decoder, [0.1, 0.3, 1.0], 12.0),
    ],
    ids=["smooth", "symmetric"],
)
def test_amortized_curve_lies_on_or_above_the_ais_curve(make_decoder, betas, beta_max):
    decoder = make_decoder()
    data = simulate(decoder, 260, 2, seed=12)
    train, test = data[:256], data[256:]
    num_chains = 16
    ais = rdppl.rd_curve(
        decoder_model(decoder, latent_dim=2),
        test,
        rng_key=jax.random.key(13),
        schedule=rdppl.sigmoid_schedule(500, beta_max=beta_max),
        num_chains=num_chains,
    )
    sweep = train_amortized_encoder(
        decoder,
        train,
        betas=betas,
        latent_dim=2,
        rng_key=jax.random.key(14),
        width_size=32,
        num_steps=1500,
        batch_size=64,
        eval_data=test,
        progress=False,
    )
    curve = ais["rate_distortion"].to_dataset()
    temperatures = curve["beta"].values
    log_z = curve["log_z"].values
    ess = ais["sample_stats"]["effective_sample_size"].values
    rows = np.arange(len(test))
    gaps = []
    for index, encoder in enumerate(sweep.encoders):
        bounds = variational_bounds(
            encoder, decoder, test, rng_key=jax.random.key(15), num_samples=4096
        )
        rate = np.asarray(bounds.rate, dtype=np.float64)
        distortion = np.asarray(bounds.distortion, dtype=np.float64)
        np.testing.assert_allclose(
            rate, sweep.tree["variational"]["rate"].values[:, index], rtol=1e-5
        )
        # AIS curve as the envelope of its supporting lines R = -log Z_b - b D (the
        # rate-distortion curve is convex and log Z_b = -min_q [R(q) + b D(q)]).
        lines = -log_z - temperatures[None, :] * distortion[:, None]
        best = np.argmax(lines, axis=1)
        envelope = lines[rows, best]
        # Standard errors: the encoder's Monte Carlo distortion, and log Z from the
        # AIS weights' effective sample size, Var(Z_hat) / Z^2 = (M / ESS - 1) / M.
        ess_best = ess[rows, best]
        log_z_error = np.sqrt(np.maximum(num_chains / ess_best - 1, 0) / num_chains)
        distortion_error = temperatures[best] * np.asarray(
            bounds.distortion_standard_error
        )
        tolerance = 4 * np.sqrt(distortion_error**2 + log_z_error**2)
        assert np.all(rate >= envelope - tolerance)
        gaps.append(rate - envelope)
    # On average the amortised points are strictly worse, never better.
    assert float(np.mean(gaps)) > 0
