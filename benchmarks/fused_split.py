"""Where a compiled ``fused=True`` step's time goes: the generated kernels against every layer of
Python above them, beside the memory-traffic floor.

One optimizer with ``fused=True`` (an algorithm torch.compile compiles, see
``descentlab.optim._fused``) steps ``--tensors`` float32 parameters. Each layer of a step is
timed from inside, by wrapping it (this script patches torch's and descentlab's objects in
its own process only):

* outside: ``optimizer.step()`` around the fused path (torch's step hooks, gathering the
  parameters, their gradients and states, the hyperparameters);
* ours: ``_fused._CompiledStep`` (checking and re-pointing the cached chunks, the chunk's
  argument list, writing back);
* dynamo and AOT: the frame of a chunk that ``torch.compile`` steps (dynamo's guards, Python
  numbers made tensors, AOT autograd's runtime wrapper); zero where every chunk takes the direct
  graph of ``_fused_graph``, which has no such layer;
* Inductor's wrapper: the generated ``call`` (sizes read from the inputs, the kernel's arguments),
  called directly by ``_fused_graph`` or through ``CompiledFxGraph.__call__``;
* kernels: the generated C++ functions alone.

With ``--evict`` a large copy runs after every kernel call (its time is not counted): a real
step's kernel streams tens of megabytes, which leaves the Python layers of the next call to run
from cold caches; small parameters without ``--evict`` show the same layers warm. The floor is
the step's bytes over the best ``dst.copy_(src)`` bandwidth measured between rounds, as in
``step_speed.py``.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/fused_split.py rmsprop --threads 2
    PYTHONPATH=src .venv/bin/python benchmarks/fused_split.py lion --numel 16 --evict
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch._inductor.codecache as codecache
import torch._inductor.output_code as output_code

from descentlab import optim
from descentlab.optim import _fused, _fused_graph

LAYERS = ("outside", "ours", "dynamo and AOT", "Inductor's wrapper", "kernels")


class LayerClock:
    """Seconds spent inside each wrapped layer during one step (inclusive of inner layers)."""

    def __init__(self, evict_numel: int) -> None:
        self.inside = dict.fromkeys(
            ("step", "ours", "dynamo", "inductor", "direct", "kernels"), 0.0
        )
        self.active: list[str] = []
        self.evicting = evict_numel > 0
        self.source = torch.randn(evict_numel) if self.evicting else None
        self.target = torch.empty_like(self.source) if self.evicting else None

    def reset(self) -> None:
        for slot in self.inside:
            self.inside[slot] = 0.0

    def wrap(self, function: Callable[..., Any], slot: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.active.append(slot)
            start = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            finally:
                self.inside[slot] += time.perf_counter() - start
                self.active.pop()
            if self.evicting and slot == "kernels":
                evicted = time.perf_counter()
                self.target.copy_(self.source)
                # Not the step's time: take it off every layer that encloses this kernel.
                spent = time.perf_counter() - evicted
                for outer in self.active:
                    self.inside[outer] -= spent
            return result

        return timed

    def split(self) -> list[float]:
        """Exclusive seconds of each of ``LAYERS``, from the inclusive times."""
        inside = self.inside
        return [
            inside["step"] - inside["ours"],
            inside["ours"] - inside["dynamo"] - inside["direct"],
            inside["dynamo"] - inside["inductor"],
            inside["inductor"] + inside["direct"] - inside["kernels"],
            inside["kernels"],
        ]


def instrument(clock: LayerClock) -> None:
    """Wrap every layer of the compiled path (after the first compiled step has built it)."""
    for module in list(codecache.PyCodeCache.modules):
        for name in dir(module):
            if name.startswith("cpp_fused") or name.startswith("triton_"):
                setattr(module, name, clock.wrap(getattr(module, name), "kernels"))
    output_code.CompiledFxGraph.__call__ = clock.wrap(
        output_code.CompiledFxGraph.__call__, "inductor"
    )
    for graph in _fused_graph._GRAPHS.values():
        if graph is not None:
            graph.call = clock.wrap(graph.call, "direct")
    compiled, wrapped = _fused.compiled, {}

    def timed_compiled(update: Callable[..., None]) -> Callable[..., None]:
        if update not in wrapped:
            wrapped[update] = clock.wrap(compiled(update), "dynamo")
        return wrapped[update]

    _fused.compiled = timed_compiled
    _fused._CompiledStep.__call__ = clock.wrap(_fused._CompiledStep.__call__, "ours")


def copy_bandwidth(numel: int) -> float:
    """Bytes per second of the best of five copies of ``numel`` float32 (read + write)."""
    source = torch.randn(numel)
    target = torch.empty_like(source)
    target.copy_(source)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * 4 * numel / best


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("key", help="a registry key whose fused=True path compiles (rmsprop ...)")
    parser.add_argument("--tensors", type=int, default=100, help="parameter tensors")
    parser.add_argument("--numel", type=int, default=100_000, help="float32 numbers per tensor")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of 10 timed steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--evict", action="store_true", help="evict the caches after every kernel call"
    )
    args = parser.parse_args(argv)
    if args.key not in optim.names():
        parser.error(f"unknown optimizer {args.key!r}; choose one of {', '.join(optim.names())}")
    entry = optim.spec(args.key)
    factory = entry.factory
    if not getattr(factory, "elementwise", False) or getattr(factory, "fused_kernel", None):
        parser.error(f"{args.key}: fused=True does not compile its update (see _fused)")
    for name in ("tensors", "numel", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    params = [
        torch.randn(args.numel, generator=generator).requires_grad_() for _ in range(args.tensors)
    ]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    optimizer = optim.create(args.key, params, fused=True)
    optimizer.step()  # eager: creates the state
    start = time.perf_counter()
    optimizer.step()
    print(f"first compiled step {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for _ in range(3):
        optimizer.step()

    clock = LayerClock(10_000_000 if args.evict else 0)
    instrument(clock)
    step = clock.wrap(optimizer.step, "step")
    numel = args.tensors * args.numel
    buffers = sum(
        value.numel()
        for param in params
        for value in optimizer.state[param].values()
        if isinstance(value, torch.Tensor) and value.numel() == param.numel()
    )
    moved = 4 * (3 * numel + 2 * buffers)
    bandwidths, splits = [], []
    for _ in range(args.rounds):
        bandwidths.append(copy_bandwidth(numel))
        for _ in range(10):
            clock.reset()
            step()
            splits.append(clock.split())
    floor = moved / max(bandwidths)
    ms = 1000.0
    medians = [statistics.median(layer) for layer in zip(*splits, strict=True)]
    fastest = min(splits, key=sum)
    print(
        f"{args.key} fused=True: {args.tensors} x {args.numel} float32, {args.threads} threads"
        f"{', caches evicted after each kernel' if args.evict else ''}; floor {floor * ms:.3f} ms "
        f"({max(bandwidths) / 1e9:.1f} GB/s copy, best of {len(bandwidths)})"
    )
    print(f"{'layer':20s} {'median ms':>10s} {'fastest step ms':>16s}")
    for layer, median, fast in zip(LAYERS, medians, fastest, strict=True):
        print(f"{layer:20s} {median * ms:10.3f} {fast * ms:16.3f}")
    print(
        f"{'step':20s} {statistics.median(map(sum, splits)) * ms:10.3f} {sum(fastest) * ms:16.3f}"
    )
    kernels = statistics.median(split[-1] for split in splits)
    print(
        f"kernels / floor: {kernels / floor:.2f} (median), overhead / floor: "
        f"{statistics.median(sum(split[:-1]) for split in splits) / floor:.2f} (median)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
