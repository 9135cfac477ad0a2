"""descentlab.plots: figures and animations of lab results (matplotlib; no training code).

``palette`` has no matplotlib dependency; the figure functions import matplotlib when first used.
"""

from .palette import colour

__all__ = ["colour"]
