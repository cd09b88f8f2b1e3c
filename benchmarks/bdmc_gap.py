"""BDMC gap of an MLP decoder against the number of AIS temperatures.

The setting of Huang et al. (2020)'s GAN-like decoders, scaled down: a fixed MLP
decoder ``z (10) -> 64 -> 256 -> x (64)`` with tanh hidden layers and random weights
(``N(0, 1/fan_in)``, so the outputs are O(1)), the ``squared_error`` distortion, and
for each ``beta*`` a BDMC run (:func:`rdppl.bdmc`) on ``num_examples`` data points
simulated at ``beta*``: forward AIS over the sigmoid schedule to ``beta_max`` truncated
at ``beta*`` (lower bound on ``log Z``) and reverse AIS from the exact sample (upper
bound). The gap ``upper - lower`` (mean over examples) bounds the error of AIS on such
data; it shrinks as the number of temperatures grows.

For every number of temperatures and ``beta*`` the script prints the mean gap and its
standard error over examples, the bounds, the wall time and the gradient evaluations
(preliminary step-size run, formal forward run and reverse run), writes them as JSON,
and plots the gap against the number of temperatures with
:func:`rdppl.plot.plot_bdmc_gap`. From the two largest numbers of temperatures it
extrapolates, with a power law ``gap ~ c K^-a``, the number of temperatures at which
the gap would fall below 1 nat.

Run ``python benchmarks/bdmc_gap.py`` (reference settings: 2000 and 10000
temperatures, about an hour on 2 CPU cores) or ``--quick`` for a check in a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr

import rdppl
from rdppl.plot import plot_bdmc_gap

LATENT, HIDDEN_1, HIDDEN_2, OBSERVED = 10, 64, 256, 64


@rdppl.model(observed="x", reconstruction="x_hat")
def mlp_decoder(params, x=None):
    """A fixed MLP decoder; its weights are an argument (traced, not recompiled)."""
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
    h = jnp.tanh(params["W1"] @ z + params["b1"])
    h = jnp.tanh(params["W2"] @ h + params["b2"])
    x_hat = numpyro.deterministic("x_hat", params["W3"] @ h + params["b3"])
    # The observation scale is irrelevant to the squared-error distortion.
    numpyro.sample("x", dist.Normal(x_hat, 1.0).to_event(1), obs=x)


def decoder_weights(seed: int) -> dict[str, np.ndarray]:
    """Random fixed weights ``N(0, 1/fan_in)`` and small biases (outputs are O(1))."""
    rng = np.random.default_rng(seed)
    sizes = [LATENT, HIDDEN_1, HIDDEN_2, OBSERVED]
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = (rng.normal(size=(fan_out, fan_in)) / math.sqrt(fan_in)).astype(
            np.float32
        )
        params[f"b{i}"] = (0.1 * rng.normal(size=fan_out)).astype(np.float32)
    return params


def output_scale(params: dict[str, np.ndarray], seed: int = 0) -> float:
    """Standard deviation of the decoder outputs under the prior (a sanity figure)."""
    z = np.random.default_rng(seed).normal(size=(4096, LATENT))
    h = np.tanh(z @ params["W1"].T + params["b1"])
    h = np.tanh(h @ params["W2"].T + params["b2"])
    return float(np.std(h @ params["W3"].T + params["b3"]))


def run_one(
    params: dict, num_temperatures: int, beta: float, key: jax.Array, args
) -> xr.DataTree:
    """One BDMC run at one ``beta*`` over the truncated sigmoid schedule."""
    schedule = rdppl.sigmoid_schedule(
        num_temperatures, beta_max=args.beta_max, radius=args.radius
    )
    return rdppl.bdmc(
        mlp_decoder,
        rng_key=key,
        betas=[beta],
        schedule=schedule,
        num_examples=args.num_examples,
        num_chains=args.num_chains,
        distortion="squared_error",
        kernel=rdppl.HMC(num_leapfrog=args.num_leapfrog),
        model_args=(params,),
        chunk_size=args.chunk_size,
        progress=args.progress,
    )


def summarise(tree: xr.DataTree) -> dict:
    """Mean gap (and standard error over examples), bounds, cost of one run."""
    bounds = tree["bdmc"].to_dataset().isel(beta=0)
    gap = bounds["gap"].values
    return {
        "gap": float(gap.mean()),
        "gap_standard_error": float(gap.std(ddof=1) / math.sqrt(gap.size)),
        "lower": float(bounds["lower"].mean()),
        "upper": float(bounds["upper"].mean()),
        "distortion": float(bounds["distortion"].mean()),
        "steps_to_beta_star": int(bounds["num_temperatures"].values[0]),
        "wall_time_seconds": float(tree.attrs["wall_time_seconds"]),
        "num_gradient_evaluations": int(tree.attrs["num_gradient_evaluations"]),
    }


def temperatures_for_one_nat(points: list[tuple[int, float]]) -> dict:
    """Extrapolate ``gap = c K^-a`` from the two largest ``K`` to ``gap = 1``."""
    (k1, g1), (k2, g2) = sorted(points)[-2:]
    if not (g1 > 0 and g2 > 0 and g2 < g1):
        return {"exponent": None, "temperatures_for_1_nat": None}
    exponent = math.log(g1 / g2) / math.log(k2 / k1)
    needed = k2 * g2 ** (1.0 / exponent) if g2 > 1 else k2
    return {"exponent": exponent, "temperatures_for_1_nat": needed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--betas", type=float, nargs="+", default=[3.0, 250.0, 500.0])
    parser.add_argument("--beta-max", type=float, default=500.0)
    parser.add_argument("--radius", type=float, default=4.0)
    parser.add_argument("--num-examples", type=int, default=10)
    parser.add_argument("--num-chains", type=int, default=16)
    parser.add_argument("--num-leapfrog", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--json", default="bdmc_gap.json", help="output JSON path")
    parser.add_argument("--plot", default="bdmc_gap.png", help="output figure path")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short check: 100 and 300 temperatures, 4 examples, 8 chains",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.temperatures = [100, 300]
        args.num_examples, args.num_chains = 4, 8

    params = decoder_weights(args.seed)
    print(
        f"MLP decoder {LATENT}-{HIDDEN_1}-{HIDDEN_2}-{OBSERVED} (tanh), output std "
        f"{output_scale(params):.2f}; squared error; sigmoid schedule to "
        f"{args.beta_max:g}, radius {args.radius:g}; {args.num_examples} examples, "
        f"{args.num_chains} chains, HMC with {args.num_leapfrog} leapfrog steps; "
        f"{jax.default_backend()} ({os.cpu_count()} CPUs)",
        flush=True,
    )
    header = (
        f"{'temps':>6} {'beta*':>6} {'steps':>6} {'gap':>8} {'+/-':>6} "
        f"{'lower':>9} {'upper':>9} {'wall s':>8} {'grad evals':>12}"
    )
    print(header)
    rows, trees = [], []
    key = jax.random.key(args.seed)
    for num_temperatures in args.temperatures:
        per_beta = []
        for beta in args.betas:
            key, run_key = jax.random.split(key)
            tree = run_one(params, num_temperatures, beta, run_key, args)
            row = {"num_temperatures": num_temperatures, "beta": beta}
            row.update(summarise(tree))
            rows.append(row)
            per_beta.append(tree["bdmc"].to_dataset())
            print(
                f"{num_temperatures:>6} {beta:>6g} {row['steps_to_beta_star']:>6} "
                f"{row['gap']:>8.3f} {row['gap_standard_error']:>6.3f} "
                f"{row['lower']:>9.2f} {row['upper']:>9.2f} "
                f"{row['wall_time_seconds']:>8.1f} "
                f"{row['num_gradient_evaluations']:>12,}",
                flush=True,
            )
        combined = xr.concat(per_beta, dim="beta")
        trees.append(xr.DataTree.from_dict({"/bdmc": combined}))

    extrapolation = {}
    if len(args.temperatures) >= 2:
        print("\nextrapolated power law gap = c K^-a (two largest K):")
        for beta in args.betas:
            points = [
                (r["num_temperatures"], r["gap"]) for r in rows if r["beta"] == beta
            ]
            fit = temperatures_for_one_nat(points)
            extrapolation[str(beta)] = fit
            if fit["exponent"] is None:
                print(f"  beta* = {beta:g}: gap did not shrink; no extrapolation")
            else:
                print(
                    f"  beta* = {beta:g}: a = {fit['exponent']:.2f}, gap < 1 nat at "
                    f"about {fit['temperatures_for_1_nat']:,.0f} temperatures"
                )

    settings = {k: v for k, v in vars(args).items() if k not in ("json", "plot")}
    record = {
        "settings": settings,
        "decoder_output_std": output_scale(params),
        "rows": rows,
        "extrapolation": extrapolation,
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            **rdppl.results.versions(),
        },
    }
    with open(args.json, "w") as handle:
        json.dump(record, handle, indent=2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    plot_bdmc_gap(args.temperatures, trees, ax=ax)
    ax.set_yscale("log")
    ax.set_title(
        f"MLP decoder, squared error, {args.num_chains} chains, "
        f"{args.num_leapfrog} leapfrog",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(args.plot, dpi=90)
    print(f"\nwrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
