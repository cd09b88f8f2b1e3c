"""Streaming examples in batches (``batch_size=``): identical results, one compilation.

Every random number of a run depends on the key and the example's index, never on
which batch the example runs in, and the last batch is padded with copies of the last
example. A batched run is therefore the same computation as one big batch; its
numbers are bit-identical where XLA rounds a batch of any width the same way. That
holds for elementwise models (the one here) from width 2 up; matrix products over
the chains of several examples can be summed in another order for another width,
and HMC's accept/reject steps amplify such rounding into different, equally valid
chains (docs/guide.md, "Long runs").
"""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl
from rdppl.sampler import segments

SCALE = np.linspace(0.5, 2.0, 4).astype(np.float32)

# The runs here are short, on purpose: their health is not what is tested.
pytestmark = pytest.mark.filterwarnings("ignore::rdppl.RDWarning")


@rdppl.model(observed="x", reconstruction="x_hat")
def decoder(x=None):
    z = numpyro.sample("z", dist.Normal(0, 1).expand([4]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", jax.numpy.tanh(z) * SCALE)
    numpyro.sample("x", dist.Normal(x_hat, 0.3).to_event(1), obs=x)


def data(num_examples, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(num_examples, 4))
    return (np.tanh(z) * SCALE + 0.3 * rng.normal(size=(num_examples, 4))).astype(
        np.float32
    )


def assert_same_tree(left, right, rounding=0.0):
    """Equal trees; ``rounding``: a relative and absolute float32 rounding allowed."""
    for group in right.children:
        dataset = right[group].to_dataset()
        for name in dataset.data_vars:
            np.testing.assert_allclose(
                left[group][name].values,
                dataset[name].values,
                rtol=rounding,
                atol=rounding,
                err_msg=name,
            )


SETTINGS = dict(
    rng_key=jax.random.key(4),
    schedule=rdppl.sigmoid_schedule(30, beta_max=5.0),
    num_chains=4,
    chunk_size=16,
)


OPTIONS = dict(
    kernel=rdppl.HMC(num_leapfrog=3, mass_matrix="diagonal"),
    posterior_betas=[1.0],
    resample_threshold=0.5,
    tune_schedule=True,
)


@pytest.fixture(scope="module")
def whole():
    return rdppl.rd_curve(decoder, data(5), **SETTINGS, **OPTIONS)


@pytest.mark.parametrize("batch_size", [2, 3])  # both pad their last batch
def test_any_batch_size_gives_the_result_of_one_batch(whole, batch_size):
    batched = rdppl.rd_curve(
        decoder, data(5), batch_size=batch_size, **SETTINGS, **OPTIONS
    )
    assert_same_tree(batched, whole)
    assert (
        batched.attrs["num_gradient_evaluations"]
        == (whole.attrs["num_gradient_evaluations"])
    )


def test_bdmc_and_log_likelihood_in_batches():
    x = data(3)
    settings = dict(rng_key=jax.random.key(2), num_chains=4, chunk_size=8)
    whole = rdppl.log_likelihood(decoder, x, num_temperatures=20, **settings)
    batched = rdppl.log_likelihood(
        decoder, x, num_temperatures=20, batch_size=2, **settings
    )
    # jax 0.12.1 compiles the programs for 2 and for 3 examples with different
    # float32 rounding (4e-7 relative seen in log_marginal_likelihood, 4e-5 in
    # acceptance rates, which exponentiate energy errors)
    assert_same_tree(batched, whole, rounding=1e-4)
    bdmc = dict(
        betas=[1.0],
        schedule=rdppl.linear_schedule(10, beta_max=1.0),
        num_examples=3,
        **settings,
    )
    assert_same_tree(
        rdppl.bdmc(decoder, x, batch_size=2, **bdmc),
        rdppl.bdmc(decoder, x, **bdmc),
        rounding=1e-4,
    )


def test_batches_share_one_compilation():
    segment = segments.run_segment._cached
    rdppl.rd_curve(decoder, data(4), batch_size=2, **SETTINGS)
    compiled = segment._cache_size()
    # more examples, and a last batch that needs padding: no new segment program
    rdppl.rd_curve(decoder, data(7, seed=2), batch_size=2, **SETTINGS)
    assert segment._cache_size() == compiled


@pytest.mark.parametrize("value", [0, -1, 2.5, "2"])
def test_bad_batch_size_is_named(value):
    with pytest.raises((ValueError, TypeError), match="batch_size"):
        rdppl.rd_curve(decoder, data(2), batch_size=value, **SETTINGS)


def test_batch_size_must_split_over_devices():
    devices = jax.devices()[:1] * 2  # two entries: the check is on the count
    with pytest.raises(ValueError, match=r"batch_size \(3\) must be a multiple"):
        rdppl.rd_curve(decoder, data(8), batch_size=3, devices=devices, **SETTINGS)
