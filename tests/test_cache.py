"""JAX's persistent compilation cache: a second process skips compilation."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import rdppl

PROGRAM = textwrap.dedent(
    """
    import json
    import sys

    import jax
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    import rdppl

    events = {"hits": 0, "misses": 0}


    def count(event, **_):
        if event == "/jax/compilation_cache/cache_hits":
            events["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            events["misses"] += 1


    jax.monitoring.register_event_listener(count)
    rdppl.use_compilation_cache(sys.argv[1], min_compile_seconds=0)


    @rdppl.model(observed="x")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
        numpyro.sample("x", dist.Normal(z.sum(), 1.0), obs=x)


    rdppl.rd_curve(
        decoder,
        np.zeros(2, np.float32),
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(8, beta_max=1.0),
        num_chains=2,
        kernel=rdppl.HMC(num_leapfrog=2),
    )
    print(json.dumps(events))
    """
)


def run(program, directory):
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    output = subprocess.run(
        [sys.executable, str(program), str(directory)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.filterwarnings("ignore::rdppl.RDWarning")
def test_a_second_process_reuses_the_compiled_programs(tmp_path):
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    cache = tmp_path / "cache"
    first = run(program, cache)
    assert first["misses"] > 0  # (a program met twice in one process hits once)
    assert os.listdir(cache)
    second = run(program, cache)
    assert second["misses"] == 0 and second["hits"] >= first["misses"]


def test_bad_cache_settings_are_named():
    with pytest.raises(ValueError, match="min_compile_seconds must be >= 0"):
        rdppl.cache.use_compilation_cache("/tmp/x", min_compile_seconds=-1)
    with pytest.raises(TypeError, match="min_compile_seconds must be a number"):
        rdppl.cache.use_compilation_cache("/tmp/x", min_compile_seconds="1")
