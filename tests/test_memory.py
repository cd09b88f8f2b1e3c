"""Runs whose chains cannot fit in memory are refused up front (issue 18).

``num_chains=1e8`` used to end in XLA's ``RESOURCE_EXHAUSTED`` naming no argument.
"""

import re

import jax
import numpy as np
import pytest

import rdppl
from rdppl.sampler import memory
from rdppl.sampler.memory import InsufficientMemoryError

MiB = 2**20


@pytest.fixture
def linear(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    return model, data


def settings(**overrides):
    arguments = {
        "rng_key": jax.random.key(0),
        "schedule": rdppl.linear_schedule(3),
        "num_chains": 2,
        "kernel": rdppl.HMC(num_leapfrog=1),
    }
    arguments.update(overrides)
    return arguments


@pytest.fixture
def host_memory(monkeypatch):
    """Pretend the run holds its chains in host RAM, of a size the test sets."""
    available = [None]
    monkeypatch.setattr(memory, "device_memory", lambda device: None)
    monkeypatch.setattr(memory, "host_memory", lambda: available[0])
    return available


def test_normal_runs_pass_the_check(linear):
    model, data = linear
    result = rdppl.rd_curve(model, data, **settings(posterior_betas=[1.0]))
    assert np.all(np.isfinite(result["rate_distortion"]["log_z"].values))


def test_real_available_memory_is_reported():
    assert memory.host_memory() is None or memory.host_memory() > 0
    for device in jax.local_devices():
        free = memory.device_memory(device)
        assert free is None or free >= 0


def test_too_many_chains_name_num_chains(linear, host_memory):
    model, data = linear
    host_memory[0] = 64 * MiB
    with pytest.raises(InsufficientMemoryError) as caught:
        rdppl.rd_curve(model, data, **settings(num_chains=10**8))
    message = str(caught.value)
    assert message.startswith("rd_curve needs at least ")
    assert "64.0 MiB is available in host RAM" in message
    assert re.search(
        r"lower num_chains \(now 100000000\) or batch_size \(now None", message
    )
    assert isinstance(caught.value, MemoryError)
    assert isinstance(caught.value, ValueError)


def test_float_num_chains_1e8_is_refused_before_any_allocation(linear, host_memory):
    model, data = linear
    host_memory[0] = 2**30
    with pytest.raises(InsufficientMemoryError, match=r"num_chains \(now 100000000\)"):
        rdppl.rd_curve(model, data, **settings(num_chains=1e8))


def test_without_a_patch_absurd_runs_are_refused(linear):
    model, data = linear
    with pytest.raises(InsufficientMemoryError, match="num_chains"):
        rdppl.rd_curve(model, data, **settings(num_chains=10**13))


def test_batch_size_is_named_only_when_it_helps(linear, host_memory):
    model, data = linear
    host_memory[0] = 64 * MiB
    with pytest.raises(InsufficientMemoryError) as caught:
        rdppl.rd_curve(model, data, **settings(num_chains=10**8, batch_size=1))
    assert "batch_size" not in str(caught.value)


def test_records_of_many_temperatures_name_the_schedule(linear, host_memory):
    model, data = linear
    host_memory[0] = 1 * MiB
    with pytest.raises(InsufficientMemoryError, match=r"lower schedule \(now 100001"):
        rdppl.rd_curve(model, data, **settings(schedule=rdppl.linear_schedule(10**5)))


def test_captured_chains_name_posterior_betas(linear, host_memory):
    model, data = linear
    host_memory[0] = 4 * MiB
    betas = np.linspace(0.01, 1.0, 100)
    with pytest.raises(InsufficientMemoryError, match="posterior_betas"):
        rdppl.rd_curve(
            model,
            data,
            **settings(
                num_chains=10**4,
                schedule=rdppl.linear_schedule(2),
                posterior_betas=betas,
            ),
        )


def test_log_likelihood_and_bdmc_are_checked(linear, host_memory):
    model, data = linear
    host_memory[0] = 64 * MiB
    with pytest.raises(
        InsufficientMemoryError, match="^log_likelihood needs.*num_chains"
    ):
        rdppl.log_likelihood(
            model, data, rng_key=jax.random.key(0), num_chains=10**8, method="ais"
        )
    with pytest.raises(InsufficientMemoryError, match="^bdmc needs.*num_chains"):
        rdppl.bdmc(model, data, **settings(num_chains=10**8, betas=[1.0]))


def test_device_memory_is_compared_with_the_chains(linear, monkeypatch):
    model, data = linear
    monkeypatch.setattr(memory, "device_memory", lambda device: 8 * MiB)
    monkeypatch.setattr(memory, "host_memory", lambda: 2**40)
    with pytest.raises(InsufficientMemoryError, match=r"8\.0 MiB is free on "):
        rdppl.rd_curve(model, data, **settings(num_chains=10**6))
