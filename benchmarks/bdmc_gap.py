"""BDMC gap of an MLP decoder against the number of AIS temperatures.

The setting of Huang et al. (2020)'s GAN-like decoders, scaled down: a fixed MLP
decoder ``z (10) -> 64 -> 256 -> x (64)`` with tanh hidden layers and random weights
(``N(0, 1/fan_in)``, output layer rescaled to unit output standard deviation), the
``squared_error`` distortion, and for each ``beta*`` a BDMC run (:func:`rdppl.bdmc`)
on ``num_examples`` data points simulated at ``beta*``: forward AIS over the sigmoid
schedule to ``beta_max`` truncated at ``beta*`` (lower bound on ``log Z``) and reverse
AIS from the exact sample (upper bound). The gap ``upper - lower`` (mean over
examples) bounds the error of AIS on such data; it shrinks as the number of
temperatures grows.

For every schedule radius, number of temperatures and ``beta*`` the script prints the
mean gap and its standard error over examples, the bounds, the wall time (compilation
included) and the gradient evaluations (preliminary step-size run, formal forward run
and reverse run), writes them as JSON (with the gap of every example), and plots the
gap against the number of temperatures with :func:`rdppl.plot.plot_bdmc_gap`, one
panel per radius. A power law ``gap = c K^-a``, fitted to the gaps significantly above
zero, gives the number of temperatures at which the gap falls to 1 nat.

Run ``python benchmarks/bdmc_gap.py`` (2000 and 10000 temperatures, radius 4: about
8 minutes on 2 CPU cores), or, for the table and figure of ``docs/bdmc.md`` (about 20
minutes)::

    python benchmarks/bdmc_gap.py --temperatures 500 1000 2000 10000 --radii 4 10 \
        --chunk-size 2500 --json bdmc_gap.json --plot docs/bdmc_gap.png

``--quick`` checks the script in a minute; ``--replot JSON`` redraws the figure from
an earlier run's JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys

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
    """Random fixed weights ``N(0, 1/fan_in)``, small biases, unit output scale."""
    rng = np.random.default_rng(seed)
    sizes = [LATENT, HIDDEN_1, HIDDEN_2, OBSERVED]
    params = {}
    for i, (fan_in, fan_out) in enumerate(
        zip(sizes[:-1], sizes[1:], strict=True), start=1
    ):
        params[f"W{i}"] = (
            rng.normal(size=(fan_out, fan_in)) / math.sqrt(fan_in)
        ).astype(np.float32)
        params[f"b{i}"] = (0.1 * rng.normal(size=fan_out)).astype(np.float32)
    # Rescale the output layer so that the outputs have unit standard deviation.
    scale = output_scale(params)
    params["W3"], params["b3"] = params["W3"] / scale, params["b3"] / scale
    return params


def output_scale(params: dict[str, np.ndarray], seed: int = 0) -> float:
    """Standard deviation of the decoder outputs under the prior (a sanity figure)."""
    z = np.random.default_rng(seed).normal(size=(4096, LATENT))
    h = np.tanh(z @ params["W1"].T + params["b1"])
    h = np.tanh(h @ params["W2"].T + params["b2"])
    return float(np.std(h @ params["W3"].T + params["b3"]))


def run_one(
    params: dict,
    num_temperatures: int,
    radius: float,
    beta: float,
    key: jax.Array,
    args: argparse.Namespace,
) -> xr.DataTree:
    """One BDMC run at one ``beta*`` over the truncated sigmoid schedule."""
    schedule = rdppl.sigmoid_schedule(
        num_temperatures, beta_max=args.beta_max, radius=radius
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
        "gaps": [float(g) for g in gap],
    }


def temperatures_for_one_nat(rows: list[dict]) -> dict:
    """Fit ``gap = c K^-a`` and solve for ``gap = 1``.

    A weighted least-squares line through ``(log K, log gap)`` over the runs whose
    mean gap is at least two standard errors above zero, each weighted by the inverse
    variance of its log gap, ``(gap / standard error)^2``.
    """
    points = [
        (r["num_temperatures"], r["gap"], r["gap_standard_error"])
        for r in rows
        if r["gap"] > 2 * r["gap_standard_error"]
    ]
    if len(points) < 2:
        return {"exponent": None, "temperatures_for_1_nat": None, "num_points": 0}
    log_k = np.log([p[0] for p in points])
    log_gap = np.log([p[1] for p in points])
    weights = np.array([(p[1] / p[2]) ** 2 for p in points])
    design = np.stack([np.ones_like(log_k), log_k], axis=1)
    root = np.sqrt(weights)[:, None]
    (intercept, slope), *_ = np.linalg.lstsq(design * root, log_gap * root[:, 0])
    if slope >= 0:
        return {"exponent": None, "temperatures_for_1_nat": None, "num_points": 0}
    return {
        "exponent": float(-slope),
        "temperatures_for_1_nat": float(math.exp(-intercept / slope)),
        "num_points": len(points),
    }


def gap_trees(rows: list[dict], radius: float) -> tuple[list[int], list[xr.DataTree]]:
    """Rebuild, for one radius, a ``bdmc`` group per number of temperatures."""
    temperatures = sorted(
        {r["num_temperatures"] for r in rows if r["radius"] == radius}
    )
    trees = []
    for num_temperatures in temperatures:
        chosen = [
            r
            for r in rows
            if r["radius"] == radius and r["num_temperatures"] == num_temperatures
        ]
        gap = xr.DataArray(
            np.array([r["gaps"] for r in chosen]).T,
            dims=("example", "beta"),
            coords={"beta": [r["beta"] for r in chosen]},
        )
        trees.append(xr.DataTree.from_dict({"/bdmc": xr.Dataset({"gap": gap})}))
    return temperatures, trees


def plot(record: dict, path: str) -> None:
    """Gap against temperatures, one panel per radius, with 2 standard error bars.

    Linear below 1 nat (where gaps consistent with zero may be negative), logarithmic
    above.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings, rows = record["settings"], record["rows"]
    radii = settings["radii"]
    fig, axes = plt.subplots(
        1, len(radii), figsize=(4.2 * len(radii), 3.4), sharey=True, squeeze=False
    )
    for ax, radius in zip(axes[0], radii, strict=True):
        temperatures, trees = gap_trees(rows, radius)
        # mean gap with 2 standard-error bars, linear below 1 nat (gaps consistent
        # with zero may be negative), logarithmic above
        plot_bdmc_gap(temperatures, trees, ax=ax, yscale="symlog")
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(f"sigmoid schedule, radius {radius:g}", fontsize="medium")
    fig.suptitle(
        f"BDMC gap (mean, 2 s.e.), MLP decoder, squared error: "
        f"{settings['num_examples']} examples, {settings['num_chains']} chains, "
        f"{settings['num_leapfrog']} leapfrog",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperatures", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--betas", type=float, nargs="+", default=[3.0, 250.0, 500.0])
    parser.add_argument("--beta-max", type=float, default=500.0)
    parser.add_argument(
        "--radii",
        type=float,
        nargs="+",
        default=[4.0],
        help="sigmoid schedule radii (4: Wu et al.; 10: Huang et al.)",
    )
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
    parser.add_argument(
        "--replot",
        metavar="JSON",
        help="redraw --plot from the JSON of an earlier run, without running",
    )
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.replot) as handle:
            plot(json.load(handle), args.plot)
        print(f"wrote {args.plot}")
        return 0
    if args.quick:
        args.temperatures = [100, 300]
        args.num_examples, args.num_chains = 4, 8

    params = decoder_weights(args.seed)
    print(
        f"MLP decoder {LATENT}-{HIDDEN_1}-{HIDDEN_2}-{OBSERVED} (tanh), output std "
        f"{output_scale(params):.2f}; squared error; sigmoid schedule to "
        f"{args.beta_max:g}; {args.num_examples} examples, {args.num_chains} chains, "
        f"HMC with {args.num_leapfrog} leapfrog steps; {jax.default_backend()} "
        f"({os.cpu_count()} CPUs)",
        flush=True,
    )
    print(
        f"{'radius':>6} {'temps':>6} {'beta*':>6} {'steps':>6} {'gap':>8} "
        f"{'+/-':>6} {'lower':>9} {'upper':>9} {'wall s':>8} {'grad evals':>12}"
    )
    rows = []
    key = jax.random.key(args.seed)
    for radius in args.radii:
        for num_temperatures in args.temperatures:
            for beta in args.betas:
                key, run_key = jax.random.split(key)
                tree = run_one(params, num_temperatures, radius, beta, run_key, args)
                row = {"radius": radius, "num_temperatures": num_temperatures}
                row.update(beta=beta, **summarise(tree))
                rows.append(row)
                print(
                    f"{radius:>6g} {num_temperatures:>6} {beta:>6g} "
                    f"{row['steps_to_beta_star']:>6} {row['gap']:>8.3f} "
                    f"{row['gap_standard_error']:>6.3f} {row['lower']:>9.2f} "
                    f"{row['upper']:>9.2f} {row['wall_time_seconds']:>8.1f} "
                    f"{row['num_gradient_evaluations']:>12,}",
                    flush=True,
                )

    extrapolation = []
    if len(args.temperatures) >= 2:
        print("\npower law gap = c K^-a fitted to the runs with gap > 2 s.e.:")
        for radius in args.radii:
            for beta in args.betas:
                fit = temperatures_for_one_nat(
                    [r for r in rows if r["beta"] == beta and r["radius"] == radius]
                )
                extrapolation.append({"radius": radius, "beta": beta, **fit})
                if fit["exponent"] is None:
                    print(f"  radius {radius:g}, beta* = {beta:g}: no fit")
                else:
                    print(
                        f"  radius {radius:g}, beta* = {beta:g}: a = "
                        f"{fit['exponent']:.2f} ({fit['num_points']} points), gap = 1 "
                        f"nat at about {fit['temperatures_for_1_nat']:,.0f} "
                        "temperatures"
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
    plot(record, args.plot)
    print(f"\nwrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
