import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arcforge.grids import (
    INVERSE_SYMMETRY,
    apply_symmetry,
    grid_bytes,
    inverse_permutation,
    invert_symmetry,
    multiset_key,
    pair_key,
    recolor,
)

grids = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda s: arrays(np.int8, s, elements=st.integers(0, 9))
)


def test_eight_distinct_symmetries_of_an_asymmetric_grid():
    g = np.arange(6, dtype=np.int8).reshape(2, 3)
    images = {apply_symmetry(g, k).tobytes() + bytes(apply_symmetry(g, k).shape) for k in range(8)}
    assert len(images) == 8
    assert apply_symmetry(g, 1).tolist() == [[2, 5], [1, 4], [0, 3]]  # rot90 counter-clockwise
    assert apply_symmetry(g, 4).tolist() == [[2, 1, 0], [5, 4, 3]]
    assert apply_symmetry(g, 6).tolist() == [[0, 3], [1, 4], [2, 5]]


@given(grids, st.integers(0, 7))
def test_inverse_symmetry_round_trips(g, k):
    assert np.array_equal(invert_symmetry(apply_symmetry(g, k), k), g)
    assert INVERSE_SYMMETRY[INVERSE_SYMMETRY[k]] == k


@given(grids, st.permutations(list(range(10))))
def test_recolor_inverse(g, perm):
    assert np.array_equal(recolor(recolor(g, perm), inverse_permutation(perm)), g)


def test_grid_bytes_distinguish_shape():
    a = np.zeros((2, 3), np.int8)
    b = np.zeros((3, 2), np.int8)
    assert grid_bytes(a) != grid_bytes(b)
    assert pair_key(a, b) != pair_key(b, a)


def test_multiset_key_is_order_invariant_but_counts_multiplicity():
    ks = [b"a" * 16, b"b" * 16, b"c" * 16]
    assert multiset_key(ks) == multiset_key(ks[::-1])
    assert multiset_key(ks) != multiset_key([*ks, ks[0]])
