"""How fast the lab races: Adam on Rosenbrock, every run with its own learning rate.

Side by side in one run:
  ours (final)   descentlab.lab.race, recording final states only
  ours (path)    the same, recording every position and loss (the paths the pictures draw)
  ours (inspect) the same, also recording gradients and Adam's state buffers (the inspector)
  (a) per-run    one torch.optim.Adam per trajectory, as typical visualisers do (timed on a sample
                 of runs and scaled)
  (b) stacked    torch.optim.Adam stepping ONE stacked (N, 2) parameter on the summed loss: the
                 speed limit of eager PyTorch for this job, where every run must share one lr
                 (default and fused paths)
  (c) closed     (b)'s default path fed Rosenbrock's closed-form gradient instead of autograd's:
                 the same gradient the lab takes, so final/(c) compares the updates alone
  ours autograd  ours (final) on a copy of Rosenbrock without its closed form: the lab's speed on
                 a typed expression, which autograd differentiates
  gradient only  the landscape and its gradient, no update: the floor of every race here, from
                 autograd (what (a), (b) and a typed expression pay) and from the closed form
Rates are run-steps per second (runs x steps / seconds). Memory: peak resident memory of a fresh
process that imports descentlab and runs the race recording final states only.

    python benchmarks/lab_speed.py [--runs 10000 100000] [--steps 1000] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time

import torch

from descentlab import lab, landscapes

ROSENBROCK = landscapes.get("rosenbrock")
#: The same function differentiated by autograd, as a typed expression is.
AUTOGRAD_ROSENBROCK = dataclasses.replace(ROSENBROCK, with_gradient=None)


def _starts(runs: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    (x_low, x_high), (y_low, y_high) = ROSENBROCK.domain
    unit = torch.rand(runs, 2, generator=generator)
    return torch.stack(
        [x_low + (x_high - x_low) * unit[:, 0], y_low + (y_high - y_low) * unit[:, 1]], 1
    )


def ours(runs: int, steps: int, record: str, surface=ROSENBROCK) -> float:
    learning_rates = torch.logspace(-4, -1, runs)
    began = time.perf_counter()
    lab.race(surface, [("adam", {"lr": learning_rates})], _starts(runs), steps, record=record)
    return runs * steps / (time.perf_counter() - began)


def per_run_loop(runs: int, steps: int, sample: int) -> float:
    starts, learning_rates = _starts(runs)[:sample], torch.logspace(-4, -1, runs)[:sample]
    began = time.perf_counter()
    for start, lr in zip(starts, learning_rates.tolist(), strict=True):
        position = start.clone().requires_grad_()
        optimizer = torch.optim.Adam([position], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            ROSENBROCK(position[None]).sum().backward()
            optimizer.step()
    return sample * steps / (time.perf_counter() - began)


def stacked_torch(runs: int, steps: int, fused: bool) -> float:
    position = _starts(runs).requires_grad_()
    optimizer = torch.optim.Adam([position], lr=1e-3, fused=fused or None)
    began = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        ROSENBROCK(position).sum().backward()
        optimizer.step()
    return runs * steps / (time.perf_counter() - began)


def stacked_closed_form(runs: int, steps: int) -> float:
    position = _starts(runs).requires_grad_()
    optimizer = torch.optim.Adam([position], lr=1e-3)
    began = time.perf_counter()
    for _ in range(steps):
        _, position.grad = ROSENBROCK.value_and_grad(position.detach())
        optimizer.step()
    return runs * steps / (time.perf_counter() - began)


def gradient_only(runs: int, steps: int, closed_form: bool) -> float:
    """Rosenbrock and its gradient alone (autograd's or the closed form), no optimizer: the rate
    no race stepping on that gradient can pass (the floor of this job)."""
    position = _starts(runs).requires_grad_()
    began = time.perf_counter()
    for _ in range(steps):
        if closed_form:
            ROSENBROCK.value_and_grad(position.detach())
        else:
            position.grad = None
            ROSENBROCK(position).sum().backward()
    return runs * steps / (time.perf_counter() - began)


def _peak_line() -> str:
    # VmHWM (the peak resident set) starts afresh at exec, unlike ru_maxrss, which a child
    # inherits from its parent's peak.
    return "float(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"


def peak_memory_mib(runs: int, steps: int, threads: int) -> tuple[float, float]:
    """Peak resident memory (MiB) of a fresh process after imports, and after the race."""
    program = (
        f"import torch; torch.set_num_threads({threads})\n"
        "from descentlab import lab\n"
        f"before = {_peak_line()}\n"
        f"lab.race('rosenbrock', [('adam', {{'lr': torch.logspace(-4, -1, {runs})}})], "
        f"'random:{runs}', {steps}, record='final')\n"
        f"print(before, {_peak_line()})\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    before, after = (float(v) / 1024 for v in output.stdout.split())
    return before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, nargs="+", default=[10_000, 100_000], help="race sizes N"
    )
    parser.add_argument("--steps", type=int, default=1000, help="steps per run (default 1000)")
    parser.add_argument("--sample", type=int, default=10, help="runs timed for the per-run loop")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    arguments = parser.parse_args(argv)
    if (
        min(arguments.runs) < 1
        or arguments.steps < 1
        or arguments.sample < 1
        or arguments.threads < 1
    ):
        parser.error("--runs, --steps, --sample and --threads must be positive")
    torch.set_num_threads(arguments.threads)
    print(
        f"torch {torch.__version__}, {arguments.threads} threads; Adam on Rosenbrock, "
        f"{arguments.steps} steps, per-run learning rates 1e-4..1e-1 (log grid)"
    )
    print(
        "rates in million run-steps per second; ratios against (b) stacked torch.optim.Adam, "
        "default path, and (c) the same fed the closed-form gradient\n"
    )
    header = (
        f"{'runs':>8}  {'(a) per-run':>11}  {'(b) default':>11}  {'(b) fused':>9}  {'(c) closed':>10}  "
        f"{'ours final':>10}  {'ours path':>9}  {'ours inspect':>12}  {'ours autograd':>13}  "
        f"{'final/(b)':>9}  {'final/(c)':>9}  {'autograd/(b)':>12}  {'path cost':>9}  "
        f"{'gradient only: autograd':>23}  {'closed form':>11}  {'final/closed':>12}"
    )
    print(header)
    print("-" * len(header))
    ours(1000, 5, "final")  # warm up imports and allocators
    for runs in arguments.runs:
        loop = per_run_loop(runs, arguments.steps, arguments.sample)
        default = stacked_torch(runs, arguments.steps, fused=False)
        fused = stacked_torch(runs, arguments.steps, fused=True)
        closed = stacked_closed_form(runs, arguments.steps)
        final = ours(runs, arguments.steps, "final")
        path = ours(runs, arguments.steps, "path")
        inspect = ours(runs, arguments.steps, "inspect") if runs <= 10_000 else float("nan")
        autograd = ours(runs, arguments.steps, "final", AUTOGRAD_ROSENBROCK)
        autograd_floor = gradient_only(runs, arguments.steps, closed_form=False)
        closed_floor = gradient_only(runs, arguments.steps, closed_form=True)
        print(
            f"{runs:>8}  {loop / 1e6:>11.3f}  {default / 1e6:>11.1f}  {fused / 1e6:>9.1f}  "
            f"{closed / 1e6:>10.1f}  {final / 1e6:>10.1f}  {path / 1e6:>9.1f}  "
            f"{inspect / 1e6:>12.1f}  {autograd / 1e6:>13.1f}  {final / default:>8.2f}x  "
            f"{final / closed:>8.2f}x  {autograd / default:>11.2f}x  {final / path - 1:>+8.0%}  "
            f"{autograd_floor / 1e6:>23.1f}  {closed_floor / 1e6:>11.1f}  "
            f"{final / closed_floor:>11.2f}x"
        )
    largest = max(arguments.runs)
    before, after = peak_memory_mib(largest, arguments.steps, arguments.threads)
    print(
        f"\npeak resident memory, {largest} runs recording final states: {after:.0f} MiB "
        f"({after - before:.0f} MiB above the {before:.0f} MiB of the imports)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
