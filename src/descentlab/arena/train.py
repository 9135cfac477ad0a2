"""K configurations of one optimizer trained as ONE stacked model.

Every configuration k gets its own model, drawn from torch's RNG seeded with its seed, and its own
batch order, drawn from a generator with the same seed. Their parameters are stacked along a new
leading dimension (``torch.func.stack_module_state``), the forward pass runs the model on each
configuration's own mini-batch through ``torch.func.functional_call`` under ``torch.func.vmap``,
and one optimizer of the registry steps the stacked parameters with ``stack_dims=1`` and one value
per configuration for each hyperparameter (tensors of shape ``(K,)``). Configurations never mix:
a configuration trained in a stack of 64 follows the same path as trained alone (to float rounding).

Models that vmap cannot run (BatchNorm updates its running statistics in place, for example) are
trained one configuration after another, with a notice that says why.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from .. import optim
from ..optim import _hyper
from ..optim.spec import Spec
from ._models import INITS
from .problem import Problem
from .results import Run

#: A training loss this many times the first step's (or not finite) marks a run diverged.
DIVERGENCE_FACTOR = 1e3


@dataclass(frozen=True)
class Settings:
    """How each configuration trains.

    ``batch_size``: None trains on the whole training set per step (batch gradient descent), 1 is
    stochastic gradient descent, anything else mini-batches reshuffled every epoch. ``clip`` caps
    each configuration's gradient norm (over all its parameters, as
    ``torch.nn.utils.clip_grad_norm_``). ``early_stopping``: stop a configuration after this many
    epochs without a better validation score, and report it at its best epoch.
    ``weight_decay`` overrides the optimizer's own weight decay (where it has one).
    """

    epochs: int
    batch_size: int | None
    dropout: float = 0.0
    init: str = "default"
    label_smoothing: float = 0.0
    clip: float | None = None
    early_stopping: int | None = None
    weight_decay: float | None = None

    @property
    def mode(self) -> str:
        if self.batch_size is None:
            return "batch"
        return "stochastic" if self.batch_size == 1 else "mini-batch"

    def check(self) -> None:
        _hyper.check_integer("epochs", self.epochs, 1)
        _hyper.check_integer("batch_size", self.batch_size, 1, optional=True)
        if not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"Invalid dropout: {self.dropout!r}; it must lie in [0, 1)")
        if self.init not in INITS:
            raise ValueError(f"Invalid init: {self.init!r}; choose one of {', '.join(INITS)}")
        if not isinstance(self.label_smoothing, int | float) or not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"Invalid label_smoothing: {self.label_smoothing!r}; it must lie in [0, 1)"
            )
        if self.clip is not None and (not isinstance(self.clip, int | float) or self.clip <= 0):
            raise ValueError(f"Invalid clip: {self.clip!r}; it must be a number > 0")
        _hyper.check_integer("early_stopping", self.early_stopping, 1, optional=True)
        if self.weight_decay is not None:
            _hyper.check_nonnegative("weight_decay", self.weight_decay)


def _optimizer_arguments(
    entry: Spec, configs: list[dict[str, float]], settings: Settings
) -> dict[str, Any]:
    """Constructor arguments: a (K,) tensor for each hyperparameter that differs between configs."""
    names = sorted({name for config in configs for name in config})
    values: dict[str, Any] = {}
    for name in names:
        column = [float(config.get(name, entry.hyperparameter(name).default)) for config in configs]
        values[name] = torch.tensor(column) if len(set(column)) > 1 else column[0]
    if settings.weight_decay is not None:
        if not any(h.name == "weight_decay" for h in entry.hyperparameters):
            raise ValueError(f"{entry.key} has no weight_decay to set")
        values["weight_decay"] = settings.weight_decay
    return values


class _Stack:
    """The K models as stacked tensors, their optimizer(s) and the vmapped loss."""

    def __init__(self, problem: Problem, key: str, configs, seeds, settings: Settings) -> None:
        entry = optim.spec(key)
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(problem.model(settings.dropout, settings.init))
        self.base = copy.deepcopy(models[0]).to("meta")
        self.params, self.buffers = stack_module_state(models)
        self.names = list(self.params)
        arguments = _optimizer_arguments(entry, configs, settings)
        tensors = list(self.params.values())
        self.notices: list[str] = []
        if entry.matrices_only:
            # Muon orthogonalizes matrices; the biases (and convolution kernels) take Adam at its
            # defaults, the companion Muon's authors use.
            matrices = [t for t in tensors if t.dim() == 3]
            rest = [t for t in tensors if t.dim() != 3]
            self.optimizers = [
                optim.create(key, [{"params": matrices, "stack_dims": 1}], **arguments)
            ]
            if rest:
                self.optimizers.append(optim.create("adam", [{"params": rest, "stack_dims": 1}]))
                self.notices.append(
                    f"{key} updates only the weight matrices; biases and convolution kernels "
                    "use Adam at its defaults"
                )
        else:
            self.optimizers = [
                optim.create(key, [{"params": tensors, "stack_dims": 1}], **arguments)
            ]
        self.needs_closure = entry.needs_closure
        # Hessian-vector products (Newton, Sophia) differentiate through the gradient.
        self.create_graph = entry.order > 1
        loss, metric, base = problem.loss, problem.metric, self.base

        def batch_loss(params, buffers, inputs, targets):
            return loss(functional_call(base, (params, buffers), (inputs,)), targets)

        def evaluation(params, buffers, inputs, targets):
            outputs = functional_call(base, (params, buffers), (inputs,))
            score = metric(outputs, targets) if metric else outputs.new_zeros(())
            return loss(outputs, targets), score

        randomness = "different" if settings.dropout else "error"
        self.train_losses = vmap(batch_loss, randomness=randomness)
        self.evaluate_all = vmap(evaluation, in_dims=(0, 0, None, None))

    def step(self, inputs: Tensor, targets: Tensor, clip: float | None) -> Tensor:
        """One optimizer step of every configuration on its batch; the per-config losses (K,)."""
        self.base.train()
        tensors = list(self.params.values())
        evaluated: list[Tensor] = []

        def closure() -> Tensor:
            for tensor in tensors:
                tensor.grad = None
            losses = self.train_losses(self.params, self.buffers, inputs, targets)
            losses.sum().backward(create_graph=self.create_graph)
            if clip is not None and not self.create_graph:
                _clip_per_config(tensors, clip)
            evaluated.append(losses.detach())
            return losses.detach()

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            if self.needs_closure:
                for optimizer in self.optimizers:
                    optimizer.step(closure)
            else:
                closure()
                for optimizer in self.optimizers:
                    optimizer.step()
        return evaluated[0]

    @torch.no_grad()
    def evaluate(self, inputs: Tensor, targets: Tensor, params=None) -> tuple[Tensor, Tensor]:
        """Loss and metric of every configuration on a whole split: two (K,) tensors."""
        self.base.eval()
        for optimizer in self.optimizers:
            if hasattr(optimizer, "eval") and callable(optimizer.eval):
                optimizer.eval()  # Schedule-Free: judge the averaged point
        try:
            return self.evaluate_all(params or self.params, self.buffers, inputs, targets)
        finally:
            for optimizer in self.optimizers:
                if hasattr(optimizer, "train") and callable(optimizer.train):
                    optimizer.train()

    def layer_norms(self) -> dict[str, Tensor]:
        """Each layer's gradient norm per configuration: name -> (K,)."""
        norms = {}
        for name, tensor in self.params.items():
            if tensor.grad is not None:
                norms[name] = torch.linalg.vector_norm(tensor.grad.flatten(1), dim=1).detach()
        return norms


def _clip_per_config(tensors: list[Tensor], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ applied to each configuration's own gradients."""
    grads = [t.grad for t in tensors if t.grad is not None]
    squares = sum(torch.linalg.vector_norm(g.flatten(1), dim=1) ** 2 for g in grads)
    factor = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(factor.reshape(-1, *([1] * (grad.dim() - 1))))


def train(
    problem: Problem,
    key: str,
    configs: list[dict[str, float]],
    seeds: list[int],
    settings: Settings,
    *,
    phase: str = "tune",
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Run], list[str]]:
    """Train ``configs[k]`` from ``seeds[k]`` for every k as one stacked model.

    Returns one :class:`Run` per configuration and the notices worth printing. ``progress`` is
    called with the number of steps done.
    """
    settings.check()
    if len(configs) != len(seeds) or not configs:
        raise ValueError("give one seed per configuration (and at least one configuration)")
    started = time.perf_counter()
    stack = _Stack(problem, key, configs, seeds, settings)
    count = len(configs)
    train_inputs, train_targets = problem.train.inputs, problem.train.targets
    rows = train_inputs.shape[0]
    batch = rows if settings.batch_size is None else min(settings.batch_size, rows)
    steps_per_epoch = math.ceil(rows / batch)
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    losses: list[Tensor] = []
    val_loss, val_metric, norms_per_epoch = [], [], []
    best_score = torch.full((count,), math.inf)
    best_epoch = torch.zeros(count, dtype=torch.long)
    best_params = None
    reference = None
    for epoch in range(settings.epochs):
        orders = torch.stack([torch.randperm(rows, generator=g) for g in generators])
        epoch_norms: dict[str, Tensor] = {}
        for start in range(0, rows, batch):
            rows_of_batch = orders[:, start : start + batch]
            step_losses = stack.step(
                train_inputs[rows_of_batch], train_targets[rows_of_batch], settings.clip
            )
            losses.append(step_losses)
            for name, norm in stack.layer_norms().items():
                epoch_norms[name] = epoch_norms.get(name, 0) + norm / steps_per_epoch
            if progress is not None:
                progress(1)
        norms_per_epoch.append(epoch_norms)
        loss, metric = stack.evaluate(problem.val.inputs, problem.val.targets)
        val_loss.append(loss)
        val_metric.append(metric)
        if reference is None:
            reference = losses[0].abs()  # the loss of the untrained models
        if settings.early_stopping is not None:
            score = -metric if problem.metric else loss
            score = torch.where(torch.isfinite(score), score, math.inf)
            improved = score < best_score
            best_score = torch.where(improved, score, best_score)
            best_epoch = torch.where(improved, epoch, best_epoch)
            best_params = _keep_best(best_params, stack.params, improved)
            if bool((epoch - best_epoch >= settings.early_stopping).all()):
                break
    seconds = (time.perf_counter() - started) / count
    test_params = best_params if settings.early_stopping is not None else None
    test_loss, test_metric = stack.evaluate(problem.test.inputs, problem.test.targets, test_params)
    train_loss = torch.stack(losses)  # (steps, K)
    runs = []
    for k in range(count):
        curve = train_loss[:, k].tolist()
        diverged_at = _diverged_at(curve, float(reference[k]) if reference is not None else 1.0)
        runs.append(
            Run(
                optimizer=key,
                phase=phase,
                hyperparameters={name: float(v) for name, v in configs[k].items()},
                seed=seeds[k],
                train_loss=curve,
                val_loss=[float(v[k]) for v in val_loss],
                val_metric=[float(v[k]) for v in val_metric] if problem.metric else None,
                test_loss=float(test_loss[k]),
                test_metric=float(test_metric[k]) if problem.metric else None,
                steps_per_epoch=steps_per_epoch,
                steps_to_target=_steps_to_target(curve, steps_per_epoch, problem.target_loss),
                seconds=seconds,
                diverged=diverged_at is not None,
                diverged_at=diverged_at,
                best_epoch=int(best_epoch[k]) if settings.early_stopping is not None else None,
                grad_norms={
                    name: [float(epoch[name][k]) for epoch in norms_per_epoch if name in epoch]
                    for name in stack.names
                },
            )
        )
    return runs, stack.notices


def _keep_best(best: dict[str, Tensor] | None, params: dict[str, Tensor], improved: Tensor):
    if best is None:
        return {name: tensor.detach().clone() for name, tensor in params.items()}
    for name, tensor in params.items():
        mask = improved.reshape(-1, *([1] * (tensor.dim() - 1)))
        best[name] = torch.where(mask, tensor.detach(), best[name])
    return best


def _diverged_at(curve: list[float], reference: float) -> int | None:
    limit = DIVERGENCE_FACTOR * max(reference, 1e-3)
    for step, value in enumerate(curve):
        if not math.isfinite(value) or abs(value) > limit:
            return step
    return None


def _steps_to_target(curve: list[float], steps_per_epoch: int, target: float | None) -> int | None:
    """The first epoch end at which the epoch's mean training loss is at most ``target``."""
    if target is None:
        return None
    for end in range(steps_per_epoch, len(curve) + 1, steps_per_epoch):
        if sum(curve[end - steps_per_epoch : end]) / steps_per_epoch <= target:
            return end
    return None
