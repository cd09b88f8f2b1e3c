"""RD curve of an implicit MLP decoder (a GAN-like generator) with squared error.

The decoder has no likelihood: the distortion is the squared error against its output,
and ``beta`` plays the role of a Gaussian precision. The curve is certified with BDMC at
two temperatures on data simulated from the decoder.

    python examples/mlp_decoder_rd.py --out mlp-rd            # about a minute
    python examples/mlp_decoder_rd.py --out mlp-rd --quick    # a few seconds
"""

import argparse
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist

import rdppl

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="mlp-decoder-rd")
parser.add_argument("--quick", action="store_true", help="tiny settings for tests")
options = parser.parse_args()
out = pathlib.Path(options.out)
out.mkdir(parents=True, exist_ok=True)

LATENT, HIDDEN, OBSERVED = 10, 64, 64
rng = np.random.default_rng(0)
weights = {
    "w1": rng.normal(size=(HIDDEN, LATENT)) / np.sqrt(LATENT),
    "w2": rng.normal(size=(OBSERVED, HIDDEN)) / np.sqrt(HIDDEN),
    "b2": rng.normal(scale=0.1, size=OBSERVED),
}


@rdppl.model(observed="x", reconstruction="x_hat")
def generator(params, x=None):
    z = numpyro.sample("z", dist.Normal(0, 1).expand([LATENT]).to_event(1))
    hidden = jnp.tanh(params["w1"] @ z)
    x_hat = numpyro.deterministic("x_hat", params["w2"] @ hidden + params["b2"])
    # The observation noise only matters for nll; squared error ignores it.
    numpyro.sample("x", dist.Normal(x_hat, 0.1).to_event(1), obs=x)


num_temperatures = 100 if options.quick else 1000
num_examples = 4 if options.quick else 10
# "Real" data: samples of the generator with a little noise.
z = rng.normal(size=(num_examples, LATENT))
data = np.tanh(z @ weights["w1"].T) @ weights["w2"].T + weights["b2"]
data = data + 0.05 * rng.normal(size=data.shape)

result = rdppl.rd_curve(
    generator,
    data,
    rng_key=jax.random.key(0),
    schedule=rdppl.sigmoid_schedule(num_temperatures, beta_max=500.0, radius=6.0),
    num_chains=8 if options.quick else 16,
    distortion="squared_error",
    kernel=rdppl.HMC(num_leapfrog=10 if options.quick else 20),
    model_args=(weights,),
    bdmc_betas=[3.0, 100.0],
    bdmc_num_examples=4 if options.quick else 8,
)
curve = result["rate_distortion"].to_dataset().mean("example")
print(f"{'beta':>8} {'rate':>8} {'distortion':>11}")
for beta in (1.0, 3.0, 10.0, 30.0, 100.0, 500.0):
    point = curve.sel(beta=beta, method="nearest")
    print(
        f"{float(point.beta):8.2f} {float(point.rate):8.2f} "
        f"{float(point.distortion):11.4f}"
    )
gap = result["bdmc"]["gap"].mean("example")
for beta, value in zip(gap["beta"].values, gap.values, strict=True):
    print(f"BDMC gap at beta* = {beta:g}: {value:.3f} nats")
print(f"gradient evaluations: {result.attrs['num_gradient_evaluations']:,}")
print(f"wall time: {result.attrs['wall_time_seconds']:.1f} s")

rdppl.to_netcdf(result, out / "mlp_rd.nc")
ax = rdppl.plot.plot_rd_curve(result, labels=["MLP generator"], log_distortion=True)
ax.figure.savefig(out / "mlp_rd.png", dpi=120, bbox_inches="tight")
plt.close(ax.figure)
print(f"wrote {out / 'mlp_rd.nc'} and {out / 'mlp_rd.png'}")
