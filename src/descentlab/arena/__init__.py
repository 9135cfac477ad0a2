"""descentlab.arena: fair, equally tuned optimizer comparisons on real tasks (:mod:`.tasks`)."""

from . import tasks

__all__ = ["tasks"]
