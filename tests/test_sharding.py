"""Sharding examples across devices gives the same curve as one device.

JAX fixes the number of CPU devices at start-up, so the check runs in a subprocess
with two virtual host devices.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, numpy as np, numpyro, numpyro.distributions as dist, rdppl

    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 3))

    @rdppl.model(observed="x")
    def linear(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([3]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z, 0.5).to_event(1), obs=x)

    x = rng.normal(size=(4, 6))
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(30, beta_max=2.0),
        num_chains=4,
    )
    single = rdppl.rd_curve(linear, x, **settings)
    sharded = rdppl.rd_curve(linear, x, devices=jax.devices(), **settings)
    try:
        rdppl.rd_curve(linear, x[:3], devices=jax.devices(), **settings)
        error = ""
    except ValueError as caught:
        error = str(caught)
    print(json.dumps({
        "devices": len(jax.devices()),
        "single": single["rate_distortion"]["log_z"].values.tolist(),
        "sharded": sharded["rate_distortion"]["log_z"].values.tolist(),
        "error": error,
    }))
    """
)


@pytest.mark.slow
def test_sharded_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    import numpy as np

    single, sharded = np.array(report["single"]), np.array(report["sharded"])
    assert single.shape == (4, 31)
    # Same keys, same arithmetic; only float32 reduction order may differ.
    np.testing.assert_allclose(sharded, single, rtol=1e-4, atol=1e-4)
    assert "multiple of the number of devices (2)" in report["error"]
