"""Decoders from other frameworks (``rdppl.interop``) against the frameworks themselves.

The fixtures in ``tests/data/interop/`` hold weights as PyTorch and Flax users export
them, with inputs and the framework's own outputs; ``make_fixtures.py`` there made
them with the real frameworks (versions in ``versions.json``). So these tests compare
with PyTorch and Flax without needing either installed.
"""

import json
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rdppl
from rdppl.interop import activation_function

DATA = pathlib.Path(__file__).resolve().parent / "data" / "interop"
# float32 forward passes of a few layers, computed in a different order than the
# framework's (matmul blocking, erf/tanh implementations)
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def io(name):
    with np.load(DATA / f"{name}_io.npz") as archive:
        return archive["z"], archive["output"]


def weights(name):
    with np.load(DATA / f"{name}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def decode(decoder, z):
    return np.asarray(jax.vmap(decoder)(jnp.asarray(z)))


def test_fixtures_record_the_framework_versions():
    versions = json.loads((DATA / "versions.json").read_text())
    assert {"torch", "flax"} <= set(versions)


# ------------------------------------------------------------------ PyTorch


def test_torch_mlp_matches_pytorch():
    decoder = rdppl.mlp_from_torch(DATA / "torch_mlp.npz", activation="gelu")
    assert decoder.layer_names == tuple(f"net.{i}" for i in range(0, 14, 2))
    assert (decoder.latent_dim, decoder.output_dim) == (3, 10)
    z, output = io("torch_mlp")
    np.testing.assert_allclose(decode(decoder, z), output, **TOLERANCE)


def test_torch_fixture_tells_layer_order_and_gelu_apart():
    # the fixture's hidden layers all have shape (8, 8): in string order (net.10
    # before net.2) they still chain, so only the values catch a wrong order, and
    # they do
    z, output = io("torch_mlp")
    path = DATA / "torch_mlp.npz"
    hidden = sorted(f"net.{i}" for i in range(2, 12, 2))
    assert hidden[0] == "net.10"
    by_string = rdppl.mlp_from_torch(
        path, activation="gelu", layers=["net.0", *hidden, "net.12"]
    )
    assert np.max(np.abs(decode(by_string, z) - output)) > 1e-3
    backwards = [f"net.{i}" for i in range(12, -1, -2)]
    with pytest.raises(ValueError, match=r"'net\.10' takes 8 inputs.*gives 10"):
        rdppl.mlp_from_torch(path, layers=backwards)


def test_torch_state_dict_as_mapping_with_prefix():
    # the decoder of a whole autoencoder: select it with prefix=
    state = {f"decoder.{key}": value for key, value in weights("torch_mlp").items()}
    state["encoder.0.weight"] = np.ones((4, 10), np.float32)
    decoder = rdppl.mlp_from_torch(state, activation="GELU", prefix="decoder.")
    assert decoder.layer_names[0] == "decoder.net.0"
    z, output = io("torch_mlp")
    np.testing.assert_allclose(decode(decoder, z), output, **TOLERANCE)


def test_torch_conv_recipe_of_the_docs_matches_pytorch():
    # the layout conversion docs/interop.md shows for convolutional decoders
    state = weights("torch_conv")

    def conv_decoder(z):
        h = (state["fc.weight"] @ z + state["fc.bias"]).reshape(1, 4, 2, 2)
        h = jax.lax.conv_transpose(
            h,
            state["up.weight"],
            strides=(2, 2),
            padding=((1, 2), (1, 2)),  # k - 1 - p, k - 1 - p + output_padding
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            transpose_kernel=True,
        ) + state["up.bias"].reshape(1, -1, 1, 1)
        h = jax.nn.relu(h)
        h = jax.lax.conv_general_dilated(
            h,
            state["conv.weight"],
            window_strides=(1, 1),
            padding=((1, 1), (1, 1)),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        ) + state["conv.bias"].reshape(1, -1, 1, 1)
        return h[0]

    z, output = io("torch_conv")
    np.testing.assert_allclose(decode(conv_decoder, z), output, **TOLERANCE)


# ------------------------------------------------------------------ Flax


def test_flax_linen_mlp_matches_flax():
    decoder = rdppl.mlp_from_flax(
        DATA / "flax_linen_mlp.npz", activation="gelu", final_activation="sigmoid"
    )
    assert decoder.layer_names == tuple(f"params/Dense_{i}" for i in range(11))
    z, output = io("flax_linen_mlp")
    np.testing.assert_allclose(decode(decoder, z), output, **TOLERANCE)


def test_flax_linen_variables_as_nested_dict():
    # as flax.serialization.msgpack_restore or pickle give them back, in string
    # order (Dense_10 before Dense_2), without and with the "params" level
    flat = weights("flax_linen_mlp")
    params = {}
    for key in sorted(flat):
        _, layer, leaf = key.split("/")
        params.setdefault(layer, {})[leaf] = flat[key]
    z, output = io("flax_linen_mlp")
    for tree in ({"params": params}, params):
        decoder = rdppl.mlp_from_flax(
            tree, activation="gelu", final_activation="sigmoid"
        )
        assert decoder.layer_names[-1].endswith("Dense_10")
        np.testing.assert_allclose(decode(decoder, z), output, **TOLERANCE)


def test_flax_nnx_state_matches_flax():
    z, output = io("flax_nnx_mlp")
    from_file = rdppl.mlp_from_flax(DATA / "flax_nnx_mlp.npz", activation="leaky_relu")
    # nnx.state(model, nnx.Param).to_pure_dict(): integer keys for list indices
    state = {"layers": {}}
    for key, value in weights("flax_nnx_mlp").items():
        _, index, leaf = key.split("/")
        state["layers"].setdefault(int(index), {})[leaf] = value
    from_dict = rdppl.mlp_from_flax(state, activation="leaky_relu")
    for decoder in (from_file, from_dict):
        assert decoder.layer_names == ("layers/0", "layers/1", "layers/2")
        np.testing.assert_allclose(decode(decoder, z), output, **TOLERANCE)


def test_flax_conv_recipe_of_the_docs_matches_flax():
    params = {
        key.removeprefix("params/"): value
        for key, value in weights("flax_conv").items()
    }

    def conv_decoder(z):
        h = (z @ params["Dense_0/kernel"] + params["Dense_0/bias"]).reshape(1, 2, 2, 4)
        h = jax.lax.conv_transpose(
            h,
            params["ConvTranspose_0/kernel"],
            strides=(2, 2),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ) + params["ConvTranspose_0/bias"].reshape(1, 1, 1, -1)
        h = jax.lax.conv_general_dilated(
            jax.nn.relu(h),
            params["Conv_0/kernel"],
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ) + params["Conv_0/bias"].reshape(1, 1, 1, -1)
        return h[0]

    z, output = io("flax_conv")
    np.testing.assert_allclose(decode(conv_decoder, z), output, **TOLERANCE)


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("framework", ["torch", "flax"])
def test_activations_match_the_framework(framework):
    with np.load(DATA / f"{framework}_activations.npz") as archive:
        x = jnp.asarray(archive["x"])
        names = [name for name in archive.files if name != "x"]
        assert len(names) >= 13
        for name in names:
            f = activation_function(name, framework=framework)
            np.testing.assert_allclose(
                np.asarray(f(x)), archive[name], rtol=2e-6, atol=2e-6, err_msg=name
            )


def test_gelu_means_each_frameworks_default():
    x = jnp.linspace(-3.0, 3.0, 13)
    exact = activation_function("gelu", framework="torch")(x)
    approximate = activation_function("gelu", framework="flax")(x)
    assert float(jnp.max(jnp.abs(exact - approximate))) > 1e-4
    assert activation_function("gelu") is activation_function("gelu_exact")


# ------------------------------------------------------------------ in rdppl


def test_converted_decoder_is_a_jittable_pytree():
    decoder = rdppl.mlp_from_torch(DATA / "torch_mlp.npz", activation="gelu")
    z, output = io("torch_mlp")
    jitted = jax.jit(jax.vmap(lambda d, z: d(z), in_axes=(None, 0)))
    np.testing.assert_allclose(np.asarray(jitted(decoder, z)), output, **TOLERANCE)
    assert len(jax.tree_util.tree_leaves(decoder)) == 14
    gradient = jax.grad(lambda z: jnp.sum(decoder(z)))(jnp.asarray(z[0]))
    assert gradient.shape == (3,) and bool(jnp.all(jnp.isfinite(gradient)))


def test_linear_decoder_gives_the_exact_log_likelihood_and_curve():
    # one nn.Linear(2, 3) and a Gaussian likelihood: x ~ N(b, W W^T + s^2 I)
    rng = np.random.default_rng(0)
    state = {
        "0.weight": rng.normal(size=(3, 2)).astype(np.float32),
        "0.bias": rng.normal(size=3).astype(np.float32),
    }
    decoder = rdppl.mlp_from_torch(state, activation="relu")
    program = rdppl.decoder_model(
        decoder, latent_dim=decoder.latent_dim, likelihood="gaussian", scale=0.5
    )
    W, b = state["0.weight"].astype(float), state["0.bias"].astype(float)
    x = (rng.normal(size=(4, 2)) @ W.T + b + 0.5 * rng.normal(size=(4, 3))).astype(
        np.float32
    )
    covariance = W @ W.T + 0.25 * np.eye(3)
    residual = x - b
    exact = -0.5 * (
        np.einsum("ni,ij,nj->n", residual, np.linalg.inv(covariance), residual)
        + np.linalg.slogdet(2 * np.pi * covariance)[1]
    )
    tree = rdppl.log_likelihood(
        program, x, rng_key=jax.random.key(0), method="importance", num_samples=4096
    )
    estimate = tree["log_marginal_likelihood"]["log_marginal_likelihood"].values
    # 4096 prior samples in 2 dimensions: Monte Carlo error about 0.01 nats
    np.testing.assert_allclose(estimate, exact, atol=0.05)
    # a tiny AIS run (40 temperatures, 8 chains): its log Z at beta = 1 is log p(x)
    curve = rdppl.rd_curve(
        program,
        x,
        rng_key=jax.random.key(1),
        schedule=rdppl.sigmoid_schedule(40),
        num_chains=8,
        kernel=rdppl.HMC(num_leapfrog=3),
        tune_schedule=False,
    )["rate_distortion"]
    assert curve["beta"].values[-1] == 1.0
    assert np.all(np.isfinite(curve["rate"].values))
    np.testing.assert_allclose(curve["log_z"].values[:, -1], exact, atol=0.25)


# ------------------------------------------------------------------ Equinox


def train_tiny_decoder(steps=30):
    """A small eqx.nn.MLP fitted by gradient descent to a few Gaussian examples."""
    decoder = eqx.nn.MLP(2, 4, 8, 1, activation=jnp.tanh, key=jax.random.key(0))
    z = jax.random.normal(jax.random.key(1), (16, 2))
    x = jnp.tanh(z @ jnp.ones((2, 4)))

    @eqx.filter_jit
    def step(decoder):
        def loss(decoder):
            return jnp.mean((jax.vmap(decoder)(z) - x) ** 2)

        grads = eqx.filter_grad(loss)(decoder)
        return eqx.apply_updates(decoder, jax.tree.map(lambda g: -0.1 * g, grads))

    for _ in range(steps):
        decoder = step(decoder)
    return decoder, np.asarray(x[:3])


def test_equinox_round_trip_through_a_file(tmp_path):
    trained, x = train_tiny_decoder()
    path = tmp_path / "decoder.eqx"
    eqx.tree_serialise_leaves(path, trained)
    skeleton = eqx.filter_eval_shape(
        eqx.nn.MLP, 2, 4, 8, 1, activation=jnp.tanh, key=jax.random.key(5)
    )
    loaded = rdppl.load_equinox(path, skeleton)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    z = jax.random.normal(jax.random.key(4), (3, 2))
    np.testing.assert_array_equal(jax.vmap(loaded)(z), jax.vmap(trained)(z))
    tree = rdppl.log_likelihood(
        rdppl.decoder_model(loaded, latent_dim=2, likelihood="gaussian", scale=0.3),
        x,
        rng_key=jax.random.key(2),
        method="importance",
        num_samples=256,
    )
    values = tree["log_marginal_likelihood"]["log_marginal_likelihood"].values
    assert values.shape == (3,) and np.all(np.isfinite(values))


def test_equinox_errors_name_the_file_and_the_leaf(tmp_path):
    module = eqx.nn.MLP(2, 4, 8, 1, key=jax.random.key(0))
    path = tmp_path / "decoder.eqx"
    eqx.tree_serialise_leaves(path, module)
    wider = eqx.nn.MLP(2, 4, 16, 1, key=jax.random.key(0))
    with pytest.raises(
        ValueError, match=r"decoder\.eqx.*\.layers\[0\]\.weight.*\(8, 2\)"
    ):
        rdppl.load_equinox(path, wider)
    deeper = eqx.nn.MLP(2, 4, 8, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"\.layers\[1\]\.weight"):
        rdppl.load_equinox(path, deeper)
    # a file that ends before the skeleton does
    eqx.tree_serialise_leaves(path, module.layers[0])
    with pytest.raises(ValueError, match=r"\.layers\[1\]\.weight.*file ends"):
        rdppl.load_equinox(path, module)
    # a file with more leaves than the skeleton: Equinox alone would say nothing
    eqx.tree_serialise_leaves(path, module)
    with pytest.raises(ValueError, match=r"bytes are left after .*\.bias"):
        rdppl.load_equinox(path, module.layers[0])
    with pytest.raises(FileNotFoundError, match="missing.eqx"):
        rdppl.load_equinox(tmp_path / "missing.eqx", module)


# ------------------------------------------------------------------ bad input


def two_layers(**changes):
    state = {
        "net.0.weight": np.ones((4, 2), np.float32),
        "net.0.bias": np.zeros(4, np.float32),
        "net.2.weight": np.ones((3, 4), np.float32),
        "net.2.bias": np.zeros(3, np.float32),
    }
    state.update(changes)
    return {key: value for key, value in state.items() if value is not None}


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        (two_layers(**{"net.2.weight": None}), KeyError, r"'net\.2' has no 'weight'"),
        (
            two_layers(**{"net.2.weight": np.ones((3, 5), np.float32)}),
            ValueError,
            r"'net\.2' takes 5 inputs .*\(3, 5\).*'net\.0', gives 4",
        ),
        (
            two_layers(**{"net.0.bias": np.zeros(5, np.float32)}),
            ValueError,
            r"'net\.0\.bias' has shape \(5,\), expected \(4,\)",
        ),
        (
            two_layers(**{"net.0.weight": np.ones((4, 2, 3, 3), np.float32)}),
            ValueError,
            r"'net\.0\.weight' has shape \(4, 2, 3, 3\).*convolutions",
        ),
        (
            two_layers(**{"net.1.running_mean": np.zeros(4, np.float32)}),
            ValueError,
            r"'net\.1\.running_mean' is neither",
        ),
        (
            two_layers(**{"net.0.bias": np.array([0, np.nan, 0, 0], np.float32)}),
            ValueError,
            r"'net\.0\.bias' \(shape \(4,\)\) has 1 non-finite",
        ),
        (
            two_layers(**{"net.0.bias": np.array(["a", "b", "c", "d"])}),
            TypeError,
            r"'net\.0\.bias' has dtype <U1",
        ),
        ({}, ValueError, "no weights found"),
    ],
    ids=[
        "missing-weight",
        "shapes-do-not-chain",
        "bias-shape",
        "convolution",
        "not-dense",
        "non-finite",
        "not-numbers",
        "empty",
    ],
)
def test_bad_torch_weights_raise_naming_the_key(state, error, message):
    with pytest.raises(error, match=message):
        rdppl.mlp_from_torch(state)


def test_layer_order_that_names_cannot_tell_needs_layers():
    state = {
        "hidden.weight": np.ones((4, 2), np.float32),
        "out.weight": np.ones((3, 4), np.float32),
    }
    with pytest.raises(ValueError, match=r"cannot tell the order .*layers="):
        rdppl.mlp_from_torch(state)
    decoder = rdppl.mlp_from_torch(state, layers=["hidden", "out"])
    np.testing.assert_allclose(decoder(jnp.ones(2)), np.full(3, 8.0))  # no bias
    with pytest.raises(KeyError, match=r"no layer named 'output'"):
        rdppl.mlp_from_torch(state, layers=["hidden", "output"])
    with pytest.raises(KeyError, match=r"no key starts with prefix 'decoder\.'"):
        rdppl.mlp_from_torch(state, prefix="decoder.")


def test_bad_names_and_paths_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown activation 'relu7'.*leaky_relu"):
        rdppl.mlp_from_torch(two_layers(), activation="relu7")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz"):
        rdppl.mlp_from_torch(tmp_path / "nowhere.npz")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.npz"):
        rdppl.mlp_from_flax(str(tmp_path / "nowhere.npz"))
    (tmp_path / "weights.pt").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"weights\.pt.*\.npz"):
        rdppl.mlp_from_torch(tmp_path / "weights.pt")
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"broken\.npz.*not a readable"):
        rdppl.mlp_from_torch(tmp_path / "broken.npz")
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        rdppl.mlp_from_torch([np.ones((2, 2))])
    variables = {
        "params": {"Dense_0": {"kernel": np.ones((2, 3), np.float32)}},
        "batch_stats": {"BatchNorm_0": {"mean": np.zeros(3, np.float32)}},
    }
    with pytest.raises(ValueError, match=r"collections \['batch_stats'\]"):
        rdppl.mlp_from_flax(variables)
    decoder = rdppl.mlp_from_flax(variables, prefix="params/")
    assert decoder.layer_names == ("params/Dense_0",)
    nested = {"params": {"decoder": variables["params"], "encoder": {}}}
    decoder = rdppl.mlp_from_flax(nested, prefix="decoder/")
    assert decoder.layer_names == ("params/decoder/Dense_0",)
    with pytest.raises(ValueError, match="framework must be"):
        activation_function("relu", framework="jax")
    decoder = rdppl.mlp_from_torch(two_layers())
    with pytest.raises(ValueError, match=r"expects z of shape \(2,\).*jax\.vmap"):
        decoder(jnp.ones((5, 2)))


def test_public_names():
    assert rdppl.mlp_from_torch is rdppl.interop.mlp_from_torch
    assert rdppl.DenseDecoder is rdppl.interop.DenseDecoder
    assert {"mlp_from_torch", "mlp_from_flax", "load_equinox"} <= set(rdppl.__all__)
