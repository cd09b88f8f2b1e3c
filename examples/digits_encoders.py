"""Encoders against AIS on scikit-learn's 8x8 digits.

Trains, over one sweep of rate weights (objective ``distortion + rate_weight * rate``):

* beta-VAEs (Gaussian encoder and decoder, Alemi et al.'s variational rate);
* Echo autoencoders (exact information, Brekelmans et al.);
* amortised Gaussian encoders against the *frozen* decoder of the VAE trained at
  rate weight 1 (Huang et al., section 6.5);

then estimates the rate-distortion curve of that same decoder by AIS
(:func:`rdppl.rd_curve`), and plots all four on one figure. A point trained at
``rate_weight`` matches the AIS inverse temperature ``beta = 1 / rate_weight``.

The digits (1797 images, pixel values 0..16) are scaled to [0, 1] and binarised at 0.5;
the decoders are Bernoulli (the distortion is ``-log p(x|z)`` in nats, as for binary
MNIST in both papers). All curves are averaged over the same held-out examples.

Run::

    python examples/digits_encoders.py --out digits-out          # a few minutes
    python examples/digits_encoders.py --out digits-out --tiny   # seconds, for tests

Writes ``digits_encoders.png`` and ``summary.json`` to ``--out``.
"""

import argparse
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
import optax
from sklearn.datasets import load_digits

import rdppl
from rdppl.decoders import decoder_model
from rdppl.training import (
    train_amortized_encoder,
    train_beta_vae,
    train_echo_autoencoder,
    trained_decoders,
)

SETTINGS = {
    "default": {
        "rate_weights": [0.25, 0.5, 1.0, 2.0, 4.0],
        "latent_dim": 8,
        "width_size": 128,
        "num_steps": 4000,
        "batch_size": 128,
        "learning_rate": 1e-3,
        "ais_examples": 24,
        "ais_temperatures": 1000,
        "ais_chains": 16,
        "ais_beta_max": 10.0,
    },
    "tiny": {
        "rate_weights": [0.5, 1.0, 2.0],
        "latent_dim": 4,
        "width_size": 32,
        "num_steps": 200,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "ais_examples": 4,
        "ais_temperatures": 100,
        "ais_chains": 8,
        "ais_beta_max": 4.0,
    },
}


def load_binary_digits(seed):
    """Binarised digits, shuffled and split 1500 / 297."""
    images = load_digits().data / 16.0
    binary = (images > 0.5).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(binary))
    return binary[order[:1500]], binary[order[1500:]]


def ais_point(curve, temperature):
    """Mean rate and distortion at the AIS temperature nearest ``temperature``."""
    index = int(np.argmin(np.abs(curve["beta"].values - temperature)))
    return {
        "ais_temperature": float(curve["beta"].values[index]),
        "rate": float(curve["rate"].isel(beta=index).mean()),
        "distortion": float(curve["distortion"].isel(beta=index).mean()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--tiny", action="store_true", help="a few seconds of work")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    config = SETTINGS["tiny" if args.tiny else "default"]
    progress = not args.quiet
    args.out.mkdir(parents=True, exist_ok=True)

    train, test = load_binary_digits(args.seed)
    keys = jax.random.split(jax.random.key(args.seed), 4)
    common = {
        "rate_weights": config["rate_weights"],
        "latent_dim": config["latent_dim"],
        "width_size": config["width_size"],
        "num_steps": config["num_steps"],
        "batch_size": config["batch_size"],
        "optimizer": optax.adam(config["learning_rate"]),
        "eval_data": test,
        "progress": progress,
    }
    times = {}

    start = time.perf_counter()
    vae = train_beta_vae(train, rng_key=keys[0], **common)
    times["beta_vae"] = time.perf_counter() - start

    start = time.perf_counter()
    echo = train_echo_autoencoder(train, rng_key=keys[1], **common)
    times["echo"] = time.perf_counter() - start

    # The decoder whose curve AIS measures: the VAE trained at rate weight 1.
    decoder = trained_decoders(vae)[config["rate_weights"].index(1.0)]
    start = time.perf_counter()
    amortized = train_amortized_encoder(decoder, train, rng_key=keys[2], **common)
    times["amortized"] = time.perf_counter() - start

    # AIS is the expensive part: run it on the first few test examples and compare
    # every curve on those same examples.
    subset = slice(0, config["ais_examples"])
    start = time.perf_counter()
    ais = rdppl.rd_curve(
        decoder_model(decoder, latent_dim=config["latent_dim"]),
        test[subset],
        rng_key=keys[3],
        schedule=rdppl.sigmoid_schedule(
            config["ais_temperatures"], beta_max=config["ais_beta_max"]
        ),
        num_chains=config["ais_chains"],
        progress=progress,
    )
    times["ais"] = time.perf_counter() - start

    curve = ais["rate_distortion"].to_dataset()
    groups = {
        "beta_vae": (vae, "variational", "rate"),
        "echo": (echo, "echo", "information"),
        "amortized": (amortized, "variational", "rate"),
    }
    subsets = {}
    rows = []
    for name, (tree, group, rate_name) in groups.items():
        dataset = tree[group].to_dataset().isel(example=subset)
        subsets[name] = rdppl.results.make_tree({group: dataset}, name=name)
        for rate_weight in config["rate_weights"]:
            point = dataset.sel(rate_weight=rate_weight).mean("example")
            rows.append(
                {
                    "model": name,
                    "rate_weight": rate_weight,
                    "rate": float(point[rate_name]),
                    "distortion": float(point["distortion"]),
                }
            )
    # AIS weights the distortion: its inverse temperature is 1 / rate_weight.
    for rate_weight in config["rate_weights"]:
        point = ais_point(curve, 1.0 / rate_weight)
        rows.append({"model": "ais", "rate_weight": rate_weight, **point})

    # At temperature 1 the AIS point gives log p(x) = -(R + D) (Huang et al., 2c).
    at_one = ais_point(curve, 1.0)
    negative_log_likelihood = at_one["rate"] + at_one["distortion"]
    vae_at_one = next(
        r for r in rows if r["model"] == "beta_vae" and r["rate_weight"] == 1.0
    )
    summary = {
        "settings": {**config, "tiny": args.tiny, "seed": args.seed},
        "points": rows,
        "negative_log_likelihood_ais": negative_log_likelihood,
        "negative_elbo_vae": vae_at_one["rate"] + vae_at_one["distortion"],
        "echo_rate_floor": float(echo["echo"].attrs["rate_floor"]),
        "wall_time_seconds": times,
    }

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rdppl.plot import plot_rd_curve

    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    plot_rd_curve(
        ais,
        subsets["beta_vae"],
        subsets["echo"],
        subsets["amortized"],
        labels=["AIS, decoder of beta-VAE(1)", "beta-VAE", "Echo", "amortised encoder"],
        ax=ax,
    )
    ax.plot(
        vae_at_one["distortion"],
        vae_at_one["rate"],
        "k*",
        markersize=10,
        label="beta-VAE(1): decoder under AIS",
    )
    ax.axhline(summary["echo_rate_floor"], color="grey", lw=0.8, ls="-.")
    ax.set_xlim(right=1.1 * max(r["distortion"] for r in rows))
    ax.set_ylim(bottom=0, top=1.1 * max(r["rate"] for r in rows))
    ax.legend(fontsize="small")
    ax.set_title(f"Binarised 8x8 digits, {config['ais_examples']} test examples")
    fig.tight_layout()
    figure_path = args.out / "digits_encoders.png"
    fig.savefig(figure_path, dpi=110)
    plt.close(fig)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"{'model':>10} {'rate_weight':>11} {'rate':>8} {'distortion':>11}")
    for row in rows:
        print(
            f"{row['model']:>10} {row['rate_weight']:>11g} {row['rate']:>8.2f} "
            f"{row['distortion']:>11.2f}"
        )
    print(
        f"-log p(x) by AIS at temperature 1: {negative_log_likelihood:.2f} nats; "
        f"-ELBO of the VAE at rate weight 1: {summary['negative_elbo_vae']:.2f} nats"
    )
    print(
        "wall time (s): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in times.items())
    )
    print(f"wrote {figure_path}")
    if not all(
        math.isfinite(r["rate"]) and math.isfinite(r["distortion"]) for r in rows
    ):
        raise SystemExit("non-finite rate or distortion")


if __name__ == "__main__":
    main()
