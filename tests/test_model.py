"""Tracing: log prior (with Jacobians) and distortions against hand computations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from numpyro.distributions.transforms import StickBreakingTransform, biject_to
from scipy import stats
from scipy.special import expit

import rdppl
from rdppl.program.decorator import Model
from rdppl.program.tracing import trace_model

# float32 arithmetic inside JAX against float64 scipy
RTOL = 2e-5


def scale_model(x=None):
    s = numpyro.sample("s", dist.Gamma(2.0, 3.0))
    numpyro.sample("x", dist.Normal(0.0, s).expand([3]).to_event(1), obs=x)


def decoder(A, x=None, *, offset=0.0):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", jnp.tanh(A @ z) + offset)
    numpyro.sample("x", dist.Normal(x_hat, 0.7).to_event(1), obs=x)


def many_sites(x=None):
    a = numpyro.sample("a", dist.Normal(1.0, 2.0))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0).expand([2, 3]).to_event(2))
    c = numpyro.sample("c", dist.HalfNormal(1.5).expand([2]).to_event(1))
    d = numpyro.sample("d", dist.Uniform(-1.0, 2.0))
    # a simplex-valued site defined as the push-forward of N(0, I_2) through the
    # stick-breaking bijection (cheap to sample, unlike a Dirichlet)
    e = numpyro.sample(
        "e",
        dist.TransformedDistribution(
            dist.Normal(0.0, 1.0).expand([2]).to_event(1), StickBreakingTransform()
        ),
    )
    loc = a + jnp.sum(b) + jnp.sum(c) + d + 2.0 * e[0]
    numpyro.sample("x", dist.Normal(loc, 1.0), obs=x)


def l1(x, x_hat):
    return jnp.sum(jnp.abs(x - x_hat))


A = np.array([[1.0, -0.5], [0.3, 2.0], [-1.2, 0.4]])
X3 = np.array([0.3, -1.1, 0.8])


def test_constrained_site_includes_log_jacobian():
    spec = trace_model(rdppl.model(scale_model, observed="x"), X3)
    for u in [-1.3, 0.0, 0.7]:
        log_prior, distortion = eqx.filter_jit(spec.log_prior_and_distortion)(
            jnp.array([u]), jnp.asarray(X3)
        )
        s = np.exp(u)
        # prior density of s = exp(u) in u-space: Gamma(2, rate 3) pdf times ds/du = s
        expected_prior = stats.gamma.logpdf(s, a=2.0, scale=1 / 3.0) + u
        expected_distortion = -np.sum(stats.norm.logpdf(X3, 0.0, s))
        np.testing.assert_allclose(log_prior, expected_prior, rtol=RTOL)
        np.testing.assert_allclose(distortion, expected_distortion, rtol=RTOL)


def test_prior_samples_are_unconstrained_prior_draws():
    spec = trace_model(rdppl.model(scale_model, observed="x"), X3)
    keys = jax.random.split(jax.random.key(0), 4000)
    draws = eqx.filter_jit(jax.vmap(lambda k: spec.sample_initial(k, jnp.asarray(X3))))(
        keys
    )
    assert draws.shape == (4000, 1)
    s = np.exp(np.asarray(draws[:, 0], dtype=np.float64))
    # Gamma(2, rate 3): mean 2/3, variance 2/9; 5 standard errors
    assert abs(s.mean() - 2 / 3) < 5 * np.sqrt(2 / 9 / 4000)
    assert abs(s.var() - 2 / 9) < 5 * np.sqrt(np.var((s - 2 / 3) ** 2) / 4000)


@pytest.mark.parametrize("distortion", ["nll", "squared_error", l1])
@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_distortions_and_arguments_pass_through(distortion, offset):
    spec = trace_model(
        rdppl.model(decoder, observed="x", reconstruction="x_hat"),
        X3,
        distortion=distortion,
        model_args=(jnp.asarray(A),),
        model_kwargs={"offset": offset},
    )
    z = np.array([0.4, -0.9])
    log_prior, value = eqx.filter_jit(spec.log_prior_and_distortion)(
        jnp.asarray(z), jnp.asarray(X3)
    )
    x_hat = np.tanh(A @ z) + offset
    expected = {
        "nll": -np.sum(stats.norm.logpdf(X3, x_hat, 0.7)),
        "squared_error": np.sum((X3 - x_hat) ** 2),
    }.get(distortion, np.sum(np.abs(X3 - x_hat)))
    np.testing.assert_allclose(log_prior, np.sum(stats.norm.logpdf(z)), rtol=RTOL)
    np.testing.assert_allclose(value, expected, rtol=RTOL)


def test_eager_equals_jit():
    spec = trace_model(
        rdppl.model(decoder, observed="x", reconstruction="x_hat"),
        X3,
        model_args=(jnp.asarray(A),),
    )
    arguments = (jnp.array([0.4, -0.9]), jnp.asarray(X3))
    eager = spec.log_prior_and_distortion(*arguments)
    jitted = eqx.filter_jit(spec.log_prior_and_distortion)(*arguments)
    np.testing.assert_allclose(eager, jitted, rtol=1e-6)


def test_multiple_latent_sites_of_different_shapes():
    example = jnp.asarray(0.7)
    spec = trace_model(rdppl.model(many_sites, observed="x"), example)
    structure = spec.structure
    assert [s.name for s in structure.latent_sites] == ["a", "b", "c", "d", "e"]
    assert [s.shape for s in structure.latent_sites] == [(), (2, 3), (2,), (), (3,)]
    assert [s.unconstrained_shape for s in structure.latent_sites] == [
        (),
        (2, 3),
        (2,),
        (),
        (2,),
    ]
    assert structure.num_latent_dimensions == 12
    assert structure.observed_shape == ()
    assert structure.observed_distribution == "Normal"
    assert structure.reconstruction_shape is None

    u = np.linspace(-1.1, 1.3, 12)
    # ravel_pytree flattens the dict of sites in sorted-key order
    pieces = {
        "a": u[0],
        "b": u[1:7].reshape(2, 3),
        "c": u[7:9],
        "d": u[9],
        "e": u[10:12],
    }
    sites = spec.site_values(jnp.asarray(u, jnp.float32), example)
    for name in ["a", "b"]:
        np.testing.assert_allclose(sites[name], pieces[name], rtol=1e-6)
    np.testing.assert_allclose(sites["c"], np.exp(pieces["c"]), rtol=1e-5)
    assert spec.sample_initial(jax.random.key(1), example).shape == (12,)

    log_prior, distortion = eqx.filter_jit(spec.log_prior_and_distortion)(
        jnp.asarray(u, jnp.float32), example
    )
    c = np.exp(pieces["c"])
    d = -1.0 + 3.0 * expit(pieces["d"])
    to_simplex = biject_to(dist.constraints.simplex)
    e = np.asarray(to_simplex(jnp.asarray(pieces["e"])), dtype=np.float64)
    assert e.shape == (3,)
    expected_prior = (
        stats.norm.logpdf(pieces["a"], 1.0, 2.0)
        + np.sum(stats.norm.logpdf(pieces["b"]))
        + np.sum(stats.halfnorm.logpdf(c, scale=1.5) + pieces["c"])
        # Uniform(-1, 2) through -1 + 3 sigmoid(u): density 1/3 times 3 s (1 - s)
        + np.log(expit(pieces["d"]))
        + np.log(expit(-pieces["d"]))
        # e is N(0, I) pushed through the same bijection that rdppl inverts, so in
        # unconstrained space its density is N(u_e; 0, I): the Jacobians cancel
        + np.sum(stats.norm.logpdf(pieces["e"]))
    )
    loc = pieces["a"] + pieces["b"].sum() + c.sum() + d + 2.0 * e[0]
    np.testing.assert_allclose(log_prior, expected_prior, rtol=RTOL)
    np.testing.assert_allclose(distortion, -stats.norm.logpdf(0.7, loc, 1.0), rtol=RTOL)


def plain_linear(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", A @ z)
    numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)


def test_plain_callable_with_observed():
    plain = trace_model(plain_linear, X3, observed="x")
    decorated = trace_model(rdppl.model(plain_linear, observed="x"), X3)
    # equal structure: the two share compiled code
    assert jax.tree.structure(plain) == jax.tree.structure(decorated)
    z = jnp.array([0.2, 0.3])
    np.testing.assert_array_equal(
        eqx.filter_jit(plain.log_prior_and_distortion)(z, jnp.asarray(X3)),
        eqx.filter_jit(decorated.log_prior_and_distortion)(z, jnp.asarray(X3)),
    )
    squared = trace_model(
        plain_linear,
        X3,
        distortion="squared_error",
        observed="x",
        reconstruction="x_hat",
    )
    _, value = eqx.filter_jit(squared.log_prior_and_distortion)(z, jnp.asarray(X3))
    np.testing.assert_allclose(value, np.sum((X3 - A @ np.asarray(z)) ** 2), rtol=RTOL)


def test_model_decorator_forms_and_overrides():
    decorated = rdppl.model(observed="x", reconstruction="x_hat")(plain_linear)
    direct = rdppl.model(plain_linear, observed="x", reconstruction="x_hat")
    assert isinstance(decorated, Model) and decorated == direct
    assert decorated.fn is plain_linear
    assert (decorated.observed, decorated.reconstruction) == ("x", "x_hat")
    # re-marking a Model replaces its site names and keeps the program
    renamed = rdppl.model(decorated, observed="y")
    assert renamed.fn is plain_linear and renamed.observed == "y"
    assert renamed.reconstruction is None
    # keyword arguments of trace_model override the decorator's names
    spec = trace_model(rdppl.model(plain_linear, observed="y"), X3, observed="x")
    assert (spec.structure.observed, spec.structure.reconstruction) == ("x", None)
    # still an ordinary NumPyro program
    trace = handlers.trace(handlers.seed(decorated, 0)).get_trace()
    assert trace["x"]["value"].shape == (3,)
    assert not trace["x"]["is_observed"]


@pytest.mark.numpyro_promotion
def test_inspect_reports_structure_with_plate_and_reconstruction():
    def plated(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        x_hat = numpyro.deterministic("x_hat", z * jnp.ones(4))
        with numpyro.plate("pixels", 4):
            numpyro.sample("x", dist.Bernoulli(logits=x_hat), obs=x)

    example = jnp.array([0, 1, 1, 0])
    spec = trace_model(plated, example, observed="x", reconstruction="x_hat")
    structure = spec.structure
    assert structure.observed_shape == (4,)
    assert structure.observed_distribution == "BernoulliLogits"
    assert structure.reconstruction_shape == (4,)
    assert structure.num_latent_dimensions == 1
    z = 0.4
    _, value = eqx.filter_jit(spec.log_prior_and_distortion)(jnp.array([z]), example)
    expected = -np.sum(stats.bernoulli.logpmf([0, 1, 1, 0], expit(z)))
    np.testing.assert_allclose(value, expected, rtol=RTOL)


def multi_site(W, x=None):
    """Constrained latents, a plate sized by the data, a deterministic site."""
    scale = numpyro.sample("scale", dist.LogNormal(0.0, 0.5))
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(3)))
    with numpyro.plate("pixels", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    x_hat = numpyro.deterministic("x_hat", W * z + weights[0])
    numpyro.sample("x", dist.Normal(x_hat, scale).to_event(1), obs=x)


def test_log_density_equals_numpyro_potential_energy():
    W = jnp.array([0.5, -1.0, 2.0, 0.3])
    x = jnp.array([0.2, -0.4, 1.1, 0.0])
    spec = trace_model(rdppl.model(multi_site, observed="x"), x, model_args=(W,))
    conditioned = handlers.condition(multi_site, data={"x": x})
    shapes = {
        site.name: site.unconstrained_shape for site in spec.structure.latent_sites
    }
    assert shapes == {"scale": (), "weights": (2,), "z": (4,)}
    for seed in range(3):
        u = jax.random.normal(jax.random.key(seed), (7,))
        sites = spec.site_values(u, x)
        free = numpyro.infer.util.unconstrain_fn(
            conditioned, (W,), {"x": x}, {n: sites[n] for n in shapes}
        )
        potential = numpyro.infer.util.potential_energy(
            conditioned, (W,), {"x": x}, free
        )
        log_prior, distortion = eqx.filter_jit(spec.log_prior_and_distortion)(u, x)
        np.testing.assert_allclose(log_prior - distortion, -potential, rtol=RTOL)
        np.testing.assert_allclose(
            sites["x_hat"], W * sites["z"] + sites["weights"][0], rtol=1e-6
        )


def test_observed_argument_receives_the_example():
    seen = []

    def reads_shape(x=None):
        seen.append(None if x is None else tuple(x.shape))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0]]).to_event(1))
        numpyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    spec = trace_model(reads_shape, X3, observed="x")
    assert spec.structure.num_latent_dimensions == 3
    assert set(seen) == {(3,)}


def test_scaled_or_masked_latents_are_refused():
    def scaled(x=None):
        with handlers.scale(scale=2.0):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def masked(x=None):
        with handlers.mask(mask=False):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def subsampled(x=None):
        with numpyro.plate("latents", 10, subsample_size=2):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(jnp.sum(z), 1.0), obs=x)

    with pytest.raises(ValueError, match="latent site 'z' has its log density scaled"):
        trace_model(scaled, 0.5, observed="x")
    with pytest.raises(ValueError, match="latent site 'z' is masked"):
        trace_model(masked, 0.5, observed="x")
    with pytest.raises(ValueError, match="subsampled plate"):
        trace_model(subsampled, 0.5, observed="x")


def test_scale_and_mask_on_the_observed_site_follow_numpyro():
    def weighted(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        with handlers.scale(scale=3.0), handlers.mask(mask=jnp.array([True, False])):
            numpyro.sample("x", dist.Normal(z, 1.0).expand([2]), obs=x)

    x = jnp.array([0.3, 10.0])
    spec = trace_model(weighted, x, observed="x")
    log_prior, distortion = spec.log_prior_and_distortion(jnp.array([0.2]), x)
    # the masked pixel is ignored, the other counts three times
    expected = -3.0 * stats.norm.logpdf(0.3, 0.2, 1.0)
    np.testing.assert_allclose(distortion, expected, rtol=RTOL)
    np.testing.assert_allclose(log_prior, stats.norm.logpdf(0.2), rtol=RTOL)


def test_unsupported_constructs_name_the_site():
    def duplicate(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.deterministic("z", 2.0 * z)
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match="share a name.*`z`"):
        trace_model(duplicate, 0.5, observed="x")

    def with_latent_reconstruction(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match="reconstruction site 'z' is a sample site"):
        trace_model(
            with_latent_reconstruction,
            0.5,
            observed="x",
            reconstruction="z",
            distortion="squared_error",
        )
