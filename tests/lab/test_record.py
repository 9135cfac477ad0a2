"""The recorder's per-run milestones: the first step at which something happened."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from descentlab.lab.record import BLOCK, NEVER, first_true


def naive_first_true(table: torch.Tensor) -> list[int]:
    firsts = []
    for column in table.t().tolist():
        firsts.append(next((row for row, value in enumerate(column) if value), NEVER))
    return firsts


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(1, 3 * BLOCK + 5),
    runs=st.integers(1, 40),
    density=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**31 - 1),
)
def test_first_true_equals_a_plain_scan(steps, runs, density, seed):
    generator = torch.Generator().manual_seed(seed)
    table = torch.rand((steps, runs), generator=generator) < density
    assert first_true(table).tolist() == naive_first_true(table)


def test_first_true_finds_hits_in_later_blocks_and_none_where_there_is_none():
    table = torch.zeros((5 * BLOCK, 4), dtype=torch.bool)
    table[0, 0] = table[BLOCK + 3, 1] = table[5 * BLOCK - 1, 2] = True
    table[4 * BLOCK :, 1] = True
    assert first_true(table).tolist() == [0, BLOCK + 3, 5 * BLOCK - 1, NEVER]
