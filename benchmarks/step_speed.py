"""Step time of every first-order optimizer, beside its peers and its memory-traffic floor.

For each first-order entry of the registry (``descentlab.optim.names()``; methods that need a
closure or are second-order are left out) this times one ``optimizer.step()`` over the same
float32 parameters and gradients, in one run, for:

* descentlab's implementation (``descentlab.optim.create(key, params)``, the spec's defaults),
  and its multi-tensor (``foreach=True``) and fused (``fused=True``: torch's fused kernel where
  torch has one, else the update compiled by torch.compile) paths for elementwise algorithms;
* torch.optim's class for the same algorithm: its default path (on CPU the per-tensor loop),
  ``foreach=True`` and ``fused=True`` where the class has them;
* pytorch-optimizer's implementation where it has the algorithm (optional: install it with
  ``.venv/bin/pip install pytorch-optimizer``, the ``bench`` extra).

The floor is the time one step needs just to move its bytes: read and write the parameters, read
the gradients, read and write each parameter-sized state buffer (counted from descentlab's state
after a step), divided by the bandwidth of a large ``dst.copy_(src)`` measured in the same run.
An elementwise update cannot beat it on a CPU whose step is bound by memory, so ``ours/floor``
says how much is left to win.

Every implementation of one algorithm is timed from the same parameters with the same gradients
(fixed between steps: the values do not matter to the time) and the spec's default
hyperparameters. Before timing, each peer also runs a few steps of a small problem and must end
where descentlab does, so a peer row is the same algorithm and not merely the same name (a
mismatch is marked ≠). Timings use one torch thread unless ``--threads`` says otherwise (see the
comment at that option); each row stops after ``--seconds`` or ``--repeats`` steps, and a method
whose very first step exceeds ``--step-limit`` is timed by that step alone, which keeps the
default run within a few minutes.

Usage::

    .venv/bin/python benchmarks/step_speed.py                  # all, 10M params in 100 tensors
    .venv/bin/python benchmarks/step_speed.py --only adam,rprop --repeats 10
    .venv/bin/python benchmarks/step_speed.py --markdown       # the table for README.md

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from descentlab import optim

#: Goal of the issue: ours within this factor of the floor ...
FLOOR_GOAL = 1.5
#: ... and no slower than torch's default path; timings on a shared machine wobble by a few
#: percent, so "no slower" allows this much before it counts as slower.
TORCH_TOLERANCE = 0.05
#: A peer "ends where ours does" when its parameters differ from ours by at most this fraction
#: of how far ours moved (plus a float32 rounding allowance).
SAME_RESULT_RTOL = 1e-3
#: Size and length of the small problem on which each peer must end where ours does.
CHECK_PARAMS = 3_000
CHECK_STEPS = 12


@dataclass(frozen=True)
class Peer:
    """Another library's implementation of one registry entry.

    Our constructor arguments (the spec's defaults) pass through under the same name, or under
    ``renamed``'s name; ``fixed`` sets the peer's switches that make it the same algorithm;
    ``implied`` lists our arguments the peer has no parameter for because it hard-codes that value.
    Any other argument of ours the peer cannot take means the peer is not comparable.
    """

    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    implied: dict[str, Any] = field(default_factory=dict)


# The only place this script names algorithms: which peer class computes the same update as a
# registry key. Hyperparameter values always come from our spec, never from here.
TORCH_PEERS: dict[str, Peer] = {
    "sgd": Peer("SGD"),
    "momentum": Peer("SGD"),  # momentum=0.9 is the spec's default
    "nesterov": Peer("SGD", fixed={"nesterov": True}),
    "adagrad": Peer("Adagrad"),
    "adadelta": Peer("Adadelta"),
    "rmsprop": Peer("RMSprop"),
    "adam": Peer("Adam"),
    "adamw": Peer("AdamW"),
    "nadam": Peer("NAdam"),
    "adamax": Peer("Adamax"),
    "radam": Peer("RAdam"),
    # torch's Rprop zeroes the gradient after a sign change and never backtracks: iRprop-.
    "rprop": Peer("Rprop", implied={"variant": "irprop-"}),
    "asgd": Peer("ASGD"),
    "adafactor": Peer("Adafactor"),
    "muon": Peer("Muon"),
}

# pytorch-optimizer re-exports some torch.optim classes under its own names (adam, sgd ...);
# those are skipped at run time, only its own implementations count.
PYTORCH_OPTIMIZER_PEERS: dict[str, Peer] = {
    "adadelta": Peer("adadelta", fixed={"weight_decouple": False}),
    "adamax": Peer("adamax", fixed={"weight_decouple": False}),
    # torch's RAdam (and ours) takes an un-adapted momentum step while rho_t <= 5.
    "radam": Peer("radam", fixed={"weight_decouple": False, "degenerated_to_sgd": True}),
    # Its Yogi always corrects the bias; ours adds weight decay to the gradient (coupled).
    "yogi": Peer("yogi", fixed={"weight_decouple": False}, implied={"bias_correction": True}),
    "adabelief": Peer("adabelief"),
    "lion": Peer("lion"),
    "lamb": Peer("lamb"),
    "lars": Peer("lars"),
    "prodigy": Peer("prodigy"),
    "schedulefree_sgd": Peer("schedulefreesgd"),
    "schedulefree_adamw": Peer("schedulefreeadamw"),
}


class NotComparable(Exception):
    """A peer cannot run the same algorithm with our hyperparameters."""


def peer_arguments(ours: dict[str, Any], peer: Peer, constructor: Callable[..., Any]) -> dict:
    """Our constructor arguments translated for ``constructor``; raises :class:`NotComparable`."""
    accepted = set(inspect.signature(constructor).parameters)
    result: dict[str, Any] = {}
    for name, value in ours.items():
        target = peer.renamed.get(name, name)
        if target in accepted:
            result[target] = value
        elif name in peer.implied:
            if value != peer.implied[name]:
                raise NotComparable(f"it fixes {name}={peer.implied[name]!r}, ours is {value!r}")
        else:
            raise NotComparable(f"it has no argument {name!r}")
    result.update(peer.fixed)
    return result


def load_pytorch_optimizer() -> tuple[Any, str]:
    try:
        import pytorch_optimizer
    except ImportError as error:
        return None, f"not installed ({error}); .venv/bin/pip install pytorch-optimizer"
    version = getattr(pytorch_optimizer, "__version__", "")
    if not version:
        from importlib.metadata import version as package_version

        version = package_version("pytorch_optimizer")
    return pytorch_optimizer, version


# -- measuring ----------------------------------------------------------------------------------


def matrix_shape(count: int) -> tuple[int, int]:
    """A near-square (rows, cols) with rows * cols == count: matrix methods need 2-D weights."""
    rows = max(d for d in range(1, math.isqrt(count) + 1) if count % d == 0)
    return rows, count // rows


def make_problem(total: int, tensors: int, seed: int) -> tuple[list[torch.Tensor], list]:
    """Start values and gradients: ``tensors`` float32 matrices holding ``total`` numbers."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [total // tensors + (1 if i < total % tensors else 0) for i in range(tensors)]
    starts = [torch.randn(matrix_shape(n), generator=generator) for n in sizes]
    grads = [torch.randn(matrix_shape(n), generator=generator) for n in sizes]
    return starts, grads


def copy_bandwidth(numel: int, repeats: int) -> float:
    """Bytes per second of the best of ``repeats`` copies of ``numel`` float32 (read + write)."""
    source = torch.randn(numel)
    target = torch.empty_like(source)
    target.copy_(source)  # touch the pages before timing
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / best


@dataclass
class Timing:
    times: list[float]  # seconds per step
    same_result: bool | None = None  # None for ours: the reference
    first_only: bool = False  # one step (its first) was all the step limit allowed
    slowest_warmup: float = 0.0  # seconds; for a compiled fused path, its first compiled step

    def stat(self, kind: str) -> float:
        return min(self.times) if kind == "min" else statistics.median(self.times)


def run_steps(optimizer: Any, args: argparse.Namespace) -> Timing:
    """``args.repeats`` timed steps after ``args.warmup``; fewer (at least 3) past ``args.seconds``.

    A first step slower than ``args.step_limit`` is all that is run: a compute-bound method
    (Muon's matrix iterations) could otherwise take the run's whole budget.
    """
    start = time.perf_counter()
    optimizer.step()  # allocates the state
    first = time.perf_counter() - start
    if first > args.step_limit:
        return Timing([first], first_only=True)
    slowest_warmup = first
    for _ in range(args.warmup - 1):  # RAdam rectifies from step 6: time rectified steps only
        start = time.perf_counter()
        optimizer.step()
        slowest_warmup = max(slowest_warmup, time.perf_counter() - start)
    times: list[float] = []
    while len(times) < args.repeats and (sum(times) < args.seconds or len(times) < 3):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return Timing(times, slowest_warmup=slowest_warmup)


def state_numel(optimizer: Any, params: list[torch.Tensor]) -> int:
    """Numbers in parameter-sized state buffers: each is read and written once per step."""
    total = 0
    for param in params:
        for value in optimizer.state[param].values():
            if isinstance(value, torch.Tensor) and value.numel() == param.numel():
                total += value.numel()
    return total


def fresh_params(starts: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
    params = [start.clone().requires_grad_(True) for start in starts]
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad.clone()  # its own copy: an optimizer may write to its gradients
    return params


def end_point(build: Callable[[list], Any], starts: list, grads: list, steps: int) -> list:
    """Parameters after ``steps`` steps with the same gradients each step.

    The gradients are restored before every step because some implementations overwrite them
    (torch's foreach Nesterov SGD adds the momentum buffer into ``.grad``).
    """
    params = fresh_params(starts, grads)
    optimizer = build(params)
    for _ in range(steps):
        for param, grad in zip(params, grads, strict=True):
            param.grad.copy_(grad)
        optimizer.step()
    return [param.detach() for param in params]


def ends_where(params: list, reference: list, starts: list) -> bool:
    """True when ``params`` ended where ``reference`` did, up to rounding."""
    moved = max(float((r - s).abs().max()) for r, s in zip(reference, starts, strict=True))
    apart = max(float((p - r).abs().max()) for p, r in zip(params, reference, strict=True))
    return apart <= SAME_RESULT_RTOL * moved + 1e-6


# -- the table ----------------------------------------------------------------------------------

COLUMNS = (
    "optimizer",
    "ours ms",
    "ours foreach ms",
    "ours fused ms",
    "torch default ms",
    "torch foreach ms",
    "torch fused ms",
    "pytorch-optimizer ms",
    "floor ms",
    "ours/floor",
    "fused/floor",
    "ours/torch default",
    "foreach/torch foreach",
    "fused/torch fused",
    "goal met?",
)
#: Goal for the fused path: at most the memory-traffic floor.
FUSED_FLOOR_GOAL = 1.0
MISSING = "—"
NOT_RUN = "not run"


def milliseconds(timing: Timing | str | None, stat: str) -> str:
    if timing is None:
        return MISSING
    if isinstance(timing, str):
        return timing
    mark = " ≠" if timing.same_result is False else ""
    mark += " ¹" if timing.first_only else ""
    return f"{1000 * timing.stat(stat):.1f}{mark}"


def ratio(
    timings: dict[str, Timing | str | None], name: str, other: str, stat: str
) -> float | None:
    """``timings[name] / timings[other]`` when both were measured."""
    mine, theirs = timings.get(name), timings.get(other)
    if isinstance(mine, Timing) and isinstance(theirs, Timing):
        return mine.stat(stat) / theirs.stat(stat)
    return None


def shown(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}×"


def row(key: str, timings: dict[str, Timing | str | None], floor: float, stat: str) -> list[str]:
    """One table row; the goals (each "no:" names the ones missed):

    floor (ours within FLOOR_GOAL of the floor), torch (ours no slower than torch's default),
    fused floor (ours fused within FUSED_FLOOR_GOAL of the floor), fused torch and foreach torch
    (ours no slower than torch's path of the same name); "no slower" allows TORCH_TOLERANCE.
    """
    ours = timings["ours"]
    if not isinstance(ours, Timing):
        return [key, "failed", *[MISSING] * (len(COLUMNS) - 2)]
    over_floor = ours.stat(stat) / floor
    fused = timings.get("ours fused")
    fused_floor = fused.stat(stat) / floor if isinstance(fused, Timing) else None
    over_torch = ratio(timings, "ours", "torch default", stat)
    foreach_torch = ratio(timings, "ours foreach", "torch foreach", stat)
    fused_torch = ratio(timings, "ours fused", "torch fused", stat)
    misses = [
        name
        for name, value, limit in (
            ("floor", over_floor, FLOOR_GOAL),
            ("torch", over_torch, 1 + TORCH_TOLERANCE),
            ("fused floor", fused_floor, FUSED_FLOOR_GOAL),
            ("foreach torch", foreach_torch, 1 + TORCH_TOLERANCE),
            ("fused torch", fused_torch, 1 + TORCH_TOLERANCE),
        )
        if value is not None and value > limit
    ]
    return [
        key,
        milliseconds(ours, stat),
        *(milliseconds(timings[name], stat) for name in IMPLEMENTATIONS[1:]),
        f"{1000 * floor:.1f}",
        f"{over_floor:.2f}×",
        shown(fused_floor),
        shown(over_torch),
        shown(foreach_torch),
        shown(fused_torch),
        "yes" if not misses else "no: " + ", ".join(misses),
    ]


def render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * len(COLUMNS)) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines)
    widths = [max(len(cells[i]) for cells in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return "\n".join(
        [line(list(COLUMNS)), line(["-" * w for w in widths])] + [line(r) for r in rows]
    )


# -- driving it ---------------------------------------------------------------------------------

IMPLEMENTATIONS = (
    "ours",
    "ours foreach",
    "ours fused",
    "torch default",
    "torch foreach",
    "torch fused",
    "pytorch-optimizer",
)


def builders(
    key: str, pytorch_optimizer: Any, compile_fused: bool = True
) -> dict[str, Callable[[list], Any] | str]:
    """For each implementation: a function params -> optimizer, or why there is none."""
    ours = optim.spec(key).defaults
    factory = optim.spec(key).factory
    found: dict[str, Callable[[list], Any] | str] = {"ours": lambda p: optim.create(key, p)}
    for name, switch in (("ours foreach", "foreach"), ("ours fused", "fused")):
        if not getattr(factory, "elementwise", False):
            found[name] = "not elementwise: no such path"
        elif switch == "fused" and not compile_fused and factory.fused_kernel is None:
            found[name] = "compiled by torch.compile: skipped (--no-compile)"
        else:
            found[name] = lambda p, switch=switch: optim.create(key, p, **{switch: True})
    peer = TORCH_PEERS.get(key)
    switches = {
        "torch default": {},
        "torch foreach": {"foreach": True},
        "torch fused": {"fused": True},
    }
    for name, switch in switches.items():
        if peer is None:
            found[name] = "torch.optim has no such algorithm"
            continue
        cls = getattr(torch.optim, peer.name)
        if not set(switch) <= set(inspect.signature(cls).parameters):
            found[name] = f"torch.optim.{peer.name} has no {next(iter(switch))} path"
            continue
        try:
            kwargs = {**peer_arguments(ours, peer, cls), **switch}
        except NotComparable as reason:
            found[name] = f"torch.optim.{peer.name} differs: {reason}"
            continue
        found[name] = lambda p, cls=cls, kwargs=kwargs: cls(p, **kwargs)
    peer = PYTORCH_OPTIMIZER_PEERS.get(key)
    if pytorch_optimizer is None:
        found["pytorch-optimizer"] = "pytorch-optimizer is not installed"
    elif peer is None:
        found["pytorch-optimizer"] = "pytorch-optimizer has no such algorithm"
    else:
        cls = pytorch_optimizer.load_optimizer(peer.name)
        try:
            kwargs = peer_arguments(ours, peer, cls)
        except NotComparable as reason:
            found["pytorch-optimizer"] = f"pytorch-optimizer's {cls.__name__} differs: {reason}"
        else:
            if cls.__module__.startswith("torch."):
                found["pytorch-optimizer"] = f"pytorch-optimizer's {peer.name} is torch.optim's"
            else:
                found["pytorch-optimizer"] = lambda p, cls=cls, kwargs=kwargs: cls(p, **kwargs)
    return found


def benchmarked_keys() -> tuple[list[str], dict[str, str]]:
    """First-order registry keys, and why each other key is left out."""
    keys, skipped = [], {}
    for key in optim.names():
        entry = optim.spec(key)
        if entry.needs_closure:
            skipped[key] = "needs a closure"
        elif entry.order != 1:
            skipped[key] = f"order {entry.order}"
        else:
            keys.append(key)
    return keys, skipped


def positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=positive, default=10_000_000, help="total parameters")
    parser.add_argument("--tensors", type=positive, default=100, help="parameter tensors")
    parser.add_argument("--repeats", type=positive, default=20, help="timed steps at most")
    parser.add_argument(
        "--seconds",
        type=positive_seconds,
        default=2.0,
        help="stop timing an implementation after this long (at least 3 steps)",
    )
    # RAdam's rectification starts at step 6 (beta2 = 0.999): time only rectified steps.
    parser.add_argument("--warmup", type=positive, default=5, help="untimed steps first")
    parser.add_argument(
        "--step-limit",
        type=positive_seconds,
        default=5.0,
        help="seconds: an implementation whose first step takes longer is timed by that step alone",
    )
    parser.add_argument("--only", default="", help="comma-separated registry keys")
    parser.add_argument("--stat", choices=("median", "min"), default="median")
    # One thread by default: these updates are bound by memory, which one core of this machine
    # nearly saturates, and on a machine shared with other work a second OpenMP thread that gets
    # descheduled stalls every parallel loop (medians 3-4x worse, measured).
    parser.add_argument("--threads", type=positive, default=1, help="torch threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="skip ours fused where it compiles (four graphs per algorithm: chunks of 32 and 4 "
        "for 100 tensors, 2 and 1 for the check; 30-65 s each on a loaded 2-core CPU; progress "
        "shows the slowest warm-up step)",
    )
    args = parser.parse_args(argv)
    if args.tensors > args.params:
        parser.error(f"--tensors ({args.tensors}) exceeds --params ({args.params})")
    keys, skipped = benchmarked_keys()
    if args.only:
        wanted = [key.strip().lower() for key in args.only.split(",") if key.strip()]
        for key in wanted:
            if key in skipped:
                parser.error(f"--only: {key!r} is not in this table ({skipped[key]})")
            if key not in keys:
                parser.error(f"--only: unknown optimizer {key!r}; choose from {', '.join(keys)}")
        keys = [key for key in keys if key in wanted]
    args.keys = keys
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    key: str, builds: dict[str, Any], args: argparse.Namespace, problem: tuple, check: tuple
) -> tuple[dict[str, Timing | str | None], int]:
    """Timings of each implementation of ``key`` (or why it has none), and the bytes one of our
    steps moves."""
    starts, grads = problem
    timings: dict[str, Timing | str | None] = {}
    reference = None
    bytes_per_step = 0
    for name, build in builds.items():
        timings[name] = None
        if isinstance(build, str):
            quiet = ("no such algorithm", "not installed", "no such path", "--no-compile")
            if not any(reason in build for reason in quiet):
                progress(f"  {key}: {name}: {MISSING} ({build})")
            continue
        ours = timings["ours"]
        if isinstance(ours, Timing) and ours.first_only:
            timings[name] = NOT_RUN  # as slow as ours: the step limit is what they would show
            continue
        try:
            ended = end_point(build, *check, steps=CHECK_STEPS)
            params = fresh_params(starts, grads)
            optimizer = build(params)
            timing = run_steps(optimizer, args)
        except Exception as error:  # a fused path with no kernel here, a peer's own check ...
            progress(f"  {key}: {name}: {MISSING} ({type(error).__name__}: {error})")
            continue
        timings[name] = timing
        if timing.first_only:
            progress(f"  {key}: {name}: first step {timing.times[0]:.1f} s > --step-limit")
        if name == "ours":
            reference = ended
            numel = 3 * sum(p.numel() for p in params) + 2 * state_numel(optimizer, params)
            bytes_per_step = numel * params[0].element_size()
        elif reference is not None:
            timing.same_result = ends_where(ended, reference, check[0])
            if not timing.same_result:
                progress(f"  {key}: {name} did not end where ours did: marked ≠")
        steps = len(timing.times)
        progress(f"{key}: {name} {1000 * timing.stat(args.stat):.1f} ms ({steps} steps)")
        if name == "ours fused":  # compiling happens in the warm-up (and on the check problem)
            progress(f"  {key}: ours fused: slowest warm-up step {timing.slowest_warmup:.1f} s")
        del optimizer, params
        gc.collect()
    return timings, bytes_per_step


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    pytorch_optimizer, po_version = load_pytorch_optimizer()
    if pytorch_optimizer is None:
        progress(f"pytorch-optimizer: {po_version}; its column shows {MISSING}")
    started = time.perf_counter()
    problem = make_problem(args.params, args.tensors, args.seed)
    check = make_problem(CHECK_PARAMS, 3, args.seed + 1)

    # The copy is timed between algorithms too and the best kept: on a shared machine a single
    # measurement may land on a busy moment and flatter every ratio to the floor.
    bandwidths = []
    results = []
    for index, key in enumerate(args.keys, 1):
        bandwidths.append(copy_bandwidth(args.params, repeats=5))
        progress(f"[{index}/{len(args.keys)}] copy bandwidth {bandwidths[-1] / 1e9:.2f} GB/s")
        timings, bytes_per_step = measure(
            key, builders(key, pytorch_optimizer, not args.no_compile), args, problem, check
        )
        results.append((key, timings, bytes_per_step))
    bandwidths.append(copy_bandwidth(args.params, repeats=5))
    bandwidth = max(bandwidths)

    rows = [row(key, timings, moved / bandwidth, args.stat) for key, timings, moved in results]
    fewest = min(
        (
            len(timing.times)
            for _, timings, _ in results
            for timing in timings.values()
            if isinstance(timing, Timing) and not timing.first_only
        ),
        default=0,
    )
    po_label = po_version if pytorch_optimizer else f"{MISSING} ({po_version})"
    header = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"pytorch-optimizer {po_label}",
        f"{args.params:_} float32 parameters in {args.tensors} tensors; {args.stat} of "
        f"{fewest} to {args.repeats} steps (after {args.warmup} warm-up steps)",
        f"copy bandwidth {bandwidth / 1e9:.2f} GB/s: best copy of {args.params:_} float32 over "
        f"{len(bandwidths)} measurements through the run "
        f"(worst {min(bandwidths) / 1e9:.2f} GB/s)",
    ]
    legend = [
        "floor: (param read+write + grad read + each param-sized state buffer read+write) bytes "
        "/ copy bandwidth",
        f"goal: ours/floor <= {FLOOR_GOAL} and ours no slower than torch's default "
        f"(+{TORCH_TOLERANCE:.0%} for timing noise); fused/floor <= {FUSED_FLOOR_GOAL}; ours "
        f"foreach and fused no slower than torch's foreach and fused",
        "ours fused: torch's fused kernel for adam, adamw, sgd, momentum, nesterov, adagrad; "
        "torch.compile of our update for the others (its compile time is not in the times)",
        f"{MISSING}: no such implementation; ≠: did not end where ours did after {CHECK_STEPS} "
        f"steps on a small problem (not the same algorithm or defaults)",
        f"¹: its first step alone (state allocation included) took over {args.step_limit:g} s, "
        f"so that step is its time; {NOT_RUN}: peers of such a row are skipped",
    ]
    foreach_adam = next(
        (timings["ours foreach"] for key, timings, _ in results if key == "adam"), None
    )
    if isinstance(foreach_adam, Timing):
        spread = [
            (timings["ours foreach"].stat(args.stat) / foreach_adam.stat(args.stat), key)
            for key, timings, _ in results
            if isinstance(timings.get("ours foreach"), Timing)
        ]
        worst, worst_key = max(spread)
        legend.append(
            f"ours foreach against ours foreach Adam: at most {worst:.2f}× ({worst_key}); goal 1.5×"
        )
    text = render(rows, markdown=args.markdown)
    if args.markdown:  # two trailing spaces: a markdown line break
        print("  \n".join(header) + "\n\n" + text + "\n\n" + "  \n".join(legend))
    else:
        print("\n".join(header) + "\n\n" + text + "\n\n" + "\n".join(legend))
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
