"""RAdam against Adam, with and without learning-rate warmup, on handwritten digits.

The classic assignment "implement RAdam and train a classifier with PyTorch", answered with
descentlab's optimizers in a plain training loop. RAdam (Liu et al. 2020, *On the Variance of the
Adaptive Learning Rate and Beyond*, ICLR) starts from an observation about Adam: in the first
steps its second-moment estimate v_t averages only a few squared gradients, so the adaptive step
size eta / sqrt(v_t) has a huge variance, and early updates can be erratic. Practitioners tamed
that with a warmup (a small learning rate that grows over the first steps). RAdam builds the cure
into the update: while the variance is intractable (approximated SMA length rho_t <= 5) it takes
plain momentum steps, then multiplies Adam's step by a rectification factor r_t < 1 that rises
towards 1. The update itself lives once, in ``descentlab.optim.radam`` (its docstring has the
equations); here we only train with it.

Three setups, each over several seeds (the seed fixes the initial weights and the batch order):
Adam, Adam with a linear warmup (``descentlab.schedules``, torch's ``LinearLR``), and RAdam.
Each setup runs at a tuned learning rate (0.01) and at one too large for Adam's first steps (0.3),
where the warmup, built in or added, is what keeps training alive. Run::

    python examples/radam_digits.py                       # writes out/radam_digits.png
    python examples/radam_digits.py --lrs 0.03 --epochs 10 --seeds 2 --out /tmp/radam.png
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files; never open a window
import matplotlib.pyplot as plt
import torch
from torch import nn

from descentlab.arena import tasks
from descentlab.optim import Adam, RAdam
from descentlab.plots.palette import colour
from descentlab.schedules import create as schedule

SETUPS = ("Adam", "Adam + warmup", "RAdam")


def make_optimizer(setup: str, model: nn.Module, lr: float, warmup_steps: int):
    """The optimizer of a setup and its learning-rate scheduler (None: a constant lr)."""
    if setup == "RAdam":
        return RAdam(model.parameters(), lr=lr), None
    optimizer = Adam(model.parameters(), lr=lr)
    if setup == "Adam":
        return optimizer, None
    # lr grows linearly from lr/100 to lr over the first warmup_steps optimizer steps, then holds.
    warmup = schedule("linear_warmup", warmup=warmup_steps, start_factor=0.01)
    return optimizer, warmup.scheduler(optimizer)


def accuracy(model: nn.Module, split: tasks.Split) -> float:
    with torch.no_grad():
        return (model(split.inputs).argmax(dim=1) == split.targets).float().mean().item()


def train(setup: str, seed: int, lr: float, data: tasks.Splits, arguments) -> dict[str, list]:
    """Train one model; per epoch, the mean training loss of its batches and the val accuracy."""
    torch.manual_seed(seed)  # the initial weights
    model = tasks.get("digits-mlp").model()
    optimizer, scheduler = make_optimizer(setup, model, lr, arguments.warmup_steps)
    batch_order = torch.Generator().manual_seed(seed)
    history = {"train_loss": [], "val_accuracy": []}
    for _ in range(arguments.epochs):
        model.train()
        losses = []
        shuffled = torch.randperm(len(data.train), generator=batch_order)  # a new order each epoch
        for rows in shuffled.split(arguments.batch_size):
            loss = nn.functional.cross_entropy(
                model(data.train.inputs[rows]), data.train.targets[rows]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()  # the schedule counts optimizer steps, not epochs
            losses.append(loss.item())
        model.eval()
        history["train_loss"].append(statistics.fmean(losses))
        history["val_accuracy"].append(accuracy(model, data.val))
    history["test_accuracy"] = [accuracy(model, data.test)]
    return history


def draw(results: dict[float, dict[str, list[dict]]], path: Path, arguments) -> None:
    """Per learning rate (a row): training loss and validation accuracy per epoch, the mean over
    seeds as a line and the range from min to max as a band."""
    figure, axes_rows = plt.subplots(
        len(results), 2, figsize=(11, 3.8 * len(results)), squeeze=False
    )
    epochs = range(1, arguments.epochs + 1)
    for (lr, by_setup), (loss_axes, accuracy_axes) in zip(results.items(), axes_rows, strict=True):
        for setup, runs in by_setup.items():
            style = {
                "color": colour("radam" if setup == "RAdam" else "adam"),
                "linestyle": "--" if "warmup" in setup else "-",
            }
            for axes, key in ((loss_axes, "train_loss"), (accuracy_axes, "val_accuracy")):
                curves = torch.tensor([run[key] for run in runs])
                axes.plot(epochs, curves.mean(0), label=setup, **style)
                axes.fill_between(
                    epochs, curves.min(0).values, curves.max(0).values, alpha=0.15, **style
                )
        loss_axes.set(
            yscale="log",
            xlabel="epoch",
            ylabel="training loss (epoch mean)",
            title=f"Training loss, lr {lr:g}",
        )
        accuracy_axes.set(
            xlabel="epoch", ylabel="validation accuracy", title=f"Validation accuracy, lr {lr:g}"
        )
        accuracy_axes.set_ylim(0.0, 1.0)
        for axes in (loss_axes, accuracy_axes):
            axes.grid(alpha=0.3)
            axes.legend()
    figure.suptitle(
        f"Digits MLP (64-100-10), batch {arguments.batch_size}, warmup "
        f"{arguments.warmup_steps} steps; {arguments.seeds} seed(s), band from min to max"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_table(results: dict[float, dict[str, list[dict]]]) -> None:
    """Mean ± standard deviation over seeds of each setup's numbers."""

    def summary(values: list[float], digits: int) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"

    print(
        f"{'lr':>6}  {'setup':<14} {'loss, epoch 1':>16} {'final loss':>16} "
        f"{'best val acc':>14} {'test acc':>14}"
    )
    for lr, by_setup in results.items():
        for setup, runs in by_setup.items():
            print(
                f"{lr:>6g}  {setup:<14} {summary([r['train_loss'][0] for r in runs], 3):>16} "
                f"{summary([r['train_loss'][-1] for r in runs], 4):>16} "
                f"{summary([max(r['val_accuracy']) for r in runs], 3):>14} "
                f"{summary([r['test_accuracy'][0] for r in runs], 3):>14}"
            )


def learning_rates(text: str) -> list[float]:
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"numbers separated by commas, got {text!r}") from None
    if not all(value > 0 for value in values):
        raise argparse.ArgumentTypeError(f"learning rates must be positive, got {text!r}")
    return values


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/radam_digits.png", help="where to write the figure")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--lrs",
        type=learning_rates,
        default=[0.01, 0.3],
        help="learning rates, one row of the figure each (default: 0.01,0.3: a tuned one and "
        "one too large for Adam's first steps)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=100)
    arguments = parser.parse_args(argv)
    for name in ("epochs", "seeds", "batch_size", "warmup_steps"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they save
    data = tasks.get("digits-mlp").splits()
    start = time.perf_counter()
    results = {
        lr: {
            setup: [train(setup, seed, lr, data, arguments) for seed in range(arguments.seeds)]
            for setup in SETUPS
        }
        for lr in arguments.lrs
    }
    print_table(results)
    draw(results, Path(arguments.out), arguments)
    trainings = len(arguments.lrs) * len(SETUPS) * arguments.seeds
    print(f"{trainings} trainings in {time.perf_counter() - start:.1f} s; wrote {arguments.out}")


if __name__ == "__main__":
    main()
