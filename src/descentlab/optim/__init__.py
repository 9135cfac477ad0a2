"""descentlab.optim: the course's optimizers as drop-in ``torch.optim.Optimizer`` classes.

Each algorithm is one functional update over lists of tensors (``descentlab.optim.<module>.update``)
shared by these classes, the lab and the arena; its facts live in its :class:`Spec`.
"""

from . import adam, sgd
from ._base import Optimizer
from .adam import Adam, AdamW
from .registry import create, names, register, spec
from .sgd import SGD
from .spec import Hyperparameter, Paper, Spec, StateBuffer

for _module in (sgd, adam):
    register(*_module.SPECS)

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Hyperparameter",
    "Optimizer",
    "Paper",
    "Spec",
    "StateBuffer",
    "create",
    "names",
    "register",
    "spec",
]
