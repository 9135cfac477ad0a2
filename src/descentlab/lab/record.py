"""What a race keeps of its runs: the final state and per-run milestones always; paths, gradients
and the optimizer's state buffers when asked."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from ..optim.spec import Spec

RecordMode = Literal["final", "path", "inspect"]
RECORD_MODES = ("final", "path", "inspect")
#: Marks "not yet" in the per-run step counters (reported as -1).
NEVER = torch.iinfo(torch.int64).max


def _first(counter: Tensor, happened: Tensor, step: int) -> Tensor:
    """Keep the first step at which ``happened`` was true, per run."""
    return torch.where(happened, counter.clamp(max=step), counter)


#: Rows of a (steps, runs) table read at a time by :func:`first_true`.
BLOCK = 64


def first_true(table: Tensor) -> Tensor:
    """Per column of a (steps, runs) boolean table, the first row holding True (NEVER if none).

    Read in blocks of rows: each block is reduced with ``any`` (fast along rows), and ``argmax``
    runs only over the block holding a run's first True, for the runs first true there; a
    column-wise ``argmax`` over the whole table was most of the end of a 100,000-run race.
    """
    steps, runs = table.shape
    first = torch.full((runs,), NEVER, dtype=torch.int64)
    waiting = torch.ones(runs, dtype=torch.bool)
    for begin in range(0, steps, BLOCK):
        block = table[begin : begin + BLOCK]
        new = block.any(dim=0) & waiting
        if not new.any():
            continue
        columns = new.nonzero().squeeze(1)
        first[columns] = block[:, columns].to(torch.uint8).argmax(dim=0) + begin
        waiting &= ~new
        if not waiting.any():
            break
    return first


class Recorder:
    """One optimizer entry's record, in tensors allocated once before the race.

    A recorder may also keep the record of several entries whose runs lie side by side in one
    tensor (the lab's jointly stepped runs): one copy a step records all of them, and ``part``
    gives each entry its own recorder over its columns (views, not copies).
    """

    def __init__(
        self,
        mode: RecordMode,
        steps: int,
        position: Tensor,
        spec: Spec | None,
        threshold: float | Tensor | None,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(f"record must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
        runs = position.shape[0]
        self.mode, self.spec, self.steps, self.threshold = mode, spec, steps, threshold
        self.diverged_at = torch.full((runs,), NEVER, dtype=torch.int64)
        self.reached_at = torch.full((runs,), NEVER, dtype=torch.int64)
        self.path = self.loss = self.grad = None
        # Without recorded losses, one comparison per step into a (T, R) table of booleans tells
        # when each run first got within tolerance, decided once at the end.
        self.within = None
        if mode == "final" and threshold is not None:
            self.within = torch.empty((steps, runs), dtype=torch.bool)
        # Likewise, without recorded losses, which losses were finite (a loss can turn NaN where
        # the position stays finite: log of a negative number), to tell when each run diverged.
        self.finite = torch.empty((steps, runs), dtype=torch.bool) if mode == "final" else None
        self.state: dict[str, Tensor] = {}
        if mode != "final":
            self.path = torch.empty((steps + 1, *position.shape), dtype=position.dtype)
            self.path[0] = position.detach()
            self.loss = torch.empty((steps + 1, runs), dtype=position.dtype)
        if mode == "inspect":
            self.grad = torch.empty((steps, *position.shape), dtype=position.dtype)
        self.final = self.final_loss = None

    def part(self, begin: int, end: int, spec: Spec) -> Recorder:
        """The record of runs ``begin:end`` (one entry of a joint record) as views of this one;
        this recorder's ``after_step`` writes them, the part's ``record_state`` its own state."""
        part = Recorder.__new__(Recorder)
        part.mode, part.spec, part.steps = self.mode, spec, self.steps
        # One threshold per run when the runs lie on several landscapes.
        threshold = self.threshold
        part.threshold = threshold[begin:end] if isinstance(threshold, Tensor) else threshold
        part.diverged_at = self.diverged_at[begin:end].clone()
        part.reached_at = self.reached_at[begin:end].clone()
        part.within = None if self.within is None else self.within[:, begin:end]
        part.finite = None if self.finite is None else self.finite[:, begin:end]
        part.path = None if self.path is None else self.path[:, begin:end]
        part.loss = None if self.loss is None else self.loss[:, begin:end]
        part.grad = None if self.grad is None else self.grad[:, begin:end]
        part.state, part.final, part.final_loss = {}, None, None
        return part

    def after_step(
        self, step: int, loss: Tensor, grad: Tensor, shown: Tensor, position: Tensor, optimizer
    ) -> None:
        """Called after step ``step`` with the per-run loss evaluated before that step.

        Divergence and tolerance are decided in ``finish``, from the recorded losses or, without
        them, from the tables of finite and within-tolerance losses written here.
        """
        if self.within is not None:
            torch.le(loss, self.threshold, out=self.within[step])  # NaN is never within
        if self.finite is not None:
            self.finite[step] = torch.isfinite(loss)
        if self.path is None:
            return
        self.loss[step] = loss
        self.path[step + 1] = shown
        if self.grad is not None:
            self.grad[step] = grad
            if self.spec is not None:
                self.record_state(step, position, optimizer)

    def record_state(self, step: int, position: Tensor, optimizer) -> None:
        """Every state buffer of the spec that is per coordinate (kept as (R, D)) or per run
        (first dimension R: Prodigy's d, say); others (a shared step count) are not traced."""
        state = optimizer.state[position]
        runs, dim = self.path.shape[1:]
        for buffer in self.spec.state:
            value = state.get(buffer.name)
            if not isinstance(value, Tensor):
                continue  # absent with these settings
            if value.shape == position.shape:
                value = value.reshape(runs, dim)
            elif value.dim() == 0 or value.shape[0] != runs:
                continue
            if buffer.name not in self.state:
                self.state[buffer.name] = torch.full(
                    (self.steps, *value.shape), float("nan"), dtype=self.path.dtype
                )
            trace = self.state[buffer.name]
            if trace.shape[1:] == value.shape:  # a growing history (L-BFGS) is not traced
                trace[step] = value

    def finish(self, final_loss: Tensor, position: Tensor, center: Tensor, limit: Tensor) -> None:
        """Close the record at the final position, whose loss was never before a step."""
        self.final, self.final_loss = position.clone(), final_loss
        # The first step whose loss was not finite.
        if self.loss is not None:
            self.loss[-1] = final_loss
            self.diverged_at = torch.minimum(
                self.diverged_at, first_true(~torch.isfinite(self.loss))
            )
        elif self.finite is not None:
            self.diverged_at = torch.minimum(self.diverged_at, first_true(~self.finite))
        escaped = ((position - center).abs() > limit).any(dim=-1) | ~torch.isfinite(final_loss)
        self.diverged_at = _first(self.diverged_at, escaped, self.steps)
        if self.threshold is not None:
            reached = self.within if self.loss is None else self.loss[:-1] <= self.threshold
            self.reached_at = _first(first_true(reached), final_loss <= self.threshold, self.steps)
