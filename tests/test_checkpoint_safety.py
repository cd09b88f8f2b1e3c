"""Resume never returns a wrong result (issue 18, items 5-9).

A checkpoint is refused with :class:`rdppl.CheckpointError` when the model's arrays
changed (a weight column the fixed-point values cannot see), when the kernel's
function changed (MALA and Barker built the same way), when ``batch_size`` changed,
while another process holds it, and when the file is damaged, crafted, of an older
format, a symbolic link, or in a missing directory.
"""

import io
import os
import subprocess
import sys
import textwrap
import zipfile

import blackjax
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rdppl
from rdppl.sampler.checkpoint import CheckpointStore

pytestmark = pytest.mark.filterwarnings("ignore::rdppl.RDWarning")

ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def linear_model(weights):
    @rdppl.model(observed="x")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([5]).to_event(1))
        numpyro.sample("x", dist.Normal(weights @ z, 0.5).to_event(1), obs=x)

    return decoder


@rdppl.model(observed="x")
def argument_model(weights, x=None):
    z = numpyro.sample("z", dist.Normal(0, 1).expand([5]).to_event(1))
    numpyro.sample("x", dist.Normal(weights @ z, 0.5).to_event(1), obs=x)


WEIGHTS = np.random.default_rng(0).normal(size=(8, 5))
DATA = np.random.default_rng(1).normal(size=(4, 8))
MODEL = linear_model(WEIGHTS)  # one program: its runs share one compilation
SETTINGS = dict(
    rng_key=jax.random.key(0),
    schedule=rdppl.linear_schedule(24, beta_max=1.0),
    num_chains=2,
    chunk_size=8,
)


class Interrupt(Exception):
    pass


def interrupted(path, saves=1, **changes):
    """Run ``rd_curve`` with a checkpoint and stop it after ``saves`` saves."""
    original = CheckpointStore.save_progress
    count = {"n": 0}

    def save_then_stop(self, run, arrays):
        original(self, run, arrays)
        count["n"] += 1
        if count["n"] == saves:
            raise Interrupt

    CheckpointStore.save_progress = save_then_stop
    try:
        with pytest.raises(Interrupt):
            call(rdppl.Checkpoint(path, every_seconds=0), **changes)
    finally:
        CheckpointStore.save_progress = original


def call(checkpoint=None, model=None, **changes):
    arguments = {"data": DATA, **SETTINGS, **changes}
    return rdppl.rd_curve(model or MODEL, checkpoint=checkpoint, **arguments)


@pytest.fixture(scope="module")
def reference():
    return call()


def assert_same(result, reference):
    for name in reference["rate_distortion"].data_vars:
        np.testing.assert_array_equal(
            result["rate_distortion"][name].values,
            reference["rate_distortion"][name].values,
        )


# --- 5: the model's arrays --------------------------------------------------------


@pytest.mark.parametrize("column", [0, 2])  # 2: zero in the old fixed points
def test_a_changed_weight_column_is_detected(tmp_path, reference, column):
    path = tmp_path / "run.ckpt"
    interrupted(path, saves=1)
    changed = WEIGHTS.copy()
    changed[:, column] += 1.0
    with pytest.raises(rdppl.CheckpointError, match=r"model.*differ"):
        call(path, model=linear_model(changed))
    assert_same(call(path), reference)  # the unchanged model resumes


def test_changed_model_args_are_detected(tmp_path):
    path = tmp_path / "run.ckpt"
    call(path, model=argument_model, model_args=(WEIGHTS,))
    changed = WEIGHTS.copy()
    changed[3, 2] += 0.5
    with pytest.raises(rdppl.CheckpointError, match=r"model.*differ"):
        call(path, model=argument_model, model_args=(changed,))


FINGERPRINT = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from test_checkpoint_safety import DATA, SETTINGS, WEIGHTS, linear_model
    from rdppl.sampler.checkpoint import fingerprint
    from rdppl.program.prepare import prepare_model

    target, data = prepare_model(
        linear_model(WEIGHTS), DATA, distortion="nll", observed=None,
        reconstruction=None, model_args=(), model_kwargs=None)
    print(json.dumps(fingerprint("rd_curve", target, data, dict(
        kernel=None, rng_key=jax.random.key(0), schedule=np.linspace(0, 1, 5)))))
    """
)


def test_the_fingerprint_is_the_same_in_another_process(tmp_path):
    import json

    script = tmp_path / "fingerprint.py"
    script.write_text(FINGERPRINT)
    output = subprocess.run(
        [sys.executable, str(script), os.path.dirname(__file__)],
        env={**ENVIRONMENT, "PYTHONHASHSEED": "7"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from rdppl.program.prepare import prepare_model
    from rdppl.sampler.checkpoint import fingerprint

    target, data = prepare_model(
        MODEL,
        DATA,
        distortion="nll",
        observed=None,
        reconstruction=None,
        model_args=(),
        model_kwargs=None,
    )
    settings = dict(
        kernel=None, rng_key=jax.random.key(0), schedule=np.linspace(0, 1, 5)
    )
    here = fingerprint("rd_curve", target, data, settings)
    assert json.loads(output.splitlines()[-1]) == here


# --- 6: kernels by function identity ----------------------------------------------


def test_kernels_built_the_same_way_are_told_apart(tmp_path):
    mala = rdppl.BlackJAXKernel(
        step=blackjax.mcmc.mala.build_kernel(), init=blackjax.mcmc.mala.init
    )
    barker = rdppl.BlackJAXKernel(
        step=blackjax.mcmc.barker.build_kernel(), init=blackjax.mcmc.barker.init
    )
    path = tmp_path / "run.ckpt"
    call(path, kernel=mala)
    with pytest.raises(rdppl.CheckpointError, match=r"kernel.*differ"):
        call(path, kernel=barker)
    again = rdppl.BlackJAXKernel(
        step=blackjax.mcmc.mala.build_kernel(), init=blackjax.mcmc.mala.init
    )
    call(path, kernel=again)  # built again the same way: resumes


def test_kernel_settings_and_closures_are_described():
    from rdppl.sampler.fingerprint import describe

    def build(scale):
        def step(rng_key, state, logdensity_fn, step_size):
            return state * scale, None

        return step

    assert describe(build(1.0)) == describe(build(1.0))
    assert describe(build(1.0)) != describe(build(2.0))
    assert describe(rdppl.HMC(num_leapfrog=3)) != describe(rdppl.HMC(num_leapfrog=4))
    assert " at 0x" not in describe(build(1.0))


# --- 7: batch_size ----------------------------------------------------------------


def test_a_changed_batch_size_is_refused_and_the_same_one_resumes(tmp_path):
    path = tmp_path / "run.ckpt"
    interrupted(path, saves=2, batch_size=2)
    for batch_size in (None, 4):
        with pytest.raises(rdppl.CheckpointError, match="batch_size"):
            call(path, batch_size=batch_size)
    resumed = call(path, batch_size=2)
    assert_same(resumed, call(batch_size=2))
    with pytest.raises(rdppl.CheckpointError, match="batch_size"):
        call(path)  # a finished checkpoint too


# --- 8: one process per checkpoint ------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from rdppl.sampler.checkpoint_lock import lock_checkpoint  # light: no JAX

    lock = lock_checkpoint(sys.argv[1], RuntimeError)
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes the pipe
    """
)


def hold_lock(path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        env=ENVIRONMENT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def stop(holder):
    holder.stdin.close()
    holder.wait(30)
    holder.stdout.close()


def test_a_second_process_is_refused_while_the_first_holds_the_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    holder = hold_lock(path)
    try:
        with pytest.raises(
            rdppl.CheckpointError, match=rf"in use: process {holder.pid} holds"
        ):
            call(path)
        assert not path.exists()  # nothing written
    finally:
        stop(holder)
    call(path)  # the holder is gone: the lock is free


def test_the_lock_is_released_on_completion_and_on_an_exception(tmp_path, reference):
    path = tmp_path / "run.ckpt"
    interrupted(path, saves=1)
    stop(hold_lock(path))  # released although the traceback is alive
    result = call(path)
    assert not os.path.exists(f"{path}.lock")
    stop(hold_lock(path))
    assert_same(result, reference)


# --- 9: damaged, crafted, foreign or misplaced files ------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory, reference):
    """A checkpoint with a finished run and a running one, and the reference."""
    path = tmp_path_factory.mktemp("saved") / "run.ckpt"
    interrupted(path, saves=3)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert "run/0/done" in arrays and int(arrays["partial/run"]) == 1
    return path.read_bytes(), arrays, reference


def check_refused_or_right(path, reference):
    """The call raises CheckpointError or returns exactly the reference."""
    try:
        result = call(path)
    except rdppl.CheckpointError as error:
        assert "pickled" not in str(error)
        return error
    assert_same(result, reference)
    return None


def new_path(tmp_path_factory):
    return tmp_path_factory.mktemp("crafted") / "run.ckpt"


@settings(max_examples=20)
@given(content=st.binary(max_size=200))
def test_random_bytes_are_refused(tmp_path_factory, content):
    path = new_path(tmp_path_factory)
    path.write_bytes(content)
    with pytest.raises(rdppl.CheckpointError, match="cannot be read") as error:
        call(path)
    assert "pickled" not in str(error.value)
    assert path.read_bytes() == content  # kept


@given(fraction=st.floats(0.0, 0.999))
def test_truncated_checkpoints_are_refused(tmp_path_factory, saved, fraction):
    content, _, reference = saved
    path = new_path(tmp_path_factory)
    path.write_bytes(content[: int(len(content) * fraction)])
    assert check_refused_or_right(path, reference) is not None


def entries(arrays):
    return st.sampled_from(sorted(arrays))


@given(data=st.data())
def test_missing_entries_are_refused_or_harmless(tmp_path_factory, saved, data):
    _, arrays, reference = saved
    name = data.draw(entries(arrays))
    path = new_path(tmp_path_factory)
    np.savez(path.with_suffix(""), **{k: v for k, v in arrays.items() if k != name})
    os.replace(path.with_suffix(".npz"), path)
    check_refused_or_right(path, reference)


@given(data=st.data())
def test_entries_of_another_shape_or_dtype_are_refused(tmp_path_factory, saved, data):
    _, arrays, reference = saved
    names = [n for n in arrays if not n.startswith("meta/") and n != "partial/run"]
    name = data.draw(st.sampled_from(sorted(names)))
    original = arrays[name]
    value = data.draw(
        hnp.arrays(
            st.sampled_from(["float32", "float64", "int32", "bool", "complex64"]),
            hnp.array_shapes(min_dims=0, max_dims=4, max_side=5),
        ).filter(
            lambda v: v.shape != original.shape or v.dtype.kind != original.dtype.kind
        )
    )
    path = new_path(tmp_path_factory)
    np.savez(path.with_suffix(""), **{**arrays, name: value})
    os.replace(path.with_suffix(".npz"), path)
    refused = check_refused_or_right(path, reference)
    assert refused is not None or name == "run/0/done"  # a marker: only its presence


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"meta/fingerprint": None}, "fingerprint is missing or unreadable"),
        ({"meta/fingerprint": np.asarray("{not json")}, "fingerprint is missing"),
        ({"meta/fingerprint": np.asarray("[1, 2]")}, "fingerprint is missing"),
        ({"meta/fingerprint": np.arange(3)}, "fingerprint is missing"),
        ({"meta/format": np.asarray("rdppl-checkpoint-1")}, "another version"),
        ({"meta/format": None}, "not an rdppl checkpoint"),
        ({"partial/run": np.asarray(1.5)}, "partial/run"),
        ({"partial/done": np.asarray(10**6)}, "'done' is 1000000"),
        ({"partial/layout": np.asarray([0, 4, 4, 5])}, "batch_size"),
        ({"notes": np.asarray([object()], dtype=object)}, "Python objects"),
    ],
)
def test_crafted_checkpoints_are_refused(tmp_path, saved, changes, match):
    _, arrays, reference = saved
    crafted = {**arrays, **changes}
    crafted = {k: v for k, v in crafted.items() if v is not None}
    path = tmp_path / "run.ckpt"
    with open(path, "wb") as file:
        np.savez(file, **crafted)
    with pytest.raises(rdppl.CheckpointError, match=match) as error:
        call(path)
    assert "pickled" not in str(error.value)


def test_a_missing_directory_is_refused_up_front(tmp_path):
    path = tmp_path / "missing" / "run.ckpt"
    with pytest.raises(
        rdppl.CheckpointError, match=r"checkpoint=.*missing.*does not exist"
    ):
        call(path)


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path, dangling):
    target = tmp_path / "elsewhere.ckpt"
    if not dangling:
        target.write_bytes(b"precious")
    link = tmp_path / "run.ckpt"
    link.symlink_to(target)
    with pytest.raises(rdppl.CheckpointError, match="symbolic link"):
        call(link)
    assert target.exists() != dangling
    if not dangling:
        assert target.read_bytes() == b"precious"


def test_a_directory_at_the_path_is_refused(tmp_path):
    with pytest.raises(rdppl.CheckpointError, match="not a regular file"):
        call(tmp_path)


def test_a_damaged_member_is_refused(tmp_path, saved):
    content, _, _ = saved
    path = tmp_path / "run.ckpt"
    damaged = bytearray(content)
    # the middle of the largest member's data, every bit flipped
    members = zipfile.ZipFile(io.BytesIO(content)).infolist()
    member = max(members, key=lambda info: info.compress_size)
    data = member.header_offset + 30 + len(member.filename) + len(member.extra)
    middle = data + member.compress_size // 2
    damaged[middle : middle + 16] = bytes(
        b ^ 0xFF for b in damaged[middle : middle + 16]
    )
    path.write_bytes(bytes(damaged))
    with pytest.raises(rdppl.CheckpointError, match="damaged|cannot be read"):
        call(path)
