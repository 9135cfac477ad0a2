"""foreach=True step time of every elementwise optimizer against ours foreach Adam, and why.

Issue 13 asks every elementwise algorithm's ``foreach=True`` step to stay within 1.5x of foreach
Adam's on many small tensors. This builds each one (the registry's defaults, ``foreach=True``)
over its own copy of the same float32 parameters and gradients, then times their steps
round-robin: one step of each in turn, ``--rounds`` times. Work elsewhere on a shared machine
then slows every method alike, so the ratios hold still where one-after-another timings (as in
``step_speed.py``) wander by tens of percent.

Beside each time, the list operations one step takes, counted in an untimed step: ``foreach``
is the number of ``torch._foreach_*`` calls (each a pass over every tensor; ``new`` of them
allocate their results) and ``per tensor`` the operations that fall back to a Python loop over
the tensors (see ``optim/_tensor_list.py``). On a CPU, for tensors of a thousand floats, a step
costs about its operation count times the tensor count times a microsecond or two, whatever the
arithmetic, so the operation counts say how far a method can come down.
Quickprop is the exception: it keeps its two state buffers flat, concatenates the gradients
(one ``torch.cat``, not counted) and computes its 23 operations on cache-sized blocks of the flat
tensors (``optim/_quickprop_flat.py``); two list operations remain.

Usage::

    .venv/bin/python benchmarks/foreach_ratio.py                      # 1000 tensors x 1000 floats
    .venv/bin/python benchmarks/foreach_ratio.py --threads 2 --only adam,radam,quickprop
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch

import descentlab.optim as optim
from descentlab.optim import _tensor_list
from step_speed import positive  # this folder is on the path when a benchmark runs as a script

REFERENCE = "adam"


def elementwise_keys() -> list[str]:
    return [key for key in optim.names() if getattr(optim.spec(key).factory, "elementwise", False)]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=positive, default=1_000_000, help="total parameters")
    parser.add_argument("--tensors", type=positive, default=1000, help="parameter tensors")
    parser.add_argument("--rounds", type=positive, default=20, help="timed steps of each")
    # RAdam's rectification starts at step 6 (beta2 = 0.999): time only rectified steps.
    parser.add_argument("--warmup", type=positive, default=6, help="untimed steps first")
    parser.add_argument("--threads", type=positive, default=1, help="torch threads (default 1)")
    parser.add_argument("--only", default="", help=f"comma-separated keys ({REFERENCE} is kept)")
    args = parser.parse_args(argv)
    if args.tensors > args.params:
        parser.error(f"--tensors ({args.tensors}) exceeds --params ({args.params})")
    keys = elementwise_keys()
    if args.only:
        wanted = {key.strip().lower() for key in args.only.split(",") if key.strip()}
        unknown = sorted(wanted - set(keys))
        if unknown:
            parser.error(f"--only: not an elementwise key: {', '.join(unknown)}")
        keys = [key for key in keys if key in wanted | {REFERENCE}]
    args.keys = keys
    return args


def make_problem(total: int, tensors: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    sizes = [total // tensors + (1 if i < total % tensors else 0) for i in range(tensors)]
    starts = [torch.randn(size, generator=generator) for size in sizes]
    grads = [torch.randn(size, generator=generator) for size in sizes]
    return starts, grads


def build(key: str, starts: list[torch.Tensor], grads: list[torch.Tensor], warmup: int) -> Any:
    params = [start.clone().requires_grad_() for start in starts]
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad.clone()
    optimizer = optim.create(key, params, foreach=True)
    for _ in range(warmup):
        optimizer.step()
    return optimizer


class _CountingTorch:
    """Stands in for ``torch`` inside ``_tensor_list``, counting its ``_foreach_`` calls."""

    def __init__(self, counts: Counter) -> None:
        self.counts = counts

    def __getattr__(self, name: str) -> Any:
        value = getattr(torch, name)
        if not name.startswith("_foreach_"):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts["new" if not name.endswith("_") else "in place"] += 1
            return value(*args, **kwargs)

        return counted


@contextlib.contextmanager
def counting_list_operations() -> Iterator[Counter]:
    counts: Counter = Counter()
    elementwise = _tensor_list._elementwise

    def counted_elementwise(*args: Any, **kwargs: Any) -> Any:
        counts["per tensor"] += 1
        return elementwise(*args, **kwargs)

    _tensor_list.torch = _CountingTorch(counts)
    _tensor_list._elementwise = counted_elementwise
    try:
        yield counts
    finally:
        _tensor_list.torch = torch
        _tensor_list._elementwise = elementwise


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    starts, grads = make_problem(args.params, args.tensors)
    optimizers = {key: build(key, starts, grads, args.warmup) for key in args.keys}
    operations = {}
    for key, optimizer in optimizers.items():
        with counting_list_operations() as counts:
            optimizer.step()
        operations[key] = counts
    times: dict[str, list[float]] = {key: [] for key in optimizers}
    for _ in range(args.rounds):
        for key, optimizer in optimizers.items():
            start = time.perf_counter()
            optimizer.step()
            times[key].append(time.perf_counter() - start)
    medians = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    print(
        f"torch {torch.__version__}, {args.threads} thread(s); {args.params:_} float32 in "
        f"{args.tensors} tensors; median of {args.rounds} round-robin steps after {args.warmup}"
    )
    print(f"{'optimizer':20} {'foreach ms':>10} {'/ adam':>7} {'foreach':>8} {'new':>4} "
          f"{'per tensor':>10}")  # fmt: skip
    for key in optimizers:
        counts = operations[key]
        foreach = counts["new"] + counts["in place"]
        print(
            f"{key:20} {medians[key]:10.1f} {medians[key] / medians[REFERENCE]:6.2f}x "
            f"{foreach:8d} {counts['new']:4d} {counts['per tensor']:10d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
