"""descentlab.arena: fair, equally tuned optimizer comparisons on real tasks and on your model.

:mod:`.tasks` holds the built-in tasks, :func:`compare` runs a comparison (tuning, seeds, storage,
workers) and returns a :class:`~.results.Comparison` with its recommendation; :mod:`.report`
writes it as a self-contained HTML page with JSON and CSV beside it.
"""

from . import tasks
from .compare import compare
from .results import Comparison, Recommendation, Run, Summary

__all__ = ["Comparison", "Recommendation", "Run", "Summary", "compare", "tasks"]
