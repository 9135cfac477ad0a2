"""Command line: ``descentlab optimizers`` lists the registry, ``descentlab demo`` races them.

Thin by design: parse arguments, call the library, print.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import torch

from . import optim


def _ravine_loss(position: torch.Tensor) -> torch.Tensor:
    # The ill-conditioned quadratic 0.1 x^2 + 2 y^2 of the course: a ravine along x.
    return 0.1 * position[..., 0] ** 2 + 2.0 * position[..., 1] ** 2


DEMO_START = (-4.0, 2.0)


def demo(steps: int = 100, start: tuple[float, float] = DEMO_START) -> list[tuple[str, float]]:
    """Run every registered optimizer with its spec's defaults on the ravine; final losses."""
    results = []
    for key in optim.names():
        position = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        optimizer = optim.create(key, [position])
        entry = optim.spec(key)

        def closure(position=position, optimizer=optimizer, second_order=entry.order > 1):
            optimizer.zero_grad()
            loss = _ravine_loss(position)
            loss.backward(create_graph=second_order)
            return loss

        for _ in range(steps):
            optimizer.step(closure)
        results.append((key, float(_ravine_loss(position.detach()))))
    return results


def _print_demo(steps: int) -> None:
    print(f"Every optimizer with its default hyperparameters, {steps} steps on the ravine")
    start = _ravine_loss(torch.tensor(DEMO_START)).item()
    print(
        f"f(x, y) = 0.1 x^2 + 2 y^2 from {DEMO_START}, where f = {start:g} (minimum 0 at the origin):\n"
    )
    width = max(len(key) for key in optim.names())
    for key, loss in demo(steps):
        shown = f"{loss:.3e}" if math.isfinite(loss) else "diverged"
        print(f"  {key:<{width}}  {shown:>10}   {optim.spec(key).title}")


def _print_optimizers() -> None:
    width = max(len(key) for key in optim.names())
    for key in optim.names():
        entry = optim.spec(key)
        print(
            f"{key:<{width}}  {entry.title} ({entry.paper.authors.split(',')[0]} {entry.paper.year})"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="descentlab", description="Learn, compare and use gradient-based optimizers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_parser = commands.add_parser("demo", help="race every optimizer on a quadratic ravine")
    demo_parser.add_argument("--steps", type=int, default=100, help="steps per optimizer")
    commands.add_parser("optimizers", help="list the optimizers in the registry")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "demo":
        if arguments.steps < 1:
            print("descentlab demo: error: --steps must be at least 1", file=sys.stderr)
            return 2
        _print_demo(arguments.steps)
    elif arguments.command == "optimizers":
        _print_optimizers()
    return 0
