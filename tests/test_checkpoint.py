"""Checkpoint and resume (rdppl.sampler.checkpoint): bit-identical results after a kill.

A subprocess runs ``rd_curve`` with a checkpoint saved after every segment and is
killed with SIGKILL at a random moment while the preliminary or the reported run is
in progress; calling again in this process resumes from the file and must give
exactly the arrays of an uninterrupted call. ``bdmc`` and ``log_likelihood`` are
interrupted in-process (an exception raised by the store after a few saves).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import rdppl
from rdppl.sampler.checkpoint import CheckpointStore

# Short schedules on a sharp posterior: the runs' health is not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore::rdppl.RDWarning")

PROGRAM = textwrap.dedent(
    """
    import jax
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import rdppl

    W = np.random.default_rng(0).normal(size=(16, 3))


    @rdppl.model(observed="x")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([3]).to_event(1))
        numpyro.sample("x", dist.Normal(W @ z, 0.5).to_event(1), obs=x)


    rng = np.random.default_rng(1)
    DATA = rng.normal(size=(4, 3)) @ W.T + 0.5 * rng.normal(size=(4, 16))
    SETTINGS = dict(
        rng_key=jax.random.key(3),
        schedule=rdppl.sigmoid_schedule(400, beta_max=20.0),
        num_chains=8,
        chunk_size=8,
        posterior_betas=[1.0],
        resample_threshold=0.5,
        kernel=rdppl.HMC(num_leapfrog=10, mass_matrix="diagonal"),
    )


    def run(checkpoint=None):
        return rdppl.rd_curve(decoder, DATA, checkpoint=checkpoint, **SETTINGS)


    def run_bdmc(checkpoint=None):
        return rdppl.bdmc(
            decoder,
            DATA,
            checkpoint=checkpoint,
            rng_key=jax.random.key(8),
            betas=[2.0, 20.0],
            schedule=rdppl.sigmoid_schedule(400, beta_max=20.0),
            num_examples=4,
            num_chains=8,
            chunk_size=8,
            kernel=rdppl.HMC(num_leapfrog=10),
        )


    if __name__ == "__main__":
        import sys

        function = {"rd_curve": run, "bdmc": run_bdmc}[sys.argv[2]]
        function(rdppl.Checkpoint(sys.argv[1], every_seconds=0))
    """
)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "checkpointed_run.py"
    path.write_text(PROGRAM)
    namespace = {"__name__": "checkpointed_run"}
    exec(compile(PROGRAM, str(path), "exec"), namespace)  # noqa: S102
    return path, namespace


def saved_run(path):
    """The run number whose progress the file holds (-1: none), or None."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return int(archive["partial/run"]) if "partial/run" in archive else -1
    except (OSError, ValueError, KeyError, EOFError):
        return None


def assert_same_result(resumed, reference):
    for group in reference.children:
        for name in reference[group].data_vars:
            np.testing.assert_array_equal(
                resumed[group][name].values,
                reference[group][name].values,
                err_msg=f"{group}/{name}",
            )


@pytest.mark.parametrize(
    "function, run_number",
    [
        ("rd_curve", 0),  # the preliminary run
        ("rd_curve", 1),  # the reported run
        ("bdmc", 2),  # the reverse run at the first beta*
        ("bdmc", 3),  # the preliminary run at the second beta*
    ],
)
def test_a_run_killed_at_a_random_point_resumes_bit_identically(
    program, tmp_path, function, run_number
):
    path, namespace = program
    checkpoint = tmp_path / "run.ckpt"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    log = tmp_path / "child.log"
    with open(log, "wb") as output:
        child = subprocess.Popen(
            [sys.executable, str(path), str(checkpoint), function],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    rng = np.random.default_rng()
    try:
        deadline = time.monotonic() + 240
        while saved_run(checkpoint) != run_number:
            assert child.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the run never reached the phase"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))  # a random point within the phase
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before the kill"
    with np.load(checkpoint, allow_pickle=False) as archive:
        finished = sum(name.endswith("/done") for name in archive.files)
        running = int(archive["partial/run"]) if "partial/run" in archive else None
        done = int(archive["partial/done"]) if running is not None else None
    # killed while the run was in progress, or (the random delay may reach past it)
    # between runs or in a later one
    assert (running is not None and running >= run_number and 0 < done < 400) or (
        running is None and finished > run_number
    ), (running, done, finished)
    call = namespace["run" if function == "rd_curve" else "run_bdmc"]
    resumed = call(str(checkpoint))
    reference = call()
    assert_same_result(resumed, reference)
    # a finished checkpoint returns the result again without running anything
    again = call(str(checkpoint))
    assert_same_result(again, reference)


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch, saves):
    original = CheckpointStore.save_progress
    count = {"n": 0}

    def save_then_stop(self, run, arrays):
        original(self, run, arrays)
        count["n"] += 1
        if count["n"] == saves:
            raise Interrupt

    monkeypatch.setattr(CheckpointStore, "save_progress", save_then_stop)
    return lambda: monkeypatch.setattr(CheckpointStore, "save_progress", original)


@pytest.fixture
def linear(program):
    return program[1]["decoder"], program[1]["DATA"]


@pytest.mark.parametrize("saves", [1, 7])
def test_bdmc_resumes_after_an_interruption(linear, tmp_path, monkeypatch, saves):
    decoder, data = linear
    settings = dict(
        rng_key=jax.random.key(5),
        betas=[0.5, 2.0],
        schedule=rdppl.linear_schedule(40, beta_max=2.0),
        num_examples=3,
        num_chains=4,
        chunk_size=8,
        kernel=rdppl.HMC(num_leapfrog=3),
    )
    reference = rdppl.bdmc(decoder, data, **settings)
    checkpoint = rdppl.Checkpoint(tmp_path / "bdmc.ckpt", every_seconds=0)
    restore = interrupt_after(monkeypatch, saves)
    with pytest.raises(Interrupt):
        rdppl.bdmc(decoder, data, checkpoint=checkpoint, **settings)
    restore()
    resumed = rdppl.bdmc(decoder, data, checkpoint=checkpoint, **settings)
    for name in reference["bdmc"].data_vars:
        np.testing.assert_array_equal(
            resumed["bdmc"][name].values, reference["bdmc"][name].values
        )


@pytest.mark.parametrize("saves", [2, 5])
def test_a_curve_kept_at_few_points_resumes_bit_identically(
    linear, tmp_path, monkeypatch, saves
):
    """Blocks of 10 transitions straddle segments of 8: the partial sums resume."""
    decoder, data = linear
    settings = dict(
        rng_key=jax.random.key(4),
        schedule=rdppl.linear_schedule(40, beta_max=2.0),
        num_chains=4,
        chunk_size=8,
        num_curve_points=5,
        kernel=rdppl.HMC(num_leapfrog=3, mass_matrix="diagonal"),
    )
    reference = rdppl.rd_curve(decoder, data, **settings)
    assert reference["rate_distortion"]["beta"].size == 5
    checkpoint = rdppl.Checkpoint(tmp_path / "thin.ckpt", every_seconds=0)
    restore = interrupt_after(monkeypatch, saves)
    with pytest.raises(Interrupt):
        rdppl.rd_curve(decoder, data, checkpoint=checkpoint, **settings)
    restore()
    resumed = rdppl.rd_curve(decoder, data, checkpoint=checkpoint, **settings)
    assert_same_result(resumed, reference)
    with pytest.raises(rdppl.CheckpointError, match="num_curve_points|options"):
        rdppl.rd_curve(
            decoder, data, checkpoint=checkpoint, **{**settings, "num_curve_points": 6}
        )


def test_log_likelihood_resumes_after_an_interruption(linear, tmp_path, monkeypatch):
    decoder, data = linear
    settings = dict(
        rng_key=jax.random.key(6), num_temperatures=50, num_chains=4, chunk_size=8
    )
    reference = rdppl.log_likelihood(decoder, data, **settings)
    checkpoint = rdppl.Checkpoint(tmp_path / "ll.ckpt", every_temperatures=16)
    restore = interrupt_after(monkeypatch, 3)
    with pytest.raises(Interrupt):
        rdppl.log_likelihood(decoder, data, checkpoint=checkpoint, **settings)
    restore()
    resumed = rdppl.log_likelihood(decoder, data, checkpoint=checkpoint, **settings)
    reference_group = reference[list(reference.children)[0]]
    resumed_group = resumed[list(resumed.children)[0]]
    for name in reference_group.data_vars:
        np.testing.assert_array_equal(
            resumed_group[name].values, reference_group[name].values
        )


def test_different_arguments_name_what_differs(linear, tmp_path):
    decoder, data = linear
    path = tmp_path / "curve.ckpt"
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(10, beta_max=1.0),
        num_chains=4,
    )
    rdppl.rd_curve(decoder, data, checkpoint=path, **settings)
    changes = {
        "schedule": dict(schedule=rdppl.linear_schedule(11, beta_max=1.0)),
        "rng_key": dict(rng_key=jax.random.key(1)),
        "num_chains": dict(num_chains=5),
        "kernel": dict(kernel=rdppl.HMC(num_leapfrog=3)),
        "data": dict(data=data + 1.0),
    }
    for name, change in changes.items():
        arguments = {**settings, "data": data, **change}
        with pytest.raises(rdppl.CheckpointError, match=rf"{name}[ ,].*differ"):
            rdppl.rd_curve(decoder, checkpoint=path, **arguments)
    with pytest.raises(rdppl.CheckpointError, match="function"):
        rdppl.log_likelihood(
            decoder, data, rng_key=jax.random.key(0), checkpoint=path, num_chains=4
        )


def test_a_changed_model_is_detected(tmp_path):
    import numpyro
    import numpyro.distributions as dist

    def make(scale):
        @rdppl.model(observed="x")
        def decoder(x=None):
            z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
            numpyro.sample("x", dist.Normal(z.sum() * scale, 1.0), obs=x)

        return decoder

    data = np.zeros((2,), np.float32)
    path = tmp_path / "model.ckpt"
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(5, beta_max=1.0),
        num_chains=2,
        checkpoint=path,
    )
    rdppl.rd_curve(make(1.0), data, **settings)
    rdppl.rd_curve(make(1.0), data, **settings)  # the same model resumes
    with pytest.raises(rdppl.CheckpointError, match="model"):
        rdppl.rd_curve(make(2.0), data, **settings)


def test_foreign_or_damaged_files_are_refused_and_kept(linear, tmp_path):
    decoder, data = linear
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(5, beta_max=1.0),
        num_chains=2,
    )
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a checkpoint")
    with pytest.raises(rdppl.CheckpointError, match="notes.txt.*cannot be read"):
        rdppl.rd_curve(decoder, data, checkpoint=foreign, **settings)
    assert foreign.read_text() == "not a checkpoint"
    other = tmp_path / "other.npz"
    np.savez(other, values=np.arange(3))
    with pytest.raises(rdppl.CheckpointError, match="not an rdppl checkpoint"):
        rdppl.rd_curve(decoder, data, checkpoint=other, **settings)


@pytest.mark.parametrize(
    "checkpoint, error, match",
    [
        (3, TypeError, "checkpoint must be None, a path or rdppl.Checkpoint"),
        (
            lambda p: rdppl.Checkpoint(p, every_seconds=-1),
            ValueError,
            "every_seconds must be finite and >= 0, got -1",
        ),
        (
            lambda p: rdppl.Checkpoint(p, every_temperatures=0),
            ValueError,
            "every_temperatures must be None or an integer >= 1, got 0",
        ),
        (
            lambda p: rdppl.Checkpoint(p, every_seconds="often"),
            TypeError,
            "every_seconds must be a number of seconds",
        ),
    ],
)
def test_bad_checkpoint_arguments_are_named(linear, tmp_path, checkpoint, error, match):
    decoder, data = linear
    with pytest.raises(error, match=match):
        value = checkpoint(tmp_path / "x.ckpt") if callable(checkpoint) else checkpoint
        rdppl.rd_curve(
            decoder,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.linear_schedule(5, beta_max=1.0),
            checkpoint=value,
        )


def test_a_failed_save_warns_and_keeps_the_previous_checkpoint(
    linear, tmp_path, monkeypatch
):
    decoder, data = linear
    path = tmp_path / "curve.ckpt"
    settings = dict(
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(40, beta_max=1.0),
        num_chains=4,
        chunk_size=8,
    )
    reference = rdppl.rd_curve(decoder, data, **settings)
    from rdppl.results import files

    original = files.replace_file
    calls = {"n": 0}

    def flaky(target, write):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return original(target, write)

    monkeypatch.setattr(files, "replace_file", flaky)
    with pytest.warns(RuntimeWarning, match="could not save checkpoint"):
        result = rdppl.rd_curve(
            decoder,
            data,
            checkpoint=rdppl.Checkpoint(path, every_seconds=0),
            **settings,
        )
    np.testing.assert_array_equal(
        result["rate_distortion"]["log_z"].values,
        reference["rate_distortion"]["log_z"].values,
    )
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["meta/fingerprint"]))["function"] == "rd_curve"
