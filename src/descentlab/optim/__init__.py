"""descentlab.optim: the course's optimizers as drop-in ``torch.optim.Optimizer`` classes.

Each algorithm is one functional update over lists of tensors (``descentlab.optim.<module>.update``)
shared by these classes, the lab and the arena; its facts live in its :class:`Spec`, found through
:func:`spec` by registry key (:func:`names` lists the keys).
"""

from . import (
    adadelta,
    adagrad,
    adam,
    adamax,
    bfgs,
    lbfgs,
    nadam,
    newton,
    quickprop,
    radam,
    rmsprop,
    rprop,
    sgd,
    yogi,
)
from ._base import Optimizer
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .bfgs import BFGS
from .lbfgs import LBFGS
from .nadam import NAdam
from .newton import Newton
from .quickprop import Quickprop
from .radam import RAdam
from .registry import create, names, register, spec
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD
from .spec import Hyperparameter, Paper, Spec, StateBuffer
from .yogi import Yogi

# Registration order is teaching order: the course's sequence of ideas.
_TEACHING_ORDER = (sgd, adagrad, adadelta, rmsprop, adam, nadam, adamax, radam, rprop, yogi, quickprop,
                   newton, bfgs, lbfgs)  # fmt: skip
for _module in _TEACHING_ORDER:
    register(*_module.SPECS)

__all__ = [
    "BFGS",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Hyperparameter",
    "NAdam",
    "Newton",
    "Optimizer",
    "Paper",
    "Quickprop",
    "RAdam",
    "RMSprop",
    "Rprop",
    "Spec",
    "StateBuffer",
    "Yogi",
    "create",
    "names",
    "register",
    "spec",
]
