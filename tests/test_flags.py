"""Resampling decisions packed as bits: every operation against plain booleans."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rdppl.sampler.flags import Flags, as_flags


@st.composite
def boolean_arrays(draw):
    rows = draw(st.integers(0, 40))
    columns = draw(st.integers(1, 3))
    bits = draw(
        st.lists(st.booleans(), min_size=rows * columns, max_size=rows * columns)
    )
    return np.array(bits, bool).reshape(rows, columns)


@given(boolean_arrays(), st.data())
def test_rows_and_writes_match_booleans(bools, data):
    flags = Flags.from_bools(bools)
    assert flags.shape == bools.shape
    np.testing.assert_array_equal(flags.to_bools(), bools)
    rows = len(bools)
    start = data.draw(st.integers(0, rows))
    stop = data.draw(st.integers(start, rows))
    np.testing.assert_array_equal(flags.rows(start, stop), bools[start:stop])
    new = ~bools[start:stop]
    flags.write(start, new)
    expected = bools.copy()
    expected[start:stop] = new
    np.testing.assert_array_equal(flags.to_bools(), expected)
    assert flags.any() == bool(expected.any())


@given(boolean_arrays(), st.data())
def test_blocks_and_gathering_match_booleans(bools, data):
    rows = len(bools)
    flags = Flags.from_bools(bools)
    if rows:
        inner = (
            data.draw(st.lists(st.integers(1, rows - 1), unique=True))
            if rows > 1
            else []
        )
        starts = np.array(sorted({0, *inner}))
        np.testing.assert_array_equal(
            flags.any_in_blocks(starts), np.logical_or.reduceat(bools, starts, axis=0)
        )
    owner = np.sort(
        data.draw(st.lists(st.integers(0, 5), min_size=rows, max_size=rows))
    )
    expected = np.zeros((6, bools.shape[1]), bool)
    np.logical_or.at(expected, np.asarray(owner, np.int64), bools)
    np.testing.assert_array_equal(flags.gathered(owner, 6).to_bools(), expected)


def test_columns_join_and_take():
    a = np.random.default_rng(0).random((13, 2)) < 0.5
    b = np.random.default_rng(1).random((13, 1)) < 0.5
    joined = Flags.concatenate_columns([Flags.from_bools(a), as_flags(b)])
    np.testing.assert_array_equal(joined.to_bools(), np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(
        joined.take_columns([2, 0]).to_bools(), joined.to_bools()[:, [2, 0]]
    )
    assert as_flags(None) is None and as_flags(joined) is joined
    assert joined.packed.nbytes == 2 * 3  # 13 rows in 2 bytes per column


def test_bad_packing_and_rows_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        Flags(np.zeros((2, 1), bool), 16)
    with pytest.raises(ValueError, match="cannot hold"):
        Flags(np.zeros((1, 1), np.uint8), 9)
    with pytest.raises(IndexError, match="outside"):
        Flags.zeros(8, 1).write(6, np.ones((3, 1), bool))
    with pytest.raises(ValueError, match="cannot be joined"):
        Flags.concatenate_columns([Flags.zeros(8, 1), Flags.zeros(9, 1)])
