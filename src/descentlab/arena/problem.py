"""What the arena trains: a built-in task or the user's own model and data, in one shape.

A :class:`Problem` holds the data as tensors (train, validation, test), a model builder that draws
from torch's global RNG, the loss and the metric. :func:`from_task` makes one from a built-in task,
:func:`from_model` from a user's ``model_fn`` and ``loss_fn`` with tensors or DataLoaders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from . import tasks
from ._models import INITS, initialize
from .tasks import Split


def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    """The fraction of rows whose largest logit is the target class."""
    return (outputs.argmax(dim=-1) == targets).to(outputs.dtype).mean()


@dataclass(frozen=True)
class Problem:
    """Data, model builder, loss and metric of one comparison (see the module docstring)."""

    name: str
    title: str
    build_model: Callable[[float, str], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    metric: Callable[[Tensor, Tensor], Tensor] | None
    metric_name: str | None
    train: Split
    val: Split
    test: Split
    batch_size: int
    epochs: int
    target_loss: float | None

    def model(self, dropout: float = 0.0, init: str = "default") -> nn.Module:
        return self.build_model(dropout, init)


def _task_loss(task: tasks.Task, label_smoothing: float) -> Callable[[Tensor, Tensor], Tensor]:
    if task.loss == "cross_entropy":
        return lambda outputs, targets: functional.cross_entropy(
            outputs, targets, label_smoothing=label_smoothing
        )
    if label_smoothing:
        raise ValueError(f"label_smoothing applies to classification; task {task.name!r} is not")
    if task.loss == "mse":
        return functional.mse_loss
    return lambda outputs, targets: outputs.mean()  # "mean": the output is the loss


def from_task(task: str | tasks.Task, label_smoothing: float = 0.0) -> Problem:
    """The problem of a built-in task (by name or Task)."""
    task = task if isinstance(task, tasks.Task) else tasks.get(task)
    data = task.splits()
    return Problem(
        name=task.name,
        title=task.title,
        build_model=lambda dropout, init: task.model(dropout=dropout, init=init),
        loss=_task_loss(task, label_smoothing),
        metric=accuracy if task.metric == "accuracy" else None,
        metric_name=task.metric,
        train=data.train,
        val=data.val,
        test=data.test,
        batch_size=task.batch_size,
        epochs=task.epochs,
        target_loss=task.target_loss,
    )


def as_split(name: str, data: Any) -> Split:
    """``(inputs, targets)`` tensors, a TensorDataset or a DataLoader, as one in-memory Split.

    A DataLoader is read once, in its own order; the arena then batches and shuffles itself, so
    that every configuration's batch order comes from its own seed.
    """
    if isinstance(data, Split):
        return data
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
    ):
        inputs, targets = data
    elif isinstance(data, torch.utils.data.DataLoader | torch.utils.data.Dataset):
        rows = list(data) if isinstance(data, torch.utils.data.DataLoader) else None
        if rows is None:
            rows = [data[index] for index in range(len(data))]  # type: ignore[arg-type]
            inputs = torch.stack([row[0] for row in rows])
            targets = torch.stack([torch.as_tensor(row[1]) for row in rows])
        else:
            if not rows or not isinstance(rows[0], tuple | list) or len(rows[0]) != 2:
                raise ValueError(f"{name}: a DataLoader must yield (inputs, targets) batches")
            inputs = torch.cat([batch[0] for batch in rows])
            targets = torch.cat([batch[1] for batch in rows])
    else:
        raise TypeError(
            f"{name} must be an (inputs, targets) pair of tensors, a Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    if inputs.shape[0] != targets.shape[0] or inputs.shape[0] == 0:
        raise ValueError(
            f"{name}: inputs and targets must have the same number of rows (> 0), got "
            f"{inputs.shape[0]} and {targets.shape[0]}"
        )
    return Split(inputs, targets)


def from_model(
    model_fn: Callable[[], nn.Module],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    train: Any,
    val: Any,
    test: Any = None,
    *,
    metric: str | Callable[[Tensor, Tensor], Tensor] | None = None,
    batch_size: int = 32,
    epochs: int = 10,
    target_loss: float | None = None,
    name: str = "my-model",
) -> Problem:
    """The problem of the user's own model: ``model_fn()`` builds a fresh model (from torch's
    global RNG), ``loss_fn(outputs, targets)`` returns the mean loss of a batch."""
    if not callable(model_fn) or not callable(loss_fn):
        raise TypeError("model_fn and loss_fn must be callables")
    if metric == "accuracy":
        metric_fn, metric_name = accuracy, "accuracy"
    elif metric is None or callable(metric):
        metric_fn, metric_name = metric, (getattr(metric, "__name__", "metric") if metric else None)
    else:
        raise ValueError(f"metric must be 'accuracy', a callable or None, got {metric!r}")
    train_split, val_split = as_split("train", train), as_split("val", val)
    test_split = as_split("test", test) if test is not None else val_split

    def build(dropout: float, init: str) -> nn.Module:
        if dropout:
            raise ValueError(
                "dropout is an option of the built-in tasks; put Dropout in your model"
            )
        if init not in INITS:
            raise ValueError(f"Invalid init {init!r}; choose one of {', '.join(INITS)}")
        model = model_fn()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model_fn must return a torch.nn.Module, got {type(model).__name__}")
        return initialize(model, init)

    problem = Problem(
        name=name,
        title=f"your model ({name})",
        build_model=build,
        loss=loss_fn,
        metric=metric_fn,
        metric_name=metric_name,
        train=train_split,
        val=val_split,
        test=test_split,
        batch_size=batch_size,
        epochs=epochs,
        target_loss=target_loss,
    )
    check_fits(problem)
    return problem


def check_fits(problem: Problem) -> None:
    """Run the model on two rows and the loss on its output: a clear error if they don't fit."""
    model = problem.model()
    inputs, targets = problem.train.inputs[:2], problem.train.targets[:2]
    try:
        outputs = model(inputs)
    except Exception as error:  # the user's model: any failure is reported, named
        raise ValueError(
            f"the model does not accept the training inputs of shape {tuple(inputs.shape)}: {error}"
        ) from None
    try:
        loss = problem.loss(outputs, targets)
    except Exception as error:
        raise ValueError(
            f"the loss does not fit the model's output: outputs of shape {tuple(outputs.shape)} "
            f"against targets of shape {tuple(targets.shape)} ({error})"
        ) from None
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return one number (a 0-d tensor), got {shape}")
