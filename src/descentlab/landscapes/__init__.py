"""Test functions for optimizers, and landscapes typed by the user (torch only).

``names()`` lists the built-in landscapes, ``get(name, dim=None)`` builds one, and
``parse(text, domain=None)`` compiles an expression such as ``"x**2 + 10*sin(y)"`` through a
whitelist parser. A :class:`Landscape` maps positions of shape (N, D) to losses of shape (N,).
"""

from ._base import Landscape, Point
from .catalog import get, n_dimensional_names, names
from .expression import ExpressionError, parse

__all__ = [
    "ExpressionError",
    "Landscape",
    "Point",
    "get",
    "n_dimensional_names",
    "names",
    "parse",
]
