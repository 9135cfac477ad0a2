"""Graph breaks, graphs and recompiles of ``torch.compile(optimizer.step)`` per registry key.

Issue 13 asks the compiled step of every key to break its graph only where it must and to stop
compiling after warm-up. For each key asked for, this steps a compiled optimizer ``--steps``
times on a small non-quadratic loss (two parameters, 12 and 5 floats) with the closure its spec
asks for, and prints:

* the graph breaks by reason (``torch._dynamo.utils.counters["graph_break"]``, first line of
  each reason) and how often each was hit while tracing;
* the unique graphs after each step (``counters["stats"]["unique_graphs"]``): a number that grows
  after the first steps means a recompile per step;
* the recompiles dynamo logged (its ``recompiles`` log), with the guard that failed first;
* the median step time after the second step, compiled and eager (the same steps, one after the
  other: the first compiled step is mostly compilation).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/compile_breaks.py newton sophia bfgs lbfgs
    PYTHONPATH=src .venv/bin/python benchmarks/compile_breaks.py lbfgs --steps 20

Each key compiles for 10 to 60 s on a 2-core CPU. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import Counter

import torch
import torch._dynamo
import torch._dynamo.utils

import descentlab.optim as optim


def wavy_loss(param: torch.Tensor) -> torch.Tensor:
    """Quartic plus quadratic: smooth, non-quadratic, one minimum per coordinate."""
    shifted = param - 0.3
    return (shifted**4 + 0.5 * param * param - 0.2 * param).sum()


class RecompileRecords(logging.Handler):
    """Collects dynamo's ``recompiles`` log: the function recompiled and its first failed guard."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        lines = record.getMessage().splitlines()
        if lines and "Recompiling function" in lines[0]:
            guard = next((line.strip() for line in lines if line.strip().startswith("-")), "")
            self.records.append(f"{lines[0].strip()}  [{guard}]")


def stepper(key: str, compiled: bool):
    """A fresh optimizer of ``key`` on two parameters and a function doing one (timed) step."""
    generator = torch.Generator().manual_seed(1)
    params = [
        (torch.rand(shape, generator=generator) * 2 - 1).requires_grad_()
        for shape in ((3, 4), (5,))
    ]
    optimizer = optim.create(key, params)
    second_order = optim.spec(key).order > 1
    needs_closure = optim.spec(key).needs_closure

    def closure():
        optimizer.zero_grad()
        loss = sum(wavy_loss(p) for p in params)
        loss.backward(create_graph=second_order)
        return loss

    step = torch.compile(optimizer.step) if compiled else optimizer.step

    def timed_step() -> float:
        start = time.perf_counter()
        if needs_closure:
            step(closure)
        else:
            closure()
            step()
        return time.perf_counter() - start

    return timed_step


def measure(key: str, steps: int, recompiles: RecompileRecords) -> None:
    torch.manual_seed(0)
    eager_step = stepper(key, compiled=False)
    eager = [eager_step() for _ in range(steps)]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    recompiles.records.clear()
    torch.manual_seed(0)
    compiled_step = stepper(key, compiled=True)
    graphs, seconds = [], []
    for _ in range(steps):
        seconds.append(compiled_step())
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    counters = torch._dynamo.utils.counters
    print(
        f"== {key}: {steps} steps, first compiled step {seconds[0]:.1f} s; median step after "
        f"the second: compiled {1000 * statistics.median(seconds[2:]):.2f} ms, eager "
        f"{1000 * statistics.median(eager[2:]):.2f} ms"
    )
    print(f"   unique graphs after each step: {graphs}")
    breaks = counters["graph_break"]
    print(f"   graph breaks: {sum(breaks.values())} hits, {len(breaks)} reasons")
    for reason, hits in Counter(breaks).most_common():
        print(f"     {hits:3d} x {reason.strip().splitlines()[0][:150]}")
    print(f"   recompiles: {len(recompiles.records)}")
    for record in recompiles.records:
        print(f"     {record[:220]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", nargs="*", default=["newton", "sophia", "bfgs", "lbfgs"])
    parser.add_argument("--steps", type=int, default=10, help="compiled steps per key")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.keys) - set(optim.names()))
    if unknown:
        parser.error(f"unknown registry keys: {', '.join(unknown)}")
    if arguments.steps < 3:
        parser.error("--steps must be at least 3 (warm-up takes two)")
    torch.set_num_threads(1)
    recompiles = RecompileRecords()
    torch._logging.set_logs(recompiles=True)
    logger = logging.getLogger("torch._dynamo.guards.__recompiles")
    logger.addHandler(recompiles)
    logger.propagate = False
    for key in arguments.keys:
        measure(key, arguments.steps, recompiles)


if __name__ == "__main__":
    main()
