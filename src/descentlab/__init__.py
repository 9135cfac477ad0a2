"""descentlab: learn, compare and use gradient-based optimizers for deep learning."""

__version__ = "0.1.0"
