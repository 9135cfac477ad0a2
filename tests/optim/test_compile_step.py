"""torch.compile(optimizer.step): no graph breaks, no recompile per parameter or per step.

Every first-order registry key (each compiles in 1 to 20 s on a 2-core CPU; marked
``compile``), so that a key added later, or a change to one, cannot break the graph unseen. The
first step creates the state and so traces a second graph at step 2; from then on nothing
recompiles.

The methods driven by a closure break the graph at the closure call and nowhere else: the
closure calls ``backward()``, which dynamo does not trace (``Unsupported Tensor.backward()
call`` while ``torch._dynamo.config.trace_autograd_ops`` is off, its default), so each runs it
in one ``torch.compiler.disable``d function. Newton and Sophia also take the backward passes
through the closure's graph there (their Hessian-vector products); BFGS and L-BFGS decide there
whether any run needs the evaluation, since how many their iterations and line searches take
depends on the losses. Their loops therefore run in Python (dynamo skips a frame whose loop holds
a graph break) and every piece of arithmetic they call compiles once.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
import torch._dynamo.utils
from harness import wavy_loss

import descentlab.optim as optim

CLOSURE_KEYS = ["newton", "sophia", "bfgs", "lbfgs"]
KEYS = [key for key in optim.names() if key not in CLOSURE_KEYS]
STEPS = 12  # Lookahead synchronizes every 5 steps: two synchronizations
#: Muon's Newton-Schulz iteration runs in bfloat16; Inductor keeps a fused kernel's bfloat16
#: intermediates in float32 (rounding once at the end, not after every operation), so the two
#: steps differ at bfloat16 rounding. With ``ns_dtype=None`` (float32) they agree to 1e-8.
TOLERANCE = {"muon": 1e-3}


def test_every_key_but_the_closure_driven_ones_is_compiled_here():
    assert all(optim.spec(key).needs_closure or optim.spec(key).order > 1 for key in CLOSURE_KEYS)
    assert not any(optim.spec(key).needs_closure or optim.spec(key).order > 1 for key in KEYS)
    assert len(KEYS) + len(CLOSURE_KEYS) == len(optim.names())


def _run(key, compiled, **settings):
    generator = torch.Generator().manual_seed(0)
    shapes = ((3, 4), (4, 6)) if optim.spec(key).matrices_only else ((3, 4), (5,))
    params = [(torch.rand(shape, generator=generator) * 2 - 1).requires_grad_() for shape in shapes]
    optimizer = optim.create(key, params, **settings)
    step = torch.compile(optimizer.step) if compiled else optimizer.step
    graphs = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        sum(wavy_loss(p.reshape(-1)) for p in params).backward()
        step()
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return params, graphs


@pytest.mark.compile
@pytest.mark.parametrize("key", KEYS)
def test_compiled_step_has_no_graph_breaks_and_no_recompiles(key):
    eager, _ = _run(key, compiled=False)
    torch._dynamo.reset()  # every optimizer's step shares one code object (and its cache)
    torch._dynamo.utils.counters.clear()
    compiled, graphs = _run(key, compiled=True)
    assert not torch._dynamo.utils.counters["graph_break"], dict(
        torch._dynamo.utils.counters["graph_break"]
    )
    assert graphs[0] == 1 and graphs[1] == 2 and graphs[-1] == 2, graphs
    for a, b in zip(compiled, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < TOLERANCE.get(key, 1e-6)


@pytest.mark.compile
@pytest.mark.parametrize("key", ["adam", "radam", "quickprop", "schedulefree_sgd"])
def test_compiled_foreach_step_equals_eager(key):
    """foreach=True under torch.compile: the bucket's step count is read from its first counter
    (the list of counters has no ``.to``; the count was ``float ** TensorList`` before), and
    Schedule-Free's 0-d bookkeeping reads as one value per bucket (it failed to trace before);
    Quickprop's flat blocks compile too. Graph breaks are allowed: finding the buckets reads the
    counters with ``.item()``."""
    eager, _ = _run(key, compiled=False, foreach=True)
    torch._dynamo.reset()
    compiled, _ = _run(key, compiled=True, foreach=True)
    for a, b in zip(compiled, eager, strict=True):
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6


#: The one function per key that runs the closure (and, for Newton and Sophia, the backward passes
#: through its graph) outside torch.compile: the only graph break allowed.
CLOSURE_CALLS = {
    "newton": "Newton._evaluate_and_differentiate",
    "sophia": "Sophia._evaluate_and_estimate",
    "bfgs": "_run_closure",
    "lbfgs": "_run_closure",
}
#: (key, settings): Newton in both its Hessian modes; under torch.compile L-BFGS's two-loop
#: recursion unrolls over every slot of its memory, so a small memory keeps the test's compile
#: short (the default, 100, compiles for over a minute).
CLOSURE_CASES = {
    "newton": ("newton", {}),
    "newton-diagonal": ("newton", {"hessian": "diagonal"}),
    "sophia": ("sophia", {}),
    "bfgs": ("bfgs", {}),
    "lbfgs": ("lbfgs", {"history_size": 5}),
}
CLOSURE_STEPS = 12  # Sophia estimates at steps 1 and 11 and keeps its estimate in between


def _run_with_closure(key, settings, compiled):
    torch.manual_seed(0)  # Newton's and Sophia's probe seeds come from the global generator
    generator = torch.Generator().manual_seed(1)
    params = [
        (torch.rand(shape, generator=generator) * 2 - 1).requires_grad_()
        for shape in ((3, 4), (5,))
    ]
    optimizer = optim.create(key, params, **settings)
    second_order = optim.spec(key).order > 1

    def closure():
        optimizer.zero_grad()
        loss = sum(wavy_loss(p.reshape(-1)) for p in params)
        loss.backward(create_graph=second_order)
        return loss

    step = torch.compile(optimizer.step) if compiled else optimizer.step
    graphs = []
    for _ in range(CLOSURE_STEPS):
        step(closure)
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return params, graphs


@pytest.mark.compile
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
@pytest.mark.parametrize("case", CLOSURE_CASES)
def test_compiled_step_of_closure_driven_methods_breaks_only_at_the_closure(case):
    key, settings = CLOSURE_CASES[case]
    eager, _ = _run_with_closure(key, settings, compiled=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, graphs = _run_with_closure(key, settings, compiled=True)
    reasons = dict(torch._dynamo.utils.counters["graph_break"])
    assert reasons, "the closure call must show as a graph break"
    for reason in reasons:
        assert f"<function {CLOSURE_CALLS[key]} at" in reason, reasons
    # The second step traces what the first did not reach (Sophia's steps that keep the
    # estimate, the quasi-Newton state that exists from then on); then nothing recompiles.
    assert graphs[1] == graphs[-1] and graphs[0] >= 1, graphs
    for a, b in zip(compiled, eager, strict=True):
        assert torch.isfinite(a).all()
        assert ((a - b).abs().max() / b.abs().max()).item() < 1e-6


def _steps(key, compiled, dtype, scheduled):
    torch._dynamo.reset()
    param = torch.tensor([0.7, -0.4, 0.2], dtype=dtype, requires_grad=True)
    optimizer = optim.create(key, [param], lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5) if scheduled else None
    step = torch.compile(optimizer.step) if compiled else optimizer.step
    for _ in range(6):
        param.grad = (param.detach() - 0.1) ** 3 + 0.01
        step()
        if scheduler is not None:
            scheduler.step()
    return param.detach()


@pytest.mark.compile
@pytest.mark.parametrize(
    ("key", "dtype", "scheduled"),
    [
        # torch.where of Python numbers rounded float64 factors through float32.
        ("rprop", torch.float64, False),
        # A Python lr became a constant of the compiled graph: the scheduler's next lr was lost.
        ("schedulefree_sgd", torch.float32, True),
    ],
)
def test_compiled_step_equals_eager_in_cases_that_once_differed(key, dtype, scheduled):
    eager = _steps(key, False, dtype, scheduled)
    compiled = _steps(key, True, dtype, scheduled)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-7
    assert (compiled - eager).abs().max() <= tolerance, (compiled, eager)
