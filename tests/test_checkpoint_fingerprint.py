"""The fingerprint's descriptions of settings (rdppl.sampler.fingerprint) and the
store's lock.

A description is equal for equal settings in any process of one environment (no
memory addresses, no hash-seed-dependent order) and differs where a setting that
reaches the computation differs: an array's content, a value a function closes over,
a jitted function's closure, a callable object's attributes.
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rdppl.sampler.checkpoint import Checkpoint, CheckpointStore
from rdppl.sampler.fingerprint import describe

ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


@given(
    hnp.arrays(
        st.sampled_from(["float32", "float64", "int32"]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        elements={"allow_nan": False, "min_value": -100, "max_value": 100},
    ),
    st.data(),
)
def test_arrays_are_described_by_content_dtype_and_shape(array, data):
    assert describe(array) == describe(array.copy())
    on_device = jnp.asarray(array)  # float32 unless x64 is enabled
    assert describe(on_device) == describe(np.asarray(on_device))
    index = data.draw(st.tuples(*(st.integers(0, n - 1) for n in array.shape)))
    changed = array.copy()
    changed[index] += 1
    assert describe(changed) != describe(array)
    assert describe(array.reshape(-1)) != describe(array) or array.ndim == 1
    assert describe(array.astype("complex64")) != describe(array)


SETS = textwrap.dedent(
    """
    from rdppl.sampler.fingerprint import describe

    print(describe({"leapfrog", "mass", "step", "doubling", "tree", "energy"}))
    """
)


def test_sets_are_described_in_the_same_order_in_every_process():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", SETS],
            env={**ENVIRONMENT, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    assert len(outputs) == 1


def jitted_step(weights):
    @jax.jit
    def step(position):
        return weights @ position

    return step


class Scaled:
    """A callable object whose setting lives in an attribute."""

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, position):
        return self.scale * position


def test_jitted_functions_and_callable_objects_show_what_they_hold():
    weights = np.eye(3)
    changed = weights.copy()
    changed[2, 1] = 0.5
    assert describe(jitted_step(weights)) == describe(jitted_step(weights.copy()))
    assert describe(jitted_step(weights)) != describe(jitted_step(changed))
    assert describe(Scaled(1.0)) == describe(Scaled(1.0))
    assert describe(Scaled(1.0)) != describe(Scaled(2.0))
    assert " at 0x" not in describe(jitted_step(weights)) + describe(Scaled(1.0))


def test_a_store_used_as_a_context_manager_releases_its_lock(tmp_path):
    path = tmp_path / "run.ckpt"
    with CheckpointStore(Checkpoint(path), {"function": "test"}) as store:
        assert store.lock is not None and store.lock.held
        assert os.path.exists(f"{path}.lock")
    assert not store.lock.held
    assert not os.path.exists(f"{path}.lock")
