"""descentlab.lab: race optimizers on loss landscapes, thousands of runs at once.

``race(landscape, optimizers, starts, steps)`` returns a :class:`RaceResult` of tensors (final
state and metrics per run; paths, gradients and the optimizers' state buffers when recorded).
"""

from .constraints import Ball, Box
from .race import race, race_assorted
from .result import RaceResult, RunInfo

__all__ = ["Ball", "Box", "RaceResult", "RunInfo", "race", "race_assorted"]
