"""Training sweeps, their result trees, trained modules, decoders as models, AIS."""

import ast
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr
from numpyro import handlers

import rdppl
from rdppl import results
from rdppl.encoders.architectures import Architecture, parameter_leaves
from rdppl.encoders.echo import EchoChannel
from rdppl.encoders.optimise import unstack
from rdppl.encoders.training import (
    train_amortized_encoder,
    train_beta_vae,
    train_echo_autoencoder,
    trained_decoders,
    trained_encoders,
)
from rdppl.program.decoders import decoder_model, observation_distribution
from rdppl.variational import GaussianEncoder, gaussian_rate, variational_bounds

RATE_WEIGHTS = [0.05, 5.0]
SMALL = {
    "width_size": 16,
    "depth": 1,
    "num_steps": 400,
    "optimizer": optax.adam(3e-3),
}


def simulate(decoder, num_examples, latent_dim, seed):
    """Binary data from a decoder: z ~ N(0, I), x ~ Bernoulli(sigmoid(decoder(z)))."""
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(num_examples, latent_dim)), jnp.float32)
    probabilities = np.asarray(jax.nn.sigmoid(jax.vmap(decoder)(z)))
    return (rng.random(probabilities.shape) < probabilities).astype(np.float32)


def source_decoder():
    decoder = eqx.nn.MLP(2, 12, 16, 1, key=jax.random.key(0))
    return jax.tree.map(lambda a: 3.0 * a if eqx.is_array(a) else a, decoder)


@pytest.fixture(scope="module")
def binary_data():
    data = simulate(source_decoder(), 304, 2, seed=1)
    return data[:256], data[256:]


@pytest.fixture(scope="module")
def vae_tree(binary_data):
    train, test = binary_data
    return train_beta_vae(
        train,
        rng_key=jax.random.key(2),
        rate_weights=RATE_WEIGHTS,
        latent_dim=2,
        batch_size=32,
        eval_data=test,
        **SMALL,
    )


@pytest.fixture(scope="module")
def echo_tree(binary_data):
    train, test = binary_data
    return train_echo_autoencoder(
        train,
        rng_key=jax.random.key(3),
        rate_weights=RATE_WEIGHTS,
        latent_dim=2,
        batch_size=32,
        eval_data=test,
        **SMALL,
    )


@pytest.fixture(scope="module")
def amortized_tree(binary_data):
    # A short run: these tests check the schema and the stored modules, not the fit.
    train, test = binary_data
    return train_amortized_encoder(
        source_decoder(),
        train,
        rng_key=jax.random.key(4),
        rate_weights=RATE_WEIGHTS,
        latent_dim=2,
        batch_size=32,
        eval_data=test,
        **{**SMALL, "num_steps": 20},
    )


def assert_netcdf_safe(attrs):
    for key, value in attrs.items():
        assert isinstance(value, str | int | float | np.integer | np.floating), key
        assert not isinstance(value, bool), key


TREES = [
    ("vae_tree", "beta_vae", "variational", ["distortion", "elbo", "rate"]),
    ("echo_tree", "echo_autoencoder", "echo", ["distortion", "information"]),
    (
        "amortized_tree",
        "amortized_encoder",
        "variational",
        ["distortion", "elbo", "rate"],
    ),
]


@pytest.mark.parametrize("fixture, trainer, group, variables", TREES)
def test_tree_schema_and_rate_weight_coordinate(
    request, fixture, trainer, group, variables
):
    tree = request.getfixturevalue(fixture)
    assert tree.name == trainer
    assert list(tree.children) == [group, "trained_parameters"]
    dataset = tree[group].to_dataset()
    assert sorted(dataset.data_vars) == variables
    for name in variables:
        assert dataset[name].dims == ("example", "rate_weight")
        assert bool(np.all(np.isfinite(dataset[name].values)))
    # The trade-off weight is not the AIS inverse temperature: no `beta` anywhere.
    for node in tree.subtree:
        assert "beta" not in node.to_dataset().dims
    assert dataset["rate_weight"].dtype == np.float64
    np.testing.assert_array_equal(dataset["rate_weight"].values, RATE_WEIGHTS)
    np.testing.assert_array_equal(dataset["example"].values, np.arange(48))
    assert dataset.attrs["objective"] == "distortion + rate_weight * rate"
    assert dataset.attrs["ais_inverse_temperature"] == "1 / rate_weight"
    parameters = tree["trained_parameters"].to_dataset()
    for name, variable in parameters.data_vars.items():
        assert variable.dims[0] == "rate_weight", name
    np.testing.assert_array_equal(parameters["rate_weight"].values, RATE_WEIGHTS)
    names = {
        f"{part}_{i}"
        for part in ("encoder", "decoder")
        for i in range(parameters.attrs.get(f"num_{part}_leaves", 0))
    }
    assert set(parameters.data_vars) == names
    for attrs in (dataset.attrs, parameters.attrs, tree.attrs):
        assert_netcdf_safe(attrs)
    assert len(trained_encoders(tree)) == len(RATE_WEIGHTS)


def test_trained_decoders_of_a_frozen_decoder_is_an_error(amortized_tree):
    parameters = amortized_tree["trained_parameters"].to_dataset()
    assert not any(name.startswith("decoder") for name in parameters.data_vars)
    with pytest.raises(ValueError, match="frozen decoder"):
        trained_decoders(amortized_tree)


@pytest.mark.parametrize(
    "architecture",
    [
        Architecture("beta_vae", 5, 3, 8, 2),
        Architecture("echo_autoencoder", 5, 3, 8, 1, num_terms=7, clip=0.6),
        Architecture("amortized_encoder", 5, 3, 8, 1),
    ],
    ids=lambda a: a.trainer,
)
def test_stored_modules_are_rebuilt_exactly(tmp_path, architecture):
    # Any stack of modules (here: three random initialisations) is stored and rebuilt
    # leaf for leaf, in memory and after a netCDF round trip.
    encoders, decoders = eqx.filter_vmap(architecture.build)(
        jax.random.split(jax.random.key(20), 3)
    )
    parts = {"encoder": parameter_leaves(encoders)}
    if architecture.trains_decoder:
        parts["decoder"] = parameter_leaves(decoders)
    group = results.trained_parameters_group(
        parts, [0.1, 1.0, 10.0], attrs=architecture.to_attrs()
    )
    tree = results.make_tree({"trained_parameters": group})
    path = tmp_path / "parameters.nc"
    rdppl.to_netcdf(tree, path)
    x = jax.random.normal(jax.random.key(21), (12, 5))
    z = jax.random.normal(jax.random.key(22), (12, 3))
    for rebuilt_tree in (tree, rdppl.from_netcdf(path)):
        pairs = [(unstack(encoders), trained_encoders(rebuilt_tree))]
        if architecture.trains_decoder:
            pairs.append((unstack(decoders), trained_decoders(rebuilt_tree)))
        for originals, rebuilt in pairs:
            assert len(rebuilt) == 3
            for original, module in zip(originals, rebuilt, strict=True):
                assert type(module) is type(original)
                if isinstance(module, EchoChannel):
                    assert module.clip == original.clip
                    outputs = (module.encode(x), original.encode(x))
                elif isinstance(module, GaussianEncoder):
                    outputs = (jax.vmap(module)(x), jax.vmap(original)(x))
                else:
                    outputs = (jax.vmap(module)(z), jax.vmap(original)(z))
                for a, b in zip(*map(jax.tree.leaves, outputs), strict=True):
                    np.testing.assert_array_equal(a, b)


def test_rebuilding_checks_the_stored_shapes(vae_tree):
    parameters = vae_tree["trained_parameters"].to_dataset()
    parameters.attrs["width_size"] = 7  # not the width the arrays were trained with
    with pytest.raises(ValueError, match="shapes"):
        trained_encoders(results.make_tree({"trained_parameters": parameters}))
    with pytest.raises(ValueError, match="trained_parameters"):
        trained_encoders(results.make_tree({"variational": vae_tree["variational"]}))


def monte_carlo_distortion(draw_codes, decoder, x, num_draws, seed):
    """Per-example mean of -log d(x|z) over draws of codes, and its per-draw std."""

    def one(key):
        output = jax.vmap(decoder)(draw_codes(key))
        return -observation_distribution(output).log_prob(x)

    values = np.asarray(
        jax.lax.map(one, jax.random.split(jax.random.key(seed), num_draws)),
        dtype=np.float64,
    )
    return values.mean(0), values.std(0, ddof=1)


@pytest.mark.parametrize("fixture", ["vae_tree", "echo_tree"])
def test_rebuilt_modules_reproduce_the_tree(tmp_path, binary_data, request, fixture):
    _, test = binary_data
    tree = request.getfixturevalue(fixture)
    path = tmp_path / "trained.nc"
    rdppl.to_netcdf(tree, path)
    loaded = rdppl.from_netcdf(path)
    group = tree["echo" if fixture == "echo_tree" else "variational"].to_dataset()
    encoders, decoders = trained_encoders(tree), trained_decoders(tree)
    num_eval_samples = group.attrs["num_eval_samples"]
    num_draws = 1024
    for index, (encoder, decoder) in enumerate(zip(encoders, decoders, strict=True)):
        if isinstance(encoder, EchoChannel):
            # The exact information, and the channel's own noise for the codes.
            np.testing.assert_allclose(
                encoder.information(test), group.information[:, index], rtol=1e-5
            )
            floor = encoder.rate_floor - 1e-5
            assert bool(np.all(group.information[:, index] >= floor))

            def draw_codes(key, encoder=encoder):
                return encoder(test, key=key)

        else:
            loc, scale = jax.vmap(encoder)(test)
            np.testing.assert_allclose(
                gaussian_rate(loc, scale), group.rate[:, index], rtol=1e-5, atol=1e-6
            )

            def draw_codes(key, loc=loc, scale=scale):
                return loc + scale * jax.random.normal(key, loc.shape)

        # The decoder: the tree's distortion (num_eval_samples codes per example) and
        # a long Monte Carlo run with the rebuilt modules estimate the same mean.
        mean, std = monte_carlo_distortion(draw_codes, decoder, test, num_draws, 23)
        difference = np.mean(group.distortion.values[:, index] - mean)
        variance = std**2 * (1 / num_eval_samples + 1 / num_draws)
        assert abs(difference) < 4 * math.sqrt(variance.sum()) / len(test)
        # After a netCDF round trip the modules are the same, output for output.
        for rebuilt, original in (
            (trained_encoders(loaded)[index], encoder),
            (trained_decoders(loaded)[index], decoder),
        ):
            for a, b in zip(
                jax.tree.leaves(eqx.filter(rebuilt, eqx.is_array)),
                jax.tree.leaves(eqx.filter(original, eqx.is_array)),
                strict=True,
            ):
                np.testing.assert_array_equal(a, b)
    xr.testing.assert_identical(
        loaded["trained_parameters"], tree["trained_parameters"]
    )
    if fixture == "echo_tree":
        attrs = group.attrs
        assert attrs["num_terms"] == 31  # batch_size - 1
        assert attrs["rate_floor"] == pytest.approx(-2 * math.log(attrs["clip"]))
        assert attrs["truncation_error"] <= np.finfo(np.float32).eps


def test_curve_group_round_trips_through_netcdf(tmp_path, echo_tree):
    path = tmp_path / "echo.nc"
    rdppl.to_netcdf(echo_tree, path)
    loaded = rdppl.from_netcdf(path)
    xr.testing.assert_allclose(
        loaded["echo"].to_dataset(), echo_tree["echo"].to_dataset()
    )


@pytest.mark.xfail(
    jax.config.jax_enable_x64,
    reason="the short training run of these fixtures is not significant at 3 "
    "standard errors on every pair in float64 (2.6 seen); float32 is the default",
    strict=False,
)
def test_rate_distortion_trade_off_follows_the_rate_weight(vae_tree, echo_tree):
    # A larger weight on the rate buys less information at more distortion. Compare
    # per-example differences between the two weights with their standard error.
    vae = vae_tree["variational"].to_dataset()
    echo = echo_tree["echo"].to_dataset()
    for rate, distortion in (
        (vae.rate.values, vae.distortion.values),
        (echo.information.values, echo.distortion.values),
    ):
        for lower_at_high_weight, values in ((True, rate), (False, distortion)):
            difference = values[:, 0] - values[:, 1]
            if not lower_at_high_weight:
                difference = -difference
            standard_error = difference.std(ddof=1) / math.sqrt(len(difference))
            assert difference.mean() > 3 * standard_error
    # The ELBO is -(R + D) example by example.
    np.testing.assert_allclose(vae.elbo, -(vae.rate + vae.distortion), rtol=1e-6)


# --- rate weight and AIS inverse temperature ---------------------------------------


def test_as_inverse_temperature_reindexes_on_beta(tmp_path, vae_tree):
    converted = results.as_inverse_temperature(vae_tree)
    assert converted.name == "beta_vae"
    assert list(converted.children) == ["variational"]
    dataset = converted["variational"].to_dataset()
    original = vae_tree["variational"].to_dataset()
    # beta = 1 / rate_weight, increasing like an AIS schedule.
    np.testing.assert_allclose(dataset["beta"].values, [1 / 5.0, 1 / 0.05])
    np.testing.assert_array_equal(dataset["rate_weight"].values, [5.0, 0.05])
    assert dataset["rate"].dims == ("example", "beta")
    for beta, weight in zip(dataset["beta"].values, (5.0, 0.05), strict=True):
        xr.testing.assert_equal(
            dataset["rate"].sel(beta=beta, drop=True),
            original["rate"].sel(rate_weight=weight, drop=True),
        )
    assert dataset.attrs["ais_inverse_temperature"] == "beta = 1 / rate_weight"
    # A dataset converts the same way; the result is a valid netCDF tree.
    xr.testing.assert_identical(results.as_inverse_temperature(original), dataset)
    rdppl.to_netcdf(converted, tmp_path / "converted.nc")
    # Only a rate_weight curve converts: not twice, not an AIS curve.
    with pytest.raises(ValueError, match="rate_weight"):
        results.as_inverse_temperature(dataset)
    with pytest.raises(ValueError, match="trainer groups"):
        results.as_inverse_temperature(results.make_tree({"rate_distortion": dataset}))


def test_plot_converts_trainer_curves_and_labels_them_by_tree(vae_tree, echo_tree):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rdppl.plot import plot_rd_curve

    ax = plot_rd_curve(vae_tree, echo_tree)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == ["beta_vae (variational)", "echo_autoencoder (echo)"]
    # Drawn in order of beta = 1 / rate_weight, i.e. of decreasing rate weight.
    vae = vae_tree["variational"].to_dataset().mean("example")
    line = lines["beta_vae (variational)"]
    np.testing.assert_array_equal(line.get_xdata(), vae.distortion.values[::-1])
    np.testing.assert_array_equal(line.get_ydata(), vae.rate.values[::-1])
    plt.close(ax.figure)


def test_training_modules_stay_out_of_the_lightweight_modules():
    # optax only in the training modules; matplotlib only inside plotting functions.
    package = pathlib.Path(rdppl.__file__).parent
    training = {
        "optax",
        "rdppl.encoders.objectives",
        "rdppl.encoders.optimise",
        "rdppl.encoders.sweep",
        "rdppl.encoders.training",
    }
    paths = [
        package / "encoders" / "architectures.py",
        package / "program" / "decoders.py",
        package / "encoders" / "echo.py",
        *sorted((package / "plot").glob("*.py")),
        *sorted((package / "results").glob("*.py")),
    ]
    for path in paths:
        name = path.name
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                imported = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                imported = {module} | {f"{module}.{a.name}" for a in node.names}
            else:
                continue
            assert not imported & training, (name, imported)
            assert not any(m.startswith("matplotlib") for m in imported), name


# --- arguments ---------------------------------------------------------------------


def test_progress_is_off_by_default_and_can_be_shown(capsys, binary_data, vae_tree):
    train, test = binary_data
    # The settings of the `vae_tree` fixture, so that nothing recompiles.
    settings = {
        **SMALL,
        "rate_weights": RATE_WEIGHTS,
        "latent_dim": 2,
        "rng_key": jax.random.key(2),
        "batch_size": 32,
        "eval_data": test,
    }
    train_beta_vae(train, **settings, progress=True)
    assert "beta-VAE" in capsys.readouterr().err
    again = train_beta_vae(train, **settings)
    assert capsys.readouterr().err == ""
    # Same key, same result.
    for group in ("variational", "trained_parameters"):
        xr.testing.assert_equal(
            again[group].to_dataset().drop_attrs(),
            vae_tree[group].to_dataset().drop_attrs(),
        )


@pytest.mark.parametrize(
    "trainer, kwargs, match",
    [
        (train_beta_vae, {"rate_weights": [1.0, 0.5]}, "increasing"),
        (train_beta_vae, {"rate_weights": [-1.0]}, "positive"),
        (train_beta_vae, {"rate_weights": [0.0, 1.0]}, "positive"),
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
        "rate_weights": [1.0],
        "latent_dim": 2,
        "rng_key": jax.random.key(0),
        "batch_size": 32,
        **kwargs,
    }
    data = arguments.pop("data")
    with pytest.raises(ValueError, match=match):
        trainer(data, **arguments)


@pytest.mark.parametrize("trainer", [train_beta_vae, train_echo_autoencoder])
def test_trainers_take_keywords_after_the_data(binary_data, trainer):
    train, _ = binary_data
    with pytest.raises(TypeError):
        trainer(train, jax.random.key(0), [1.0], latent_dim=2)
    with pytest.raises(TypeError, match="rng_key"):
        trainer(train, rate_weights=[1.0], latent_dim=2)
    with pytest.raises(TypeError, match="betas"):
        trainer(train, rng_key=jax.random.key(0), betas=[1.0], latent_dim=2)


def test_amortized_encoder_checks_the_decoder_output(binary_data):
    train, _ = binary_data
    wrong = eqx.nn.MLP(2, 5, 4, 1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="features"):
        train_amortized_encoder(
            wrong, train, rng_key=jax.random.key(0), rate_weights=[1.0], latent_dim=2
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


# --- the amortised curve of a frozen decoder lies on or above its AIS curve --------


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
    "make_decoder, rate_weights, beta_max",
    [
        (smooth_decoder, [0.5, 1.0, 2.0], 4.0),
        (symmetric_decoder, [0.1, 0.3, 1.0], 12.0),
    ],
    ids=["smooth", "symmetric"],
)
def test_amortized_curve_lies_on_or_above_the_ais_curve(
    make_decoder, rate_weights, beta_max
):
    decoder = make_decoder()
    data = simulate(decoder, 260, 2, seed=12)
    train, test = data[:256], data[256:]
    num_chains = 16
    ais = rdppl.rd_curve(
        decoder_model(decoder, latent_dim=2),
        test,
        rng_key=jax.random.key(13),
        # the default kernel spends one gradient per chain and temperature: 10,000
        # temperatures cost what 500 of HMC with 20 leapfrog steps did
        schedule=rdppl.sigmoid_schedule(10_000, beta_max=beta_max),
        num_chains=num_chains,
    )
    amortized = train_amortized_encoder(
        decoder,
        train,
        rng_key=jax.random.key(14),
        rate_weights=rate_weights,
        latent_dim=2,
        width_size=32,
        num_steps=1500,
        batch_size=64,
        eval_data=test,
    )
    curve = ais["rate_distortion"].to_dataset()
    temperatures = curve["beta"].values
    log_z = curve["log_z"].values
    ess = ais["sample_stats"]["importance_ess"].values
    rows = np.arange(len(test))
    gaps = []
    for index, encoder in enumerate(trained_encoders(amortized)):
        bounds = variational_bounds(
            decoder_model(decoder, latent_dim=2),
            test,
            encoder=encoder,
            rng_key=jax.random.key(15),
            num_samples=4096,
        )["variational_bounds"]
        rate = np.asarray(bounds["rate"], dtype=np.float64)
        distortion = np.asarray(bounds["distortion"], dtype=np.float64)
        np.testing.assert_allclose(
            rate, amortized["variational"]["rate"].values[:, index], rtol=1e-5
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
            bounds["distortion_standard_error"]
        )
        tolerance = 4 * np.sqrt(distortion_error**2 + log_z_error**2)
        assert np.all(rate >= envelope - tolerance)
        gaps.append(rate - envelope)
    # On average the amortised points are strictly worse, never better.
    assert float(np.mean(gaps)) > 0


def test_echo_records_the_entropy_of_its_noise_source(echo_tree, binary_data):
    train, _ = binary_data
    entropy = echo_tree["echo"].attrs["training_data_entropy"]
    assert entropy == pytest.approx(rdppl.variational.empirical_entropy(train))
    assert entropy <= math.log(len(train)) + 1e-12


def test_echo_information_above_the_data_entropy_warns(binary_data):
    # 16 training examples carry at most log(16) = 2.8 nats; a low rate weight and
    # 8 latents let Echo's formula claim more, which cannot be I(X; Z).
    train, _ = binary_data
    with pytest.warns(rdppl.RDWarning, match="exceeds the entropy of the training"):
        tree = train_echo_autoencoder(
            train[:16],
            rng_key=jax.random.key(5),
            rate_weights=[0.01],
            latent_dim=8,
            batch_size=16,
            num_terms=8,
            **SMALL,
        )
    information = tree["echo"]["information"].mean("example").item()
    assert information > tree["echo"].attrs["training_data_entropy"]
