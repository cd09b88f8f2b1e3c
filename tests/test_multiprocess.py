"""Multi-process runs on JAX's distributed runtime equal a single-process run.

Two CPU processes on localhost (``jax.distributed.initialize``, Gloo collectives),
each with two virtual host devices, shard the examples over all four devices with
``devices=jax.devices()``; every process gets the whole result and only process 0
writes it. A single process with four virtual devices runs the same program
partitioned the same way, so the curves must agree bit for bit.
"""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

PROGRAM = textwrap.dedent(
    """
    import sys
    import warnings

    import jax

    mode, output = sys.argv[1], sys.argv[2]
    if mode == "distributed":
        process, port = int(sys.argv[3]), sys.argv[4]
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            f"localhost:{port}", num_processes=2, process_id=process
        )
    warnings.simplefilter("ignore")
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import rdppl

    SCALE = np.linspace(0.5, 2.0, 4).astype(np.float32)


    @rdppl.model(observed="x", reconstruction="x_hat")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([4]).to_event(1))
        x_hat = numpyro.deterministic("x_hat", jax.numpy.tanh(z) * SCALE)
        numpyro.sample("x", dist.Normal(x_hat, 0.3).to_event(1), obs=x)


    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    result = rdppl.rd_curve(
        decoder,
        x,
        rng_key=jax.random.key(0),
        schedule=rdppl.sigmoid_schedule(40, beta_max=5.0),
        num_chains=4,
        posterior_betas=[1.0],
        resample_threshold=0.5,
        devices=jax.devices(),
    )
    assert len(jax.devices()) == 4
    if jax.process_index() == 0:  # the coordinator writes the result
        np.savez(
            output,
            log_z=result["rate_distortion"]["log_z"].values,
            distortion=result["rate_distortion"]["distortion"].values,
            weights=result["weighted_posterior"]["log_weight"].values,
        )
    print("done", jax.process_index(), flush=True)
    """
)


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.filterwarnings("ignore::rdppl.RDWarning")
def test_two_processes_equal_one_process_with_the_same_devices(tmp_path):
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    path = os.pathsep.join(sys.path)
    two_devices = dict(
        os.environ,
        PYTHONPATH=path,
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    port = str(free_port())
    distributed = tmp_path / "distributed.npz"
    logs = [tmp_path / f"process{i}.log" for i in range(2)]
    processes = []
    for index in range(2):
        with open(logs[index], "wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(program),
                        "distributed",
                        str(distributed),
                        str(index),
                        port,
                    ],
                    env=two_devices,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        codes = [process.wait(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    single = tmp_path / "single.npz"
    subprocess.run(
        [sys.executable, str(program), "single", str(single)],
        env=dict(
            os.environ,
            PYTHONPATH=path,
            XLA_FLAGS="--xla_force_host_platform_device_count=4",
        ),
        check=True,
        capture_output=True,
        timeout=300,
    )
    with np.load(distributed) as left, np.load(single) as right:
        assert set(left.files) == {"log_z", "distortion", "weights"}
        for name in left.files:
            np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    assert not (tmp_path / "distributed1.npz").exists()
