"""torch.compile(optimizer.step) for EVERY first-order registry key: no graph break, two graphs
(the first step creates the state, so step 2 traces again) and then none, the eager result.

``test_compile_step.py`` looks closer at a representative few (and at the closure-driven
methods); this sweep keeps a key added later, or a change to one, from breaking the graph
unseen. Each key compiles in 1 to 20 s on a 2-core CPU (Inductor caches the code on disk).
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
import torch._dynamo.utils
from harness import wavy_loss

import descentlab.optim as optim

FIRST_ORDER = [
    key for key in optim.names() if not optim.spec(key).needs_closure and optim.spec(key).order == 1
]
STEPS = 8
#: Muon's Newton-Schulz iteration runs in bfloat16; Inductor keeps a fused kernel's bfloat16
#: intermediates in float32 (rounding once at the end, not after every operation), so the
#: compiled step is the more accurate one and the two differ at bfloat16 rounding. With
#: ``ns_dtype=None`` (the parameter's float32) they agree to 1e-8 (checked by hand).
TOLERANCE = {"muon": 1e-3}


def _run(key: str, compiled: bool):
    generator = torch.Generator().manual_seed(0)
    shapes = ((3, 4), (4, 6)) if optim.spec(key).matrices_only else ((3, 4), (5,))
    params = [(torch.rand(shape, generator=generator) * 2 - 1).requires_grad_() for shape in shapes]
    optimizer = optim.create(key, params)
    step = torch.compile(optimizer.step) if compiled else optimizer.step
    graphs = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        sum(wavy_loss(p.reshape(-1)) for p in params).backward()
        step()
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return params, graphs


def test_every_first_order_key_is_swept():
    assert {"adam", "muon", "prodigy", "lookahead", "schedulefree_adamw", "asgd"} <= set(
        FIRST_ORDER
    )
    assert len(FIRST_ORDER) == len(optim.names()) - 4  # all but Newton, Sophia, BFGS, L-BFGS


@pytest.mark.compile
@pytest.mark.parametrize("key", FIRST_ORDER)
def test_compiled_step_of_every_first_order_key(key):
    eager, _ = _run(key, compiled=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, graphs = _run(key, compiled=True)
    assert not torch._dynamo.utils.counters["graph_break"], dict(
        torch._dynamo.utils.counters["graph_break"]
    )
    assert graphs[0] == 1 and graphs[-1] == 2, graphs
    for a, b in zip(compiled, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < TOLERANCE.get(key, 1e-6)
