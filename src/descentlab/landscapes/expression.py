"""Landscapes typed by the user, e.g. ``x**2 + 10*sin(y)``, through a whitelist parser.

The text is parsed with Python's ``ast`` module (parsing never runs code) and the tree is walked
once, allowing only: numbers, the variables x, y, z, the constants pi and e, unary + and -, the
binary operators + - * / **, and calls of the functions in :data:`FUNCTIONS` by bare name. Every
other construct (attribute access, indexing, lambdas, keywords, strings, comparisons, ...) is
rejected with an :class:`ExpressionError` that points at the offending part of the text. The walk
compiles the tree into nested Python closures over torch operations; nothing is ever passed to
``eval`` or ``exec``.

Sizes are bounded so that any input is answered quickly: the text's length, bracket nesting,
tree depth and node count, number magnitudes, and exponents (constant, at most
:data:`MAX_EXPONENT` in magnitude). Variable-free parts are folded to one number at parse time
(in float64 torch arithmetic, so overflow gives inf rather than an exception or a huge integer).

The dimension is the highest variable used: x alone gives a 1-D landscape, y a 2-D one, z 3-D.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._base import Landscape, box, check_domain

MAX_LENGTH = 500
MAX_BRACKETS = 30  # nesting of ( [ {
MAX_DEPTH = 100  # of the syntax tree: a sum of n terms is n deep
MAX_NODES = 250
MAX_NUMBER = 1e6
MAX_EXPONENT = 64
DEFAULT_HALF_WIDTH = 3.0

VARIABLES = ("x", "y", "z")
CONSTANTS = {"pi": math.pi, "e": math.e}

# name -> (torch function, LaTeX operator); each takes one argument except min and max.
FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor], str]] = {
    "sin": (torch.sin, r"\sin"),
    "cos": (torch.cos, r"\cos"),
    "tan": (torch.tan, r"\tan"),
    "asin": (torch.asin, r"\arcsin"),
    "acos": (torch.acos, r"\arccos"),
    "atan": (torch.atan, r"\arctan"),
    "arcsin": (torch.asin, r"\arcsin"),
    "arccos": (torch.acos, r"\arccos"),
    "arctan": (torch.atan, r"\arctan"),
    "sinh": (torch.sinh, r"\sinh"),
    "cosh": (torch.cosh, r"\cosh"),
    "tanh": (torch.tanh, r"\tanh"),
    "exp": (torch.exp, r"\exp"),
    "log": (torch.log, r"\log"),
    "log2": (torch.log2, r"\log_2"),
    "log10": (torch.log10, r"\log_{10}"),
    "sqrt": (torch.sqrt, r"\sqrt"),
    "abs": (torch.abs, "abs"),
    "sigmoid": (torch.sigmoid, r"\operatorname{sigmoid}"),
    "softplus": (F.softplus, r"\operatorname{softplus}"),
    "min": (torch.minimum, r"\min"),
    "max": (torch.maximum, r"\max"),
}
_VARIADIC = {"min", "max"}

_BINARY = {
    ast.Add: ("+", torch.add),
    ast.Sub: ("-", torch.sub),
    ast.Mult: ("*", torch.mul),
    ast.Div: ("/", torch.div),
}

_DESCRIPTIONS = {
    ast.Attribute: "attribute access (a.b) is not allowed",
    ast.Subscript: "indexing (a[i]) is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "'and'/'or' are not allowed",
    ast.IfExp: "'if ... else' is not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
}

Compiled = Callable[[Sequence[Tensor]], Tensor]
Value = float | Compiled  # a folded constant or a closure over the coordinate columns


class ExpressionError(ValueError):
    """A typed expression was rejected; ``column`` (0-based) and ``end`` locate the culprit.

    ``str(error)`` shows the message, then the expression with carets under the offending part.
    """

    def __init__(self, message: str, text: str, column: int, end: int | None = None) -> None:
        self.message = message
        self.text = text
        self.column = max(0, min(column, len(text)))
        self.end = max(self.column + 1, end if end is not None else self.column + 1)
        super().__init__(message)

    def __str__(self) -> str:
        # One printable ASCII character per column keeps the carets under the culprit.
        text = "".join(char if " " <= char <= "~" else "?" for char in self.text)
        # Long inputs: show a window of at most ~80 columns that starts near the culprit.
        left = max(0, self.column - 30)
        right = min(len(text), left + 80)
        shown = ("..." if left else "") + text[left:right] + ("..." if right < len(text) else "")
        indent = self.column - left + (3 if left else 0)
        width = max(1, min(self.end, right) - self.column)
        return (
            f"{self.message} (column {self.column + 1})\n  {shown}\n  {' ' * indent}{'^' * width}"
        )


def parse(
    text: str,
    domain: Sequence[float] | Sequence[Sequence[float]] | None = None,
    dim: int | None = None,
) -> Landscape:
    """Compile the expression ``text`` into a :class:`Landscape`.

    Args:
        text: e.g. ``"x**2 + 10*sin(y)"``; variables x, y, z; at most ``MAX_LENGTH`` characters.
        domain: plotting box, one ``(low, high)`` pair for every axis or one pair per axis;
            default ``[-3, 3]`` on each axis.
        dim: force a dimension at least as large as the variables used (e.g. 2 for ``x**2``
            plotted in the plane); default: the highest variable used.

    Raises:
        ExpressionError: the text is not an allowed expression (a ValueError).
        TypeError: ``text`` is not a string, or ``dim`` is not an integer.
        ValueError: a bad ``domain`` or ``dim``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"dim must be an integer or None, got {type(dim).__name__}")
    tree, offset = _syntax_tree(text)
    compiler = _Compiler(text, offset)
    value = compiler.compile(tree.body, depth=1)
    used = max((VARIABLES.index(name) + 1 for name in compiler.variables), default=1)
    if dim is None:
        dim = used
    elif not used <= dim <= len(VARIABLES):
        raise ValueError(f"dim must be between {used} (variables used) and 3, got {dim}")
    domain = box(-DEFAULT_HALF_WIDTH, DEFAULT_HALF_WIDTH, dim) if domain is None else domain
    return Landscape(
        key="expression",
        title=text.strip(),
        latex="f = " + _Latex().render(tree.body),
        dim=dim,
        domain=check_domain(domain, dim),
        function=_landscape_function(value),
        teaches="A landscape of your own: explore where each optimizer goes.",
        reference="typed by the user",
    )


def _landscape_function(value: Value) -> Callable[[Tensor], Tensor]:
    def function(positions: Tensor) -> Tensor:
        if isinstance(value, float):
            # Keep the result attached to the graph so autograd gives zero gradients.
            return positions.sum(dim=-1) * 0.0 + value
        return value(torch.unbind(positions, dim=-1))

    return function


def _syntax_tree(text: str) -> tuple[ast.Expression, int]:
    """Check the raw text, then parse it; returns the tree and the stripped leading spaces."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long: {len(text)} characters, at most {MAX_LENGTH}",
            text,
            MAX_LENGTH,
            len(text),
        )
    if not text.strip():
        raise ExpressionError("expression is empty", text, 0)
    for column, char in enumerate(text):
        if not (" " <= char <= "~"):
            raise ExpressionError(
                f"character {char!r} is not allowed (only printable ASCII)", text, column
            )
    depth = 0
    for column, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if depth > MAX_BRACKETS:
            raise ExpressionError(
                f"brackets nested too deeply (more than {MAX_BRACKETS})", text, column
            )
    # Python rejects leading spaces in a lone expression ("unexpected indent"); users type them.
    stripped = text.lstrip(" ")
    offset = len(text) - len(stripped)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "1 is 1"
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as error:
        column = (error.offset or 0) - 1 + offset
        if error.offset is None or not offset <= column < len(text):
            column = len(text)  # Python could not say where: the text ended too early.
        raise ExpressionError(f"invalid syntax: {error.msg}", text, column) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ExpressionError(f"cannot parse: {error}", text, 0) from None
    return tree, offset


def _fold(operation: Callable[..., Tensor], *values: float) -> float:
    """Apply a torch operation to constants in float64: overflow gives inf, never an exception."""
    tensors = [torch.tensor(value, dtype=torch.float64) for value in values]
    return float(operation(*tensors))


class _Compiler:
    """Walks the syntax tree, checking every node against the whitelist and building closures."""

    def __init__(self, text: str, offset: int) -> None:
        self.text = text
        self.offset = offset
        self.variables: set[str] = set()
        self.nodes = 0

    def error(self, message: str, node: ast.AST) -> ExpressionError:
        start = getattr(node, "col_offset", 0) + self.offset
        end = getattr(node, "end_col_offset", None)
        return ExpressionError(
            message, self.text, start, None if end is None else end + self.offset
        )

    def compile(self, node: ast.AST, depth: int) -> Value:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"expression too complex: more than {MAX_NODES} parts", node)
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH})", node)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        message = _DESCRIPTIONS.get(type(node), f"{type(node).__name__} is not allowed")
        raise self.error(message, node)

    def constant(self, node: ast.Constant) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "strings" if isinstance(value, str | bytes) else f"{type(value).__name__} values"
            raise self.error(f"{kind} are not allowed, only real numbers", node)
        if not abs(value) <= MAX_NUMBER:  # also catches nan
            raise self.error(f"number too large: at most {MAX_NUMBER:g} in magnitude", node)
        return float(value)

    def name(self, node: ast.Name) -> Value:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in VARIABLES:
            self.variables.add(node.id)
            index = VARIABLES.index(node.id)
            return lambda columns: columns[index]
        hint = " (call functions with parentheses)" if node.id in FUNCTIONS else ""
        raise self.error(
            f"unknown name {node.id!r}{hint}; variables are x, y, z, constants pi, e", node
        )

    def unary(self, node: ast.UnaryOp, depth: int) -> Value:
        if not isinstance(node.op, ast.UAdd | ast.USub):
            raise self.error("only unary + and - are allowed", node)
        operand = self.compile(node.operand, depth + 1)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(operand, float):
            return -operand
        return lambda columns: torch.neg(operand(columns))

    def binary(self, node: ast.BinOp, depth: int) -> Value:
        if isinstance(node.op, ast.Pow):
            return self.power(node, depth)
        if type(node.op) not in _BINARY:
            symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise self.error(f"operator {symbol} is not allowed; use + - * / **", node)
        operation = _BINARY[type(node.op)][1]
        left = self.compile(node.left, depth + 1)
        right = self.compile(node.right, depth + 1)
        if isinstance(left, float) and isinstance(right, float):
            return _fold(operation, left, right)
        if isinstance(left, float):
            return lambda columns: operation(left, right(columns))
        if isinstance(right, float):
            return lambda columns: operation(left(columns), right)
        return lambda columns: operation(left(columns), right(columns))

    def power(self, node: ast.BinOp, depth: int) -> Value:
        exponent = self.compile(node.right, depth + 1)
        if not isinstance(exponent, float):
            raise self.error(
                "exponents must be constants (for a**x write exp(x*log(a)))", node.right
            )
        if not abs(exponent) <= MAX_EXPONENT:
            raise self.error(f"exponent too large: at most {MAX_EXPONENT} in magnitude", node.right)
        base = self.compile(node.left, depth + 1)
        if isinstance(base, float):
            return _fold(torch.pow, base, exponent)
        # An integral exponent as int keeps negative bases real: (-2)**3 = -8.
        power = int(exponent) if exponent.is_integer() else exponent
        return lambda columns: torch.pow(base(columns), power)

    def call(self, node: ast.Call, depth: int) -> Value:
        if not isinstance(node.func, ast.Name):
            self.compile(node.func, depth + 1)  # reports attribute access and the like first
            raise self.error(
                "only functions called by bare name are allowed, e.g. sin(x)", node.func
            )
        name = node.func.id
        if name not in FUNCTIONS:
            if name in VARIABLES or name in CONSTANTS:
                raise self.error(f"{name!r} is not a function", node.func)
            allowed = ", ".join(FUNCTIONS)
            raise self.error(f"unknown function {name!r}; allowed: {allowed}", node.func)
        if node.keywords:
            raise self.error("keyword arguments are not allowed", node.keywords[0])
        count = len(node.args)
        if name in _VARIADIC and count < 2:
            raise self.error(f"{name}() takes two or more arguments, got {count}", node)
        if name not in _VARIADIC and count != 1:
            raise self.error(f"{name}() takes one argument, got {count}", node)
        arguments = [self.compile(argument, depth + 1) for argument in node.args]
        operation = FUNCTIONS[name][0]
        if name in _VARIADIC:
            return _reduce(operation, arguments)
        (argument,) = arguments
        if isinstance(argument, float):
            return _fold(operation, argument)
        return lambda columns: operation(argument(columns))


def _reduce(operation: Callable[[Tensor, Tensor], Tensor], arguments: list[Value]) -> Value:
    """min/max of several arguments: constants folded first, then one clamp against them."""
    constants = [value for value in arguments if isinstance(value, float)]
    closures = [value for value in arguments if not isinstance(value, float)]
    bound = None
    if constants:
        bound = constants[0]
        for value in constants[1:]:
            bound = _fold(operation, bound, value)
    if not closures:
        return bound
    # min(..., c) caps the result at c; max(..., c) floors it at c.
    keyword = "max" if operation is torch.minimum else "min"

    def reduced(columns: Sequence[Tensor]) -> Tensor:
        result = closures[0](columns)
        for closure in closures[1:]:
            result = operation(result, closure(columns))
        if bound is not None:
            result = torch.clamp(result, **{keyword: bound})
        return result

    return reduced


_OPERATOR_SYMBOLS = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^ (for powers write **)",
    ast.LShift: "<<",
    ast.RShift: ">>",
}


class _Latex:
    """Renders a validated expression tree as LaTeX, with parentheses only where needed."""

    # Binding strength: sums < products < unary minus < powers < atoms.
    SUM, PRODUCT, UNARY, POWER, ATOM = range(5)

    def render(self, node: ast.AST) -> str:
        return self.visit(node)[0]

    def wrapped(self, node: ast.AST, minimum: int) -> str:
        text, strength = self.visit(node)
        return rf"\left({text}\right)" if strength < minimum else text

    def visit(self, node: ast.AST) -> tuple[str, int]:
        if isinstance(node, ast.Constant):
            return _latex_number(float(node.value))
        if isinstance(node, ast.Name):
            return (r"\pi" if node.id == "pi" else node.id), self.ATOM
        if isinstance(node, ast.UnaryOp):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return sign + self.wrapped(node.operand, self.UNARY), self.UNARY
        if isinstance(node, ast.Call):
            return self.call(node), self.ATOM
        assert isinstance(node, ast.BinOp)
        if isinstance(node.op, ast.Pow):
            base = self.wrapped(node.left, self.ATOM)
            return f"{base}^{{{self.render(node.right)}}}", self.POWER
        if isinstance(node.op, ast.Div):
            # A fraction binds like a unary sign: no parentheses in products, some as a base.
            return rf"\frac{{{self.render(node.left)}}}{{{self.render(node.right)}}}", self.UNARY
        if isinstance(node.op, ast.Mult):
            left = self.wrapped(node.left, self.PRODUCT)
            right = self.wrapped(node.right, self.PRODUCT + 1)
            juxtapose = isinstance(node.left, ast.Constant) and isinstance(
                node.right, ast.Name | ast.Call
            )
            return (f"{left}{right}" if juxtapose else rf"{left} \cdot {right}"), self.PRODUCT
        symbol = "+" if isinstance(node.op, ast.Add) else "-"
        left = self.wrapped(node.left, self.SUM)
        right = self.wrapped(node.right, self.SUM + 1)
        return f"{left} {symbol} {right}", self.SUM

    def call(self, node: ast.Call) -> str:
        name = node.func.id  # type: ignore[attr-defined]  # validated: a whitelisted Name
        arguments = ", ".join(self.render(argument) for argument in node.args)
        if name == "sqrt":
            return rf"\sqrt{{{arguments}}}"
        if name == "abs":
            return rf"\left|{arguments}\right|"
        return rf"{FUNCTIONS[name][1]}\left({arguments}\right)"


def _latex_number(value: float) -> tuple[str, int]:
    text = f"{value:.12g}"
    if "e" not in text:
        return text, _Latex.ATOM
    mantissa, exponent = text.split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}", _Latex.PRODUCT
