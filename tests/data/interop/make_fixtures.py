"""Make the cross-framework fixtures of ``tests/test_interop.py``.

The files here hold decoder weights exactly as PyTorch and Flax users export them,
with inputs and the framework's own outputs, so that the tests check rdppl's
converted decoders against the real frameworks without needing either installed.

Run each half in a throwaway virtual environment outside the repository (the two
frameworks want different JAX/NumPy pins than rdppl's)::

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python tests/data/interop/make_fixtures.py torch

    python3 -m venv /tmp/flaxenv && /tmp/flaxenv/bin/pip install flax numpy
    /tmp/flaxenv/bin/python tests/data/interop/make_fixtures.py flax

Each half rewrites its own files and records the versions it used in
``versions.json``. Everything is seeded, so re-running with the same versions gives
the same files. The files (all ``.npz``, a few kB each):

``torch_mlp.npz``
    ``{k: v.numpy() for k, v in model.state_dict().items()}`` of a decoder whose
    ``net`` is an ``nn.Sequential`` of 7 ``nn.Linear`` layers (indices 0, 2, ...,
    12, so ``net.10`` and ``net.12`` sort before ``net.2`` as strings) with the
    default ``nn.GELU()`` (exact erf) between them; ``torch_mlp_io.npz`` has
    inputs ``z`` and the model's ``output``.
``torch_conv.npz``
    A ``nn.Linear`` -> ``nn.ConvTranspose2d`` (stride 2, padding 1, output padding
    1) -> ``nn.ReLU`` -> ``nn.Conv2d`` decoder, for the layout-conversion recipe
    of ``docs/interop.md``; ``torch_conv_io.npz`` has ``z`` and ``output``.
``torch_activations.npz``
    ``x`` and, for each activation rdppl names, PyTorch's module with default
    arguments applied to ``x``.
``flax_linen_mlp.npz``
    ``flax.traverse_util.flatten_dict(variables, sep="/")`` of a ``flax.linen``
    MLP of 11 ``nn.Dense`` layers (``Dense_0`` ... ``Dense_10``) with ``nn.gelu``
    (Flax's default: the tanh approximation) between them and ``nn.sigmoid`` on the
    output; ``flax_linen_mlp_io.npz`` has ``z`` and ``output``.
``flax_nnx_mlp.npz``
    ``nnx.state(model, nnx.Param).to_pure_dict()`` flattened with ``/`` of a
    ``flax.nnx`` model holding a list of 3 ``nnx.Linear`` layers with
    ``nnx.leaky_relu`` between them; ``flax_nnx_mlp_io.npz`` has ``z`` and
    ``output``.
``flax_conv.npz``
    The variables of a ``flax.linen`` ``Dense`` -> ``ConvTranspose`` (stride 2,
    ``"SAME"``) -> ``relu`` -> ``Conv`` (``"SAME"``) decoder working in ``NHWC``, for
    the Flax half of the layout recipe; ``flax_conv_io.npz`` has ``z`` and ``output``.
``flax_activations.npz``
    ``x`` and Flax's activation functions (``flax.linen``) applied to ``x``.
"""

import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
# a grid through each activation's interesting region, plus values far out where
# implementations switch branches (softplus's threshold at 20, saturation)
GRID = np.concatenate([np.linspace(-6.0, 6.0, 49), [-40.0, -25.0, 25.0, 40.0]]).astype(
    np.float32
)


def record_versions(**versions):
    path = HERE / "versions.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.update(versions)
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def make_torch():
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [3, 8, 8, 8, 8, 8, 8, 10]
            layers = []
            for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
                layers += [nn.Linear(n_in, n_out), nn.GELU()]
            self.net = nn.Sequential(*layers[:-1])  # logits out

        def forward(self, z):
            return self.net(z)

    model = Decoder().eval()
    z = torch.randn(5, 3)
    with torch.no_grad():
        output = model(z)
    np.savez(
        HERE / "torch_mlp.npz", **{k: v.numpy() for k, v in model.state_dict().items()}
    )
    np.savez(HERE / "torch_mlp_io.npz", z=z.numpy(), output=output.numpy())

    class ConvDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 4 * 2 * 2)
            self.up = nn.ConvTranspose2d(
                4, 3, kernel_size=3, stride=2, padding=1, output_padding=1
            )
            self.conv = nn.Conv2d(3, 1, kernel_size=3, padding=1)

        def forward(self, z):
            h = self.fc(z).reshape(-1, 4, 2, 2)
            return self.conv(torch.relu(self.up(h)))

    conv = ConvDecoder().eval()
    z = torch.randn(3, 2)
    with torch.no_grad():
        output = conv(z)
    np.savez(
        HERE / "torch_conv.npz", **{k: v.numpy() for k, v in conv.state_dict().items()}
    )
    np.savez(HERE / "torch_conv_io.npz", z=z.numpy(), output=output.numpy())

    activations = {
        "relu": nn.ReLU(),
        "relu6": nn.ReLU6(),
        "tanh": nn.Tanh(),
        "sigmoid": nn.Sigmoid(),
        "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"),
        "elu": nn.ELU(),
        "selu": nn.SELU(),
        "celu": nn.CELU(),
        "silu": nn.SiLU(),
        "leaky_relu": nn.LeakyReLU(),
        "softplus": nn.Softplus(),
        "log_sigmoid": nn.LogSigmoid(),
        "mish": nn.Mish(),
        "identity": nn.Identity(),
    }
    x = torch.from_numpy(GRID)
    with torch.no_grad():
        outputs = {name: f(x).numpy() for name, f in activations.items()}
    np.savez(HERE / "torch_activations.npz", x=GRID, **outputs)
    record_versions(torch=torch.__version__, torch_numpy=np.__version__)


def make_flax():
    import flax
    import jax
    import jax.numpy as jnp
    from flax import linen, nnx
    from flax.traverse_util import flatten_dict

    class MLP(linen.Module):
        @linen.compact
        def __call__(self, z):
            for _ in range(10):
                z = linen.gelu(linen.Dense(6)(z))
            return linen.sigmoid(linen.Dense(10)(z))

    model = MLP()
    z = jax.random.normal(jax.random.key(1), (5, 3))
    variables = model.init(jax.random.key(0), z)
    output = model.apply(variables, z)
    flat = {k: np.asarray(v) for k, v in flatten_dict(variables, sep="/").items()}
    np.savez(HERE / "flax_linen_mlp.npz", **flat)
    np.savez(HERE / "flax_linen_mlp_io.npz", z=np.asarray(z), output=np.asarray(output))

    class NNXDecoder(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [
                    nnx.Linear(3, 5, rngs=rngs),
                    nnx.Linear(5, 5, rngs=rngs),
                    nnx.Linear(5, 4, rngs=rngs),
                ]
            )

        def __call__(self, z):
            for layer in self.layers[:-1]:
                z = nnx.leaky_relu(layer(z))
            return self.layers[-1](z)

    decoder = NNXDecoder(nnx.Rngs(2))
    z = jax.random.normal(jax.random.key(3), (5, 3))
    output = decoder(z)
    state = nnx.state(decoder, nnx.Param).to_pure_dict()
    # nnx paths hold the list indices as integers: join them as text
    flat = {
        "/".join(map(str, k)): np.asarray(v) for k, v in flatten_dict(state).items()
    }
    np.savez(HERE / "flax_nnx_mlp.npz", **flat)
    np.savez(HERE / "flax_nnx_mlp_io.npz", z=np.asarray(z), output=np.asarray(output))

    class ConvDecoder(linen.Module):
        @linen.compact
        def __call__(self, z):
            h = linen.Dense(2 * 2 * 4)(z).reshape(-1, 2, 2, 4)  # NHWC
            h = linen.ConvTranspose(3, (3, 3), strides=(2, 2), padding="SAME")(h)
            return linen.Conv(1, (3, 3), padding="SAME")(linen.relu(h))

    conv = ConvDecoder()
    z = jax.random.normal(jax.random.key(5), (3, 2))
    variables = conv.init(jax.random.key(4), z)
    output = conv.apply(variables, z)
    flat = {k: np.asarray(v) for k, v in flatten_dict(variables, sep="/").items()}
    np.savez(HERE / "flax_conv.npz", **flat)
    np.savez(HERE / "flax_conv_io.npz", z=np.asarray(z), output=np.asarray(output))

    activations = {
        "relu": linen.relu,
        "relu6": linen.relu6,
        "tanh": linen.tanh,
        "sigmoid": linen.sigmoid,
        "gelu": linen.gelu,
        "elu": linen.elu,
        "selu": linen.selu,
        "celu": linen.celu,
        "silu": linen.silu,
        "swish": linen.swish,
        "leaky_relu": linen.leaky_relu,
        "softplus": linen.softplus,
        "log_sigmoid": linen.log_sigmoid,
        "identity": lambda x: x,
    }
    x = jnp.asarray(GRID)
    outputs = {name: np.asarray(f(x)) for name, f in activations.items()}
    np.savez(HERE / "flax_activations.npz", x=GRID, **outputs)
    record_versions(
        flax=flax.__version__, flax_jax=jax.__version__, flax_numpy=np.__version__
    )


if __name__ == "__main__":
    if sys.argv[1:] not in (["torch"], ["flax"]):
        sys.exit("usage: make_fixtures.py torch|flax")
    {"torch": make_torch, "flax": make_flax}[sys.argv[1]]()
