"""VAEs and GANs trade rate for distortion differently (Huang et al., 2020, 6.2).

Huang et al. compare the rate-distortion curves of VAEs of several code sizes with
those of WGAN-GP generators of several code sizes and depths (their Fig. 4a and Fig.
5a, MNIST). They plot the rate R (nats, vertical axis) against the squared-error
distortion D (horizontal axis), so "left" means a lower distortion and "down" a lower
rate. This example does the same on scikit-learn's 8x8 digits (pixel / 16, continuous):

1. trains beta-VAEs with 2, 5, 10 and 20 latents (:func:`rdppl.train_beta_vae`, rate
   weight 1, Gaussian decoder of one fixed standard deviation for all models: the
   maximum-likelihood noise of probabilistic PCA with 10 components, a data-determined
   stand-in for the global decoder variance Huang et al. learn);
2. trains WGAN-GP generators (``examples/_gan.py``) with 2 and 10 latents, each
   "shallow" (1 hidden layer) and "deep" (2 hidden layers, the depth of the VAE
   decoders, as in the paper where the deep GAN shares the VAE's architecture);
3. runs :func:`rdppl.rd_curve` with ``distortion="squared_error"`` (the distortion of
   the paper, the same for every model, so the curves are comparable) on the same
   held-out digits, and reads off, example by example, the distortion at a low rate
   (2 nats), at a mid rate (5 nats) and at the largest inverse temperature (the
   high-rate end of the curve);
4. checks each clause of the finding with standard errors over test examples (the
   models are compared on the same examples, so differences are paired).

Run::

    python examples/02_vae_vs_gan.py --out 02-out          # full: a few minutes
    python examples/02_vae_vs_gan.py --out 02-out --tiny   # seconds, for tests
"""

import _gallery

run = _gallery.start(__file__, __doc__)

import _gan  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import rdppl  # noqa: E402

SETTINGS = {
    "vae_latent_dims": run.pick(full=[2, 5, 10, 20], tiny=[2, 5]),
    "vae_depth": 2,
    "vae_steps": run.pick(full=3000, tiny=100),
    "vae_learning_rate": 1e-3,
    # (latent_dim, hidden layers) of each GAN; Huang et al.'s shallow GANs have one
    # hidden layer, the deep ones the depth of the VAE decoder.
    "gans": run.pick(full=[(2, 1), (10, 1), (2, 2), (10, 2)], tiny=[(2, 1), (5, 1)]),
    "gan_steps": run.pick(full=5000, tiny=50),
    "width": 128,
    "ppca_components_for_scale": 10,
    "num_examples": run.pick(full=24, tiny=3),
    "num_chains": run.pick(full=8, tiny=2),
    "num_temperatures": run.pick(full=400, tiny=30),
    # squared-error beta is a Gaussian precision 1 / (2 sigma^2): beta = 1000 is far
    # past the models' own posterior (beta ~ 22), where the distortion has levelled
    # off, i.e. the high-rate end of the curve. Radius 10 as in Huang et al.
    "beta_max": 1000.0,
    "sigmoid_radius": 10.0,
    "low_rate": 2.0,
    "mid_rate": 5.0,
    # "barely changes": GAN low-rate distortions within 10% of each other
    "low_rate_tolerance": 0.10,
}


def train_vae(train, latent_dim, scale, key):
    """One beta-VAE at rate weight 1; returns its decoder as an rdppl model."""
    tree = rdppl.train_beta_vae(
        train,
        rng_key=key,
        rate_weights=[1.0],
        latent_dim=latent_dim,
        likelihood="gaussian",
        scale=scale,
        width_size=SETTINGS["width"],
        depth=SETTINGS["vae_depth"],
        num_steps=SETTINGS["vae_steps"],
        optimizer=optax.adam(SETTINGS["vae_learning_rate"]),
        progress=run.progress,
    )
    (decoder,) = rdppl.trained_decoders(tree)
    return rdppl.decoder_model(
        decoder, latent_dim=latent_dim, likelihood="gaussian", scale=scale
    )


def train_generator(train, latent_dim, depth, scale, key):
    """One WGAN-GP generator wrapped as ``x ~ N(G(z), scale^2 I)``."""
    init_key, train_key = jax.random.split(key)
    state = _gan.init_gan(
        init_key,
        latent_dim=latent_dim,
        width=SETTINGS["width"],
        generator_depth=depth,
    )
    state = _gan.train_gan(
        state, train, rng_key=train_key, num_steps=SETTINGS["gan_steps"]
    )
    return _gan.generator_program(state.generator, scale=scale)


def squared_error_curve(program, data, key):
    """``(rate, distortion)``, each ``(example, beta)``, and the betas."""
    schedule = rdppl.sigmoid_schedule(
        SETTINGS["num_temperatures"],
        beta_max=SETTINGS["beta_max"],
        radius=SETTINGS["sigmoid_radius"],
    )
    result = rdppl.rd_curve(
        program,
        data,
        rng_key=key,
        schedule=schedule,
        num_chains=SETTINGS["num_chains"],
        distortion="squared_error",
        progress=run.progress,
    )
    curve = result["rate_distortion"].to_dataset()
    return curve["rate"].values, curve["distortion"].values, curve["beta"].values


def distortion_at_rate(rate, distortion, target):
    """Each example's distortion where its curve reaches ``target`` nats of rate.

    The curve of one example is traced in increasing beta; its estimated rate is made
    non-decreasing (a running maximum smooths Monte Carlo wiggles) before linear
    interpolation.
    """
    values = []
    for rates, distortions in zip(rate, distortion, strict=True):
        values.append(np.interp(target, np.maximum.accumulate(rates), distortions))
    return np.asarray(values)


def summarise(curve):
    """Per-example distortions at the low and mid rates and at the high-rate end."""
    rate, distortion, _ = curve
    return {
        "low": distortion_at_rate(rate, distortion, SETTINGS["low_rate"]),
        "mid": distortion_at_rate(rate, distortion, SETTINGS["mid_rate"]),
        "high": distortion[:, -1],
        "high_rate": rate[:, -1],
    }


def paired_check(name, statement, larger, smaller):
    """``larger - smaller > 0`` by 2 standard errors over the paired test examples."""
    mean, se = _gallery.mean_and_se(larger - smaller)
    return _gallery.check_positive(name, statement, mean, se)


def vae_checks(points, dims):
    small, large = dims[0], dims[-1]
    n = SETTINGS["num_examples"]
    return [
        paired_check(
            f"VAE high rate: D(VAE-{small}) - D(VAE-{large})",
            f"distortion at beta = {SETTINGS['beta_max']:g} (high-rate end); > 0: "
            f"the larger code reaches lower distortion (curve extends left); s.e. "
            f"over {n} paired test examples",
            points[f"VAE-{small}"]["high"],
            points[f"VAE-{large}"]["high"],
        ),
        paired_check(
            f"VAE low rate: D(VAE-{large}) - D(VAE-{small})",
            f"distortion at rate {SETTINGS['low_rate']:g} nats; > 0: the larger code "
            f"is worse at low rate (its curve lies above); s.e. over {n} paired "
            "test examples",
            points[f"VAE-{large}"]["low"],
            points[f"VAE-{small}"]["low"],
        ),
    ]


def gan_name(latent_dim, depth):
    return f"GAN-{latent_dim} {'shallow' if depth == 1 else 'deep'}"


def gan_checks(points, gans):
    n = SETTINGS["num_examples"]
    checks = []
    codes = sorted({code for code, _ in gans})
    depths = sorted({depth for _, depth in gans})
    for depth in depths:
        present = [code for code in codes if (code, depth) in gans]
        if len(present) < 2:
            continue
        small, large = gan_name(present[0], depth), gan_name(present[-1], depth)
        checks.append(
            paired_check(
                f"GAN code size, high rate: D({small}) - D({large})",
                f"distortion at beta = {SETTINGS['beta_max']:g}; > 0: the larger "
                f"code extends the curve to the left; s.e. over {n} paired examples",
                points[small]["high"],
                points[large]["high"],
            )
        )
    for code in codes:
        present = [depth for depth in depths if (code, depth) in gans]
        if len(present) < 2:
            continue
        shallow, deep = gan_name(code, present[0]), gan_name(code, present[-1])
        checks.append(
            paired_check(
                f"GAN depth, mid rate: D({shallow}) - D({deep})",
                f"distortion at rate {SETTINGS['mid_rate']:g} nats; > 0: the deeper "
                f"generator pushes the curve down; s.e. over {n} paired examples",
                points[shallow]["mid"],
                points[deep]["mid"],
            )
        )
    reference = gan_name(*gans[0])
    for code, depth in gans[1:]:
        other = gan_name(code, depth)
        difference = points[other]["low"] - points[reference]["low"]
        mean, se = _gallery.mean_and_se(difference)
        tolerance = SETTINGS["low_rate_tolerance"] * float(
            points[reference]["low"].mean()
        )
        checks.append(
            _gallery.check_within(
                f"GAN low rate: D({other}) - D({reference})",
                f"distortion at rate {SETTINGS['low_rate']:g} nats; holds if within "
                f"{SETTINGS['low_rate_tolerance']:.0%} of {reference}'s "
                f"({tolerance:.3g}) + 2 s.e. over {n} paired examples: low-rate "
                "distortion barely changes",
                mean,
                se,
                tolerance,
            )
        )
    return checks


def table_of(points):
    rows = []
    for name, values in points.items():
        row = [name]
        for key in ("low", "mid", "high", "high_rate"):
            mean, se = _gallery.mean_and_se(values[key])
            row.append(f"{mean:.3f} ± {se:.3f}")
        rows.append(row)
    return {
        "title": "Distortion (squared error) at fixed rates and at the high-rate end "
        "(mean ± s.e. over test examples)",
        "columns": [
            "model",
            f"D at R = {SETTINGS['low_rate']:g} nats",
            f"D at R = {SETTINGS['mid_rate']:g} nats",
            f"D at beta = {SETTINGS['beta_max']:g}",
            f"R at beta = {SETTINGS['beta_max']:g} (nats)",
        ],
        "rows": rows,
    }


def draw_figure(curves, vae_names, gan_names):
    plt = _gallery.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11.5, 4.5), sharey=True)
    for ax, names, title in [
        (axes[0], vae_names, "VAEs (code size)"),
        (axes[1], gan_names, "WGAN-GP generators (code size, depth)"),
    ]:
        for name in names:
            rate, distortion, _ = curves[name]
            style = "--" if "deep" in name else "-"
            ax.plot(distortion.mean(axis=0), rate.mean(axis=0), style, label=name)
        for level, label in [
            (SETTINGS["low_rate"], "low rate"),
            (SETTINGS["mid_rate"], "mid rate"),
        ]:
            ax.axhline(level, color="grey", lw=0.7, ls=":")
            ax.text(ax.get_xlim()[1], level, f" {label}", va="bottom", ha="right")
        ax.set_xscale("log")
        rdppl.plot.tidy_log_axis(ax.xaxis)
        ax.set_xlabel("distortion  ||x - x_hat||^2  (pixel/16 units, squared)")
        ax.set_title(title)
        ax.legend()
    axes[0].set_ylabel("rate  (nats)")
    figure.suptitle(
        f"AIS rate-distortion curves on {SETTINGS['num_examples']} held-out digits "
        "(mean over examples)"
    )
    figure.tight_layout()
    return _gallery.save_figure(run, figure)


def main():
    train, test = _gallery.load_digits(seed=run.seed)
    data = test[: SETTINGS["num_examples"]]
    scale = _gallery.observation_scale(train, SETTINGS["ppca_components_for_scale"])
    key = jax.random.key(run.seed)
    programs = {}
    for index, latent_dim in enumerate(SETTINGS["vae_latent_dims"]):
        programs[f"VAE-{latent_dim}"] = train_vae(
            train, latent_dim, scale, jax.random.fold_in(key, index)
        )
    for index, (latent_dim, depth) in enumerate(SETTINGS["gans"]):
        programs[gan_name(latent_dim, depth)] = train_generator(
            train, latent_dim, depth, scale, jax.random.fold_in(key, 100 + index)
        )
    # the same AIS key for every model: the differences are not from the seed
    curve_key = jax.random.fold_in(key, 1000)
    curves = {
        name: squared_error_curve(program, data, curve_key)
        for name, program in programs.items()
    }
    points = {name: summarise(curve) for name, curve in curves.items()}

    vae_names = [f"VAE-{d}" for d in SETTINGS["vae_latent_dims"]]
    gan_names = [gan_name(*g) for g in SETTINGS["gans"]]
    checks = vae_checks(points, SETTINGS["vae_latent_dims"]) + gan_checks(
        points, SETTINGS["gans"]
    )
    figure = draw_figure(curves, vae_names, gan_names)
    _gallery.finish(
        run,
        title="VAEs vs GANs: code size and depth on the rate-distortion curve",
        paper="Huang et al. (2020)",
        claim=(
            "Section 6.2, Fig. 4a and Fig. 5a (rate on the vertical axis against "
            "squared-error distortion): for VAEs, increasing the code size pushes the "
            "curve up and to the left, i.e. lower distortion at high rate but higher "
            "distortion at low rate; for GANs (WGAN-GP), a larger code extends the "
            "curve to the left, a deeper generator pushes it down (lower distortion "
            "at high and mid rates), and the low-rate distortion barely changes."
        ),
        checks=checks,
        figures=[figure],
        tables=[table_of(points)],
        settings={**SETTINGS, "observation_scale": scale},
        notes=NOTES,
    )


NOTES = (
    "VAEs: both clauses reproduce. At the high-rate end (beta = 1000) the 20-latent "
    "VAE reaches about 1 unit less distortion than the 2-latent one, while at a rate "
    "of 2 nats it needs about 0.5 more: the curves cross near 8 nats, as in Huang et "
    "al.'s Fig. 5a (at low rate the order is not strictly monotone between 10 and 20 "
    "latents). GANs: a larger code extends the curve to the left at both depths. The "
    "deeper generator pushes the curve down for 10 latents but not measurably for 2, "
    "where the 2-dimensional code, not the network, limits the reconstruction. The "
    "low-rate distortion stays within the tolerance for the deep GANs, but the "
    "shallow 10-latent GAN is about 20% worse at 2 nats than the shallow 2-latent "
    "one, so that clause is only partly reproduced; the low-rate end measures how "
    "well the generator's samples cover the test digits, which for GANs trained for "
    "5000 WGAN-GP steps on 1500 images (far less than Huang et al.'s MNIST GANs) is "
    "a property of each training run as much as of the architecture (we did not "
    "average over training seeds). "
    "All models share one fixed Gaussian observation scale (the maximum-likelihood "
    "PPCA noise with 10 components, 0.15); it only matters for training the VAEs, "
    "since the curves use the squared-error distortion, whose beta is a precision "
    "1/(2 sigma^2). Distortions at a fixed rate are read off each example's own AIS "
    "curve by interpolation, so every comparison is paired by test example and the "
    "standard errors are over examples (AIS noise is included in them). The rates "
    "(2 and 5 nats) and the 10% tolerance for 'barely changes' were fixed before the "
    "full run. Digits are 64-dimensional, so the code sizes (2 to 20) and the "
    "networks (width 128) are scaled down from the paper's MNIST models (up to 100 "
    "latents, 1024 units)."
)


if __name__ == "__main__":
    main()
