"""Compiled programs are released before a process reaches its mappings limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rdppl
from rdppl.sampler import mappings


@pytest.fixture(autouse=True)
def _no_mappings_held_elsewhere(monkeypatch):
    monkeypatch.setattr(mappings, "_HELD_ELSEWHERE", [0])


def _fake_proc(tmp_path, monkeypatch, in_use, limit):
    maps = tmp_path / "maps"
    maps.write_text("mapping\n" * in_use)
    limit_file = tmp_path / "max_map_count"
    limit_file.write_text(f"{limit}\n")
    monkeypatch.setattr(mappings, "_MAPS", str(maps))
    monkeypatch.setattr(mappings, "_MAX_MAP_COUNT", str(limit_file))


def test_counts_the_mappings_and_the_limit(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, 7, 100)
    assert mappings.memory_mappings() == (7, 100)


def test_no_limit_known_means_nothing_is_cleared(tmp_path, monkeypatch):
    monkeypatch.setattr(mappings, "_MAX_MAP_COUNT", str(tmp_path / "missing"))
    assert mappings.memory_mappings() is None
    assert mappings.release_compiled_programs(1e-9) is False


def test_below_the_fraction_nothing_is_cleared(tmp_path, monkeypatch):
    _fake_proc(tmp_path, monkeypatch, 50, 100)
    f = jax.jit(lambda x: x + 1)
    f(jnp.ones(3))
    assert mappings.release_compiled_programs(0.5) is False
    assert f._cache_size() == 1


def test_above_the_fraction_caches_are_cleared_with_a_warning_at_the_callers_line(
    tmp_path, monkeypatch
):
    _fake_proc(tmp_path, monkeypatch, 51, 100)
    f = jax.jit(lambda x: x * 2)
    f(jnp.ones(3))
    assert f._cache_size() == 1
    with pytest.warns(rdppl.RDWarning, match=r"51 memory mappings.*limit 100") as seen:
        assert mappings.release_compiled_programs(0.5) is True
    assert seen[0].filename == __file__
    assert f._cache_size() == 0
    np.testing.assert_array_equal(f(jnp.ones(3)), 2 * np.ones(3))  # compiles again


def test_clearing_gives_the_mappings_back():
    if mappings.memory_mappings() is None:
        pytest.skip("no /proc/self/maps here")
    functions = [jax.jit(lambda x, i=i: jnp.sin(x) * i) for i in range(40)]
    for i, f in enumerate(functions):
        f(jnp.ones(i + 2)).block_until_ready()
    before, _ = mappings.memory_mappings()
    assert mappings.release_compiled_programs(1e-9, warn=False) is True
    after, _ = mappings.memory_mappings()
    assert after < before - 200  # about 17 mappings per compiled program
    assert all(f._cache_size() == 0 for f in functions)


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan")])
def test_a_bad_fraction_is_named(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        mappings.release_compiled_programs(fraction)


def test_mappings_that_clearing_does_not_give_back_raise_the_bar(tmp_path, monkeypatch):
    """Held elsewhere (another library's compiled programs), they are not cleared
    again and again: each clearing would only make rdppl compile again."""
    _fake_proc(tmp_path, monkeypatch, 80, 100)
    assert mappings.release_compiled_programs(0.5, warn=False) is True
    # still 80 after clearing: the next clearing waits for half of what is left
    assert mappings.release_compiled_programs(0.5, warn=False) is False
    _fake_proc(tmp_path, monkeypatch, 90, 100)
    assert mappings.release_compiled_programs(0.5, warn=False) is False
    _fake_proc(tmp_path, monkeypatch, 91, 100)
    assert mappings.release_compiled_programs(0.5, warn=False) is True
    # once they are given back, the fraction alone decides again
    _fake_proc(tmp_path, monkeypatch, 40, 100)
    assert mappings.release_compiled_programs(0.5, warn=False) is False
    _fake_proc(tmp_path, monkeypatch, 51, 100)
    assert mappings.release_compiled_programs(0.5, warn=False) is True
