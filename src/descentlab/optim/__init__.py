"""descentlab.optim: the course's optimizers as drop-in ``torch.optim.Optimizer`` classes.

Each algorithm is one functional update over lists of tensors (``descentlab.optim.<module>.update``)
shared by these classes, the lab and the arena; its facts live in its :class:`Spec`, found through
:func:`spec` by registry key (:func:`names` lists the keys).
"""

from . import (
    adabelief,
    adadelta,
    adafactor,
    adagrad,
    adam,
    adamax,
    asgd,
    bfgs,
    lamb,
    lars,
    lbfgs,
    lion,
    lookahead,
    muon,
    nadam,
    newton,
    prodigy,
    quickprop,
    radam,
    rmsprop,
    rprop,
    schedulefree,
    sgd,
    sophia,
    yogi,
)
from ._base import Optimizer
from .adabelief import AdaBelief
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .bfgs import BFGS
from .lamb import LAMB
from .lars import LARS
from .lbfgs import LBFGS
from .lion import Lion
from .lookahead import Lookahead
from .muon import Muon
from .nadam import NAdam
from .newton import Newton
from .prodigy import Prodigy
from .quickprop import Quickprop
from .radam import RAdam
from .registry import create, names, register, spec
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulefree import ScheduleFreeAdamW, ScheduleFreeSGD
from .sgd import SGD
from .sophia import Sophia
from .spec import Hyperparameter, Paper, Spec, StateBuffer
from .yogi import Yogi

# Registration order is teaching order: the course's sequence of ideas.
_TEACHING_ORDER = (sgd, adagrad, adadelta, rmsprop, adam, nadam, adamax, radam, rprop, yogi, quickprop,
                   newton, bfgs, lbfgs,
                   # beyond the course
                   adafactor, muon, asgd, lion, adabelief, lamb, lars, lookahead, schedulefree,
                   prodigy, sophia)  # fmt: skip
for _module in _TEACHING_ORDER:
    register(*_module.SPECS)

__all__ = [
    "ASGD",
    "AdaBelief",
    "Adafactor",
    "LAMB",
    "LARS",
    "Lion",
    "Lookahead",
    "Muon",
    "Prodigy",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "Sophia",
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
