"""The preliminary run: its size (``preliminary_chains``) and what it hands on.

The preliminary run adapts the step sizes and mass matrices (and the schedule and
resampling); the reported run replays them frozen. Its chains are independent of
the reported run's, so its number changes the cost, not the unbiasedness
(``test_numerics.py::test_every_option_keeps_the_estimate_unbiased``). With
``lookahead`` it hands on, for each transition, the settings it reached after
seeing that transition.
"""

import jax
import numpy as np
import pytest

import rdppl
from rdppl import validation
from rdppl.program.tracing import trace_model
from rdppl.sampler import protocol
from rdppl.sampler.records import Tuning

NUM_LEAPFROG = 3
SCHEDULE = rdppl.linear_schedule(6, beta_max=2.0)


def test_look_ahead_shifts_the_settings_back_by_one_transition():
    step_size = np.arange(1.0, 5.0)[:, None] * np.ones((1, 2))
    mass = np.arange(1.0, 5.0)[:, None, None] * np.ones((1, 2, 3))
    resample = np.array([[True, False], [False, False], [True, True], [False, True]])
    ahead = protocol.look_ahead(Tuning(step_size, mass, resample))
    np.testing.assert_array_equal(ahead.step_size[:, 0], [2.0, 3.0, 4.0, 4.0])
    np.testing.assert_array_equal(ahead.inverse_mass_matrix[:, 1, 0], [2, 3, 4, 4])
    np.testing.assert_array_equal(ahead.resample, resample)
    assert protocol.look_ahead(Tuning(step_size[:0], mass[:0])).step_size.shape[0] == 0


@pytest.mark.parametrize("lookahead", [False, True])
def test_the_reported_run_replays_what_the_preliminary_run_reached(
    linear_gaussian, lookahead
):
    model, _, _, _, data = linear_gaussian
    target = trace_model(model, data[0])
    kernel = rdppl.HMC(num_leapfrog=NUM_LEAPFROG)

    def run(look):
        return protocol.forward(
            target,
            kernel,
            rng_key=jax.random.key(1),
            data=data,
            betas=SCHEDULE,
            num_chains=4,
            options=protocol.ProtocolOptions(preliminary_chains=2, lookahead=look),
        )

    used, replayed = run(False), run(lookahead)
    expected = protocol.look_ahead(used.tuning) if lookahead else used.tuning
    np.testing.assert_array_equal(replayed.tuning.step_size, expected.step_size)
    # the step sizes do move along the path, so looking ahead changes them
    assert not np.allclose(used.tuning.step_size[1:], used.tuning.step_size[:-1])


def test_preliminary_chains_set_the_preliminary_cost(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    tree = rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(0),
        schedule=SCHEDULE,
        num_chains=8,
        preliminary_chains=3,
        tune_schedule=False,
        resample_threshold=0,
        kernel=rdppl.HMC(num_leapfrog=NUM_LEAPFROG),
    )
    # NUM_LEAPFROG per transition and one evaluation of the chains at the start
    per_chain = len(data) * ((len(SCHEDULE) - 1) * NUM_LEAPFROG + 1)
    assert tree.attrs["preliminary_gradient_evaluations"] == 3 * per_chain
    assert tree.attrs["num_gradient_evaluations"] == (3 + 8) * per_chain
    assert tree.attrs["preliminary_chains"] == 3


def test_the_default_preliminary_run_is_a_fraction_of_the_chains(linear_gaussian):
    kernel = rdppl.HMC()
    for num_chains in (1, 2, 4, 16, 64, 100):
        chains = validation.validate_preliminary_chains(None, num_chains, kernel)
        fraction = validation.DEFAULT_PRELIMINARY_FRACTION
        smallest = validation.MIN_PRELIMINARY_CHAINS
        wanted = int(np.ceil(fraction * num_chains))
        assert chains == min(num_chains, max(smallest, wanted))
    assert (
        validation.validate_preliminary_chains(
            None, 8, rdppl.HMC(adapt_step_size=False)
        )
        is None
    )


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (1, ValueError, "preliminary_chains must be at least 2"),
        (0, ValueError, "preliminary_chains"),
        (2.5, (TypeError, ValueError), "preliminary_chains"),
        ("4", ValueError, "preliminary_chains"),
    ],
)
def test_bad_preliminary_chains_are_named(linear_gaussian, value, error, match):
    model, _, _, _, data = linear_gaussian
    with pytest.raises(error, match=match):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=SCHEDULE,
            preliminary_chains=value,
        )


def test_preliminary_chains_need_the_preliminary_run(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    with pytest.raises(ValueError, match="adapt_step_size=False"):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=SCHEDULE,
            kernel=rdppl.HMC(adapt_step_size=False),
            preliminary_chains=4,
        )
