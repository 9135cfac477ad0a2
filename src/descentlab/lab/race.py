"""Race many optimizer runs on one landscape as a single vectorized computation.

Each optimizer entry becomes one stacked parameter of shape (R, D) (R runs, D coordinates) and one
instance of the library's optimizer class with ``stack_dims=1`` and per-run hyperparameters of shape
(R,): every step is one call of the algorithm's functional update for all R runs. Nothing here
loops over runs in Python.
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import landscapes
from ..optim import _stack
from ..schedules import Schedule
from .assorted import (
    Assorted,
    distances_for,
    divergence_limits,
    joint_rows,
    rows_of,
    threshold_of,
)
from .constraints import Constraint, resolve_constraint
from .joint import JointRuns
from .record import Recorder, RecordMode
from .result import RaceResult
from .runs import Entry, expand
from .starts import resolve_starts

#: A run is diverged once its loss is not finite or it leaves the domain grown this many times.
DIVERGENCE_SPAN = 10.0


def _landscape(value: Any) -> landscapes.Landscape | Assorted:
    if isinstance(value, landscapes.Landscape | Assorted):
        return value
    if not isinstance(value, str):
        raise TypeError(f"landscape must be a name, an expression or a Landscape, got {value!r}")
    if value in landscapes.names():
        return landscapes.get(value)
    return landscapes.parse(value)


class _Runner:
    """One optimizer entry's stacked runs: positions, optimizer, and the per-step bookkeeping."""

    def __init__(
        self, entry: Entry, replicas: int, restart_starts: Tensor | None, seed: int
    ) -> None:
        self.entry = entry
        starts = entry.starts
        kwargs = dict(entry.kwargs)
        if "seed" not in kwargs and "seed" in inspect.signature(entry.spec.factory).parameters:
            # Random probes (Sophia's) follow the race's seed, not torch's global generator:
            # the same race gives the same runs, raced alone or beside other entries.
            kwargs["seed"] = seed
        if replicas > 1:
            # Restarts: replica 0 starts where asked, the others at random points (given).
            starts = torch.cat([starts, restart_starts], dim=0)
            kwargs = {name: _repeat_runs(value, replicas) for name, value in kwargs.items()}
        runs, dim = starts.shape
        # A matrix-only method (Muon) sees each run's point as a 1 x D matrix, where its
        # orthogonalized step is the normalized direction. Per-run values (shape (R,)) fit either.
        shape = (runs, 1, dim) if entry.spec.matrices_only else (runs, dim)
        # A fresh leaf, not a view: a view leaf read through a view made before an in-place
        # step gives autograd stale gradients (line searches evaluate several points per step).
        # First-order runners, which never differentiate through it, then move into the joint
        # runs' tensor (place_in).
        self.position = starts.reshape(shape).clone().requires_grad_(True)
        self.starts = starts
        self.optimizer = entry.spec.factory(
            [{"params": [self.position], "stack_dims": 1}], **kwargs
        )
        self.second_order = entry.spec.order > 1 or entry.spec.needs_closure
        self.group = self.optimizer.param_groups[0]
        self.base_lr = self.group.get("lr")
        # First-order methods whose step is one functional update: call it directly.
        self.direct = getattr(self.optimizer, "steps_by_update", False) and not self.second_order
        # Schedule-Free steps at y but is judged at its averaged point x: record that one.
        judged_at = getattr(self.optimizer, "evaluation_point", None)
        self.judged_at_position = judged_at is None
        if judged_at is None:
            self._show_rows(self.position.detach().view(runs, dim))
        else:
            self.shown = lambda: judged_at(self.position).reshape(runs, dim)
        if self.direct:
            self.state = self.optimizer.state_of(self.position, self.group)
            self.prepare()

    def _show_rows(self, points: Tensor) -> None:
        # A view of the position, which every step updates in place: made once.
        self.shown = lambda: points

    def place_in(self, rows: Tensor) -> None:
        """Move this runner's position into ``rows`` (its rows of the joint runs' tensor), the
        parameter staying the same object to its optimizer, as FSDP's flat parameters do."""
        rows.copy_(self.position.detach().reshape(rows.shape))
        self.position.data = rows.view(self.position.shape)
        if self.judged_at_position:
            self._show_rows(rows)

    def prepare(self) -> None:
        """The update and its arguments for this runner's one parameter, computed once (again
        only when a schedule changes the learning rate): the per-step cost is the update alone."""
        optimizer, params = self.optimizer, [self.position]
        self.arguments = optimizer.hyperparameters(
            self.group, optimizer._update_keys, self.position
        )
        self.update = optimizer.update_for(self.group, params, self.arguments)
        if self.entry.spec.elementwise:
            shape = self.position.shape
            self.arguments = {
                name: _materialized(value, shape) for name, value in self.arguments.items()
            }


def _materialized(value: Any, shape: torch.Size) -> Any:
    """A per-run value (R, 1) as a contiguous (R, D) tensor. An elementwise update computes the
    same numbers either way, but torch's kernels run an operand broadcast along a short last
    dimension about ten times slower than a contiguous one (measured: (100000, 2) times
    (100000, 1) against times (100000, 2))."""
    if isinstance(value, tuple):
        return tuple(_materialized(part, shape) for part in value)
    if isinstance(value, Tensor) and value.dim() == len(shape) and value.shape != shape:
        try:
            return value.expand(shape).contiguous()
        except RuntimeError:  # not broadcastable to the position: leave it to the update
            return value
    return value


def _repeat_runs(value: Any, replicas: int) -> Any:
    if isinstance(value, Tensor) and value.dim() == 1:
        return value.repeat(replicas)
    if isinstance(value, tuple):
        return tuple(_repeat_runs(part, replicas) for part in value)
    return value


def race(
    landscape: Any,
    optimizers: Sequence[Any],
    starts: Any = "suggested",
    steps: int = 100,
    *,
    record: RecordMode = "path",
    noise: float = 0.0,
    noise_schedule: Any = None,
    schedule: Any = None,
    clip: float | None = None,
    project: Any = None,
    restarts: int = 1,
    tolerance: float = 1e-6,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
) -> RaceResult:
    """Race optimizer runs on a landscape.

    Args:
        landscape: a registry name, an expression such as ``"x**2 + 10*sin(y)"``, or a Landscape.
        optimizers: names (``"adam"``, ``"sgd:lr=0.01"``) or ``(name, {hyperparameters})`` pairs; a
            list or 1-D tensor of N values makes the entry N runs (see ``runs``). A triple
            ``(name, {hyperparameters}, starts)`` gives that entry its own starts instead of the
            race's: entries with different numbers of runs then share one race (one landscape
            evaluation per step for all of them).
        starts: ``"suggested"`` (the landscape's), ``"random:N"`` (uniform in the domain, seeded),
            a point, or a list/tensor of points.
        steps: optimizer steps per run.
        record: ``"final"`` (final state only), ``"path"`` (positions and losses every step) or
            ``"inspect"`` (also gradients and the optimizer's state buffers every step).
        noise: standard deviation of Gaussian noise added to every gradient (seeded), to show
            stochastic gradients; ``noise_schedule`` (a descentlab.schedules schedule) anneals it,
            a simulated-annealing temperature.
        schedule: a learning-rate schedule (descentlab.schedules) multiplying each run's lr, or
            a list with one schedule (or None, a constant lr) per optimizer entry, so that
            entries under different schedules share one race.
        clip: clip each run's gradient to this Euclidean norm (as torch's clip_grad_norm_).
        project: after each step, project onto a constraint set: ``"domain"``, ``Box(low, high)``
            or ``Ball(radius, center)``: constrained optimization by projection.
        restarts: run each configuration from this many starts (the first as given, the rest random
            in the domain) and keep the best by final loss: random restarts against local minima.
        tolerance: a run has converged once its loss is within this of the global minimum value.
        seed: seeds random starts, restarts, gradient noise and random probes (Sophia's).
        dtype: float32 (fast) or float64.

    Schedule-Free optimizers step at their gradient point y but are judged at their averaged
    point x: paths, final positions and final losses are x's; the per-step losses are y's.
    Lookahead races as a wrapper of its named inner optimizer (``("lookahead", {"inner": "sgd"})``).
    Muon needs each run's coordinates to form a matrix, which a point on a landscape does not.
        progress: called with the number of steps done, for progress bars.
    """
    surface = _landscape(landscape)
    _check_arguments(steps, noise, clip, restarts, tolerance, dtype)
    steps, restarts = int(steps), int(restarts)  # numpy's integers too
    _checked_schedule("noise_schedule", noise_schedule)
    generator = torch.Generator().manual_seed(seed)
    items = _as_list(optimizers)
    # The race's starts are needed (and resolved) only when some entry has none of its own.
    start_points = None
    if not all(_own_starts(item) for item in items):
        start_points = resolve_starts(starts, surface, dtype, generator)
    entries = [_expand(item, start_points, surface, dtype, generator) for item in items]
    if not entries:
        raise ValueError("optimizers: give at least one optimizer")
    constraint: Constraint | None = resolve_constraint(project, surface, dtype)
    runners = []
    for entry in entries:
        extra = None
        if restarts > 1:
            shape = ((restarts - 1) * entry.runs, surface.dim)
            extra = _uniform_in_domain(surface, shape, dtype, generator)
        runners.append(_Runner(entry, restarts, extra, seed))
    if isinstance(surface, Assorted) and sum(e.runs for e in entries) != surface.owner.numel():
        raise ValueError(
            f"run_landscape: {surface.owner.numel()} landscape indices for "
            f"{sum(e.runs for e in entries)} runs"
        )

    # Each runner's landscape: the race's, or with several landscapes those of its own rows.
    ends = list(itertools.accumulate(runner.position.shape[0] for runner in runners))
    bounds = list(itertools.pairwise([0, *ends]))
    where = {
        runner: rows_of(surface, begin, end)
        for runner, (begin, end) in zip(runners, bounds, strict=True)
    }
    direct = [runner for runner in runners if runner.direct]
    joint = (
        JointRuns(direct, joint_rows(surface, direct, bounds, runners), dtype) if direct else None
    )
    joint_record = (
        None
        if joint is None
        else Recorder(
            record, steps, joint.positions, None, threshold_of(joint.surface, tolerance, dtype)
        )
    )
    parts: dict[_Runner, Recorder] = {}
    for index, runner in enumerate(direct):
        begin, end = joint.bounds[index]
        parts[runner] = joint_record.part(begin, end, runner.entry.spec)
        if not runner.judged_at_position and parts[runner].path is not None:
            parts[runner].path[0] = runner.shown()
    recorders = [
        parts[runner]
        if runner in parts
        else Recorder(
            record,
            steps,
            runner.shown(),
            runner.entry.spec,
            threshold_of(where[runner], tolerance, dtype),
        )
        for runner in runners
    ]
    noise_generator = torch.Generator().manual_seed(seed + 1)

    scheduled = [
        (runner, entry_schedule)
        for runner, entry_schedule in zip(runners, _per_entry(schedule, entries), strict=True)
        if entry_schedule is not None and runner.base_lr is not None
    ]
    for step in range(steps):
        noise_scale = noise * (_factor(noise_schedule, step) if noise_schedule else 1.0)
        for runner, entry_schedule in scheduled:
            runner.group["lr"] = runner.base_lr * _factor(entry_schedule, step)
            if runner.direct:
                runner.prepare()
        # Noise is drawn in runner order, whichever path a runner takes, so a seed means one race.
        noises = [_noise(runner, noise_scale, noise_generator) for runner in runners]
        if joint is not None:
            losses, joint_grad, grads = joint.evaluate()
            grad_of = dict(zip(direct, grads, strict=True))
        with torch.no_grad():
            for runner, recorder, drawn in zip(runners, recorders, noises, strict=True):
                if runner.direct:
                    grad = grad_of[runner]
                    _perturb(grad, drawn, noise_scale, clip)
                    runner.update([runner.position], [grad], [runner.state], **runner.arguments)
                    if constraint is not None:
                        constraint.project_(runner.position)
                    continue  # recorded with the joint runs below
                with torch.enable_grad():
                    loss, grad = _step(runner, where[runner], drawn, noise_scale, clip)
                if constraint is not None:
                    constraint.project_(runner.position)
                recorder.after_step(
                    step, loss, grad, runner.shown(), runner.position, runner.optimizer
                )
            if joint is not None:
                joint_record.after_step(step, losses, joint_grad, joint.positions, None, None)
                for runner in direct:
                    part = parts[runner]
                    if not runner.judged_at_position and part.path is not None:
                        part.path[step + 1] = runner.shown()
                    if part.grad is not None:
                        part.record_state(step, runner.position, runner.optimizer)
        if progress is not None:
            progress(step + 1)

    for runner, recorder in zip(runners, recorders, strict=True):
        final = runner.shown()
        with torch.no_grad():
            final_loss = where[runner](final)
        recorder.finish(
            final_loss, final, *divergence_limits(where[runner], dtype, DIVERGENCE_SPAN)
        )

    # When the joint record holds every run in order, it already is the race's record.
    whole = joint_record if len(direct) == len(runners) and restarts == 1 else None
    return RaceResult.assemble(
        surface,
        entries,
        recorders,
        restarts=restarts,
        tolerance=tolerance,
        steps=steps,
        whole=whole,
        distance_to_minimum=distances_for(surface),
        replica_starts=[runner.starts for runner in runners],
    )


def race_assorted(
    landscapes: Sequence[Any],
    optimizers: Sequence[Any],
    run_landscape: Sequence[int] | Tensor,
    steps: int = 100,
    **options: Any,
) -> list[RaceResult]:
    """Race runs on several landscapes (of one dimension) as ONE race, each run on its own.

    Races apart on four landscapes run four times the per-step operations of one race, and a small
    race's step is bound by those operations (their overhead), not by its arithmetic: here every
    entry's runs step with one update whatever their landscapes, each landscape evaluates only
    its own runs, and one copy a step records them all.

    Args:
        landscapes: names, expressions or Landscapes, all of one dimension.
        optimizers: entries as for :func:`race`, each with its own start points:
            ``(name, {hyperparameters}, starts)``.
        run_landscape: for each run, in race order (entry by entry, then the entry's runs), the
            index in ``landscapes`` of its landscape.
        options: :func:`race`'s keyword arguments ``record``, ``noise``, ``noise_schedule``,
            ``schedule``, ``clip``, ``tolerance``, ``seed``, ``dtype`` and ``progress`` (a race
            on several landscapes has no ``restarts`` and no ``project``: both depend on a
            landscape's domain).

    Returns one :class:`RaceResult` per landscape, in ``landscapes`` order, with its runs in race
    order: what :func:`race` gives for those runs on that landscape alone (the gradient noise, when
    asked, is drawn for the whole race, so it differs).
    """
    if isinstance(landscapes, str) or not isinstance(landscapes, Sequence) or not landscapes:
        raise ValueError("landscapes: give a non-empty list of landscapes")
    surfaces = [_landscape(value) for value in landscapes]
    items = _as_list(optimizers)
    for position, item in enumerate(items):
        if not _own_starts(item) or isinstance(item[2], str):
            raise ValueError(
                f"optimizers[{position}]: on several landscapes every entry gives its own start "
                "points, as (name, {hyperparameters}, starts)"
            )
    try:
        owner = torch.as_tensor(run_landscape, dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError("run_landscape: give one landscape index per run") from None
    if owner.dim() != 1 or owner.numel() == 0:
        raise ValueError("run_landscape: give one landscape index per run (a 1-D list)")
    if owner.min() < 0 or owner.max() >= len(surfaces):
        raise ValueError(
            f"run_landscape: indices must lie in 0..{len(surfaces) - 1}, one per landscape"
        )
    empty = sorted(set(range(len(surfaces))) - set(owner.tolist()))
    if empty:
        raise ValueError(f"landscapes[{empty[0]}] ({surfaces[empty[0]].key}) has no runs")
    refused = sorted(set(options) & {"starts", "restarts", "project"})
    if refused:
        raise ValueError(
            f"{refused[0]}: a race on several landscapes takes no {refused[0]} (it depends on "
            "a landscape's domain); give each entry its own starts"
        )
    result = race(Assorted(surfaces, owner), items, steps=steps, **options)
    return [
        result.select((owner == index).nonzero().squeeze(1), surface)
        for index, surface in enumerate(surfaces)
    ]


def _own_starts(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 3


def _expand(item: Any, race_starts: Tensor | None, surface, dtype, generator) -> Entry:
    """One optimizer entry's runs, from the race's starts or from the entry's own."""
    if _own_starts(item):
        name, hyperparameters, own = item
        return expand((name, hyperparameters), resolve_starts(own, surface, dtype, generator))
    return expand(item, race_starts)


def _step(runner: _Runner, surface, noise: Tensor | None, scale: float, clip: float | None):
    """One closure-driven step for all of an entry's runs: (per-run loss before it, the gradient)."""
    position, optimizer = runner.position, runner.optimizer
    points = position.reshape(position.shape[0], -1)
    evaluated: list[Tensor] = []

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = surface(points)
        loss.sum().backward(create_graph=runner.second_order)
        if not runner.second_order:
            _perturb(position.grad, noise, scale, clip)
        if not evaluated:
            evaluated.append(loss.detach())
            evaluated.append(position.grad.detach().reshape(points.shape).clone())
        return loss

    with warnings.catch_warnings():
        # Second-order steps need create_graph=True; the parameter-gradient cycle torch warns
        # about is broken by zero_grad() at the next step.
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        optimizer.step(closure)
    return evaluated[0], evaluated[1]


def _noise(runner: _Runner, scale: float, generator) -> Tensor | None:
    """This step's standard normal gradient noise for a runner (None without noise, or for
    second-order runs)."""
    if scale <= 0 or runner.second_order:
        return None
    shape, dtype = runner.position.shape, runner.position.dtype
    return torch.randn(shape, generator=generator, dtype=dtype)


def _perturb(grad: Tensor, noise: Tensor | None, scale: float, clip: float | None) -> None:
    if noise is not None:
        grad.add_(noise, alpha=scale)
    if clip is not None:
        norm = _stack.slice_norm(grad, 1)
        grad.mul_((clip / (norm + 1e-6)).clamp_(max=1.0))


def _per_entry(schedule: Any, entries: list[Entry]) -> list[Any]:
    """One schedule (or None) per optimizer entry."""
    if not isinstance(schedule, list | tuple):
        return [_checked_schedule("schedule", schedule)] * len(entries)
    if len(schedule) != len(entries):
        raise ValueError(
            f"schedule: a list needs one schedule (or None) per optimizer entry: "
            f"{len(entries)} entries, {len(schedule)} schedules"
        )
    return [_checked_schedule("schedule", item) for item in schedule]


def _checked_schedule(name: str, schedule: Any) -> Any:
    """``schedule`` when it is None or a descentlab schedule, else a clear error."""
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    hint = ""
    if isinstance(schedule, str):
        hint = f"; make one with descentlab.schedules.create({schedule!r}, ...)"
    raise TypeError(
        f"{name} must be a descentlab.schedules schedule (or None), got {schedule!r}{hint}"
    )


def _factor(schedule: Any, step: int) -> float:
    return float(schedule.factor(step))


def _domain(surface, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    bounds = torch.tensor(surface.domain, dtype=dtype)
    return bounds[:, 0], bounds[:, 1]


def _uniform_in_domain(surface, shape, dtype, generator) -> Tensor:
    low, high = _domain(surface, dtype)
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=dtype)


def _as_list(optimizers: Any) -> list[Any]:
    """The entries: one name or one ``(key, hyperparameters[, starts])`` tuple is one entry; any
    other sequence (a tuple of names included) lists entries."""
    if isinstance(optimizers, str):
        return [optimizers]
    one = isinstance(optimizers, tuple) and len(optimizers) in (2, 3)
    if one and isinstance(optimizers[0], str) and isinstance(optimizers[1], Mapping):
        return [optimizers]
    if not isinstance(optimizers, Iterable):
        raise TypeError(
            f"optimizers: give a name, a (name, hyperparameters) tuple or a list of them, "
            f"got {optimizers!r}"
        )
    return list(optimizers)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_arguments(steps, noise, clip, restarts, tolerance, dtype) -> None:
    if not _is_integer(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not _is_finite_number(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if clip is not None and (not _is_finite_number(clip) or clip <= 0):
        raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
    if not _is_integer(restarts) or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts!r}")
    if not _is_finite_number(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
