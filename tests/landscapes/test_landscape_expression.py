"""The safe expression parser: right values, pointed errors, and no code ever runs."""

from __future__ import annotations

import builtins
import math
from contextlib import ExitStack
from datetime import timedelta
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from descentlab.landscapes import ExpressionError, Landscape, parse
from descentlab.landscapes.expression import MAX_BRACKETS, MAX_DEPTH, MAX_LENGTH


def sigmoid(t):
    return 1.0 / (1.0 + math.exp(-t))


# (expression, the same function written by hand with math on Python floats)
VALUES = [
    ("x**2 + 10*sin(y)", lambda x, y, z: x**2 + 10 * math.sin(y)),
    (
        "-exp(-(3*x/4)**2 - (5*y/4)**2)",
        lambda x, y, z: -math.exp(-((3 * x / 4) ** 2) - (5 * y / 4) ** 2),
    ),
    ("100*(y - x**2)**2 + (1 - x)**2", lambda x, y, z: 100 * (y - x**2) ** 2 + (1 - x) ** 2),
    ("x*cos(2*x)", lambda x, y, z: x * math.cos(2 * x)),
    ("x**3 - 3*x*y**2", lambda x, y, z: x**3 - 3 * x * y**2),
    ("-x**2", lambda x, y, z: -(x**2)),
    ("2**-1 * x", lambda x, y, z: 0.5 * x),
    ("x**-2 + y**0.5", lambda x, y, z: x**-2 + y**0.5),
    ("(-x)**3", lambda x, y, z: (-x) ** 3),
    ("1/x - y/2/z", lambda x, y, z: 1 / x - y / 2 / z),
    ("+x - -y", lambda x, y, z: x + y),
    ("pi*e*x", lambda x, y, z: math.pi * math.e * x),
    ("sqrt(x) + log(y) + abs(-z)", lambda x, y, z: math.sqrt(x) + math.log(y) + abs(z)),
    (
        "tan(x/3) + atan(y) + arctan(z)",
        lambda x, y, z: math.tan(x / 3) + math.atan(y) + math.atan(z),
    ),
    ("sinh(x) * cosh(y) - tanh(z)", lambda x, y, z: math.sinh(x) * math.cosh(y) - math.tanh(z)),
    (
        "asin(x/4) + acos(y/4) + arcsin(z/4)",
        lambda x, y, z: math.asin(x / 4) + math.acos(y / 4) + math.asin(z / 4),
    ),
    ("log2(x) + log10(y)", lambda x, y, z: math.log2(x) + math.log10(y)),
    ("sigmoid(x - y) + softplus(z)", lambda x, y, z: sigmoid(x - y) + math.log1p(math.exp(z))),
    ("min(x, y) + max(x, y, z, 1.5)", lambda x, y, z: min(x, y) + max(x, y, z, 1.5)),
    ("min(x, 0.5, 2) * max(y, -1)", lambda x, y, z: min(x, 0.5, 2) * max(y, -1)),
    ("1e-3*x + 2.5e2*y", lambda x, y, z: 1e-3 * x + 2.5e2 * y),
    ("  (x + y) * (x - y)  ", lambda x, y, z: (x + y) * (x - y)),
    ("exp(sin(pi/2))*x", lambda x, y, z: math.exp(1.0) * x),
    ("3", lambda x, y, z: 3.0),
]
POINTS = [(0.3, 1.7, 0.9), (1.2, 0.4, 2.1), (2.5, 2.9, 0.2)]  # positive: log and sqrt defined


@pytest.mark.parametrize(("text", "reference"), VALUES, ids=[text for text, _ in VALUES])
def test_values_match_a_hand_written_evaluation(text, reference):
    landscape = parse(text)
    assert isinstance(landscape, Landscape)
    positions = torch.tensor(POINTS, dtype=torch.float64)[:, : landscape.dim]
    expected = torch.tensor([reference(*point) for point in POINTS], dtype=torch.float64)
    torch.testing.assert_close(landscape(positions), expected, rtol=1e-12, atol=1e-12)


def test_gradients_come_from_autograd_and_float32_works():
    landscape = parse("x**2 + 10*sin(y)")
    positions = torch.tensor([[1.0, 0.5], [-2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(landscape(positions).sum(), positions)
    expected = torch.stack([2 * positions[:, 0], 10 * torch.cos(positions[:, 1])], dim=1).detach()
    torch.testing.assert_close(gradient, expected)
    assert landscape(positions.detach().float()).dtype == torch.float32


def test_constant_expression_is_differentiable_with_zero_gradient():
    positions = torch.ones(4, 1, requires_grad=True)
    values = parse("2*pi")(positions)
    torch.testing.assert_close(values, torch.full((4,), 2 * math.pi))
    (gradient,) = torch.autograd.grad(values.sum(), positions)
    assert torch.equal(gradient, torch.zeros(4, 1))


@pytest.mark.parametrize(
    ("text", "dim"), [("x", 1), ("sin(x)**2", 1), ("y", 2), ("x*y", 2), ("z", 3), ("1", 1)]
)
def test_dimension_is_the_highest_variable_used(text, dim):
    landscape = parse(text)
    assert landscape.dim == dim
    assert landscape.domain == ((-3.0, 3.0),) * dim


def test_dim_and_domain_arguments():
    assert parse("x**2", dim=2).dim == 2
    assert parse("x + y", domain=(-1, 2)).domain == ((-1.0, 2.0), (-1.0, 2.0))
    assert parse("x + y", domain=[(-1, 1), (0, 5)]).domain == ((-1.0, 1.0), (0.0, 5.0))
    with pytest.raises(ValueError, match="dim must be between 2"):
        parse("x + y", dim=1)
    with pytest.raises(TypeError, match="dim must be an integer"):
        parse("x", dim="2")
    with pytest.raises(ValueError, match=r"domain\[0\] must be finite with low < high"):
        parse("x", domain=(2, 1))
    with pytest.raises(ValueError, match="domain must be a"):
        parse("x + y", domain=[(0, 1), (0, 1), (0, 1)])


@pytest.mark.parametrize(
    ("text", "latex"),
    [
        ("x**2 + 10*sin(y)", r"f = x^{2} + 10\sin\left(y\right)"),
        ("(3*x/4)**2", r"f = \left(\frac{3x}{4}\right)^{2}"),
        ("x - (y - 1)", r"f = x - \left(y - 1\right)"),
        ("-(x + y)**2", r"f = -\left(x + y\right)^{2}"),
        ("sqrt(abs(x))*pi", r"f = \sqrt{\left|x\right|} \cdot \pi"),
    ],
)
def test_latex_rendering(text, latex):
    assert parse(text).latex == latex


# (bad text, a fragment of the message, 0-based column of the culprit, its width)
ERRORS = [
    ("__import__('os')", "unknown function '__import__'", 0, 10),
    ("x.real", "attribute access", 0, 6),
    ("1 + x[0]", "indexing", 4, 4),
    ("lambda: 1", "lambda is not allowed", 0, 9),
    ("2**999999", "exponent too large", 3, 6),
    ("x**(2**7)", "exponent too large", 4, 4),
    ("x**y", "exponents must be constants", 3, 1),
    (
        "(" * (MAX_BRACKETS + 5) + "x" + ")" * (MAX_BRACKETS + 5),
        "nested too deeply",
        MAX_BRACKETS,
        1,
    ),
    ("-" * (MAX_DEPTH + 5) + "x", "nested too deeply", MAX_DEPTH, 6),
    ("x + " * 200 + "x", "too long", MAX_LENGTH, 301),
    ("x + foo", "unknown name 'foo'", 4, 3),
    ("", "expression is empty", 0, 1),
    ("   ", "expression is empty", 0, 1),
    ("x +", "invalid syntax", 3, 1),
    ("x + * 2", "invalid syntax", 4, 1),
    ("x // 2", "operator // is not allowed", 0, 6),
    ("x ^ 2", "for powers write **", 0, 5),
    ("'abc'", "strings are not allowed", 0, 5),
    ("True + x", "bool values are not allowed", 0, 4),
    ("1j * x", "complex values are not allowed", 0, 2),
    ("x < 1", "comparisons are not allowed", 0, 5),
    ("x if y else 1", "'if ... else' is not allowed", 0, 13),
    ("(y := 2)", "assignment", 1, 6),
    ("[x for x in y]", "comprehensions", 0, 14),
    ("sin(x, y)", "takes one argument, got 2", 0, 9),
    ("min(x)", "two or more arguments", 0, 6),
    ("sin(x=1)", "keyword arguments", 4, 3),
    ("x(2)", "'x' is not a function", 0, 1),
    ("(sin)", "unknown name 'sin' (call functions", 1, 3),
    ("sin(x)(y)", "only functions called by bare name", 0, 6),
    ("sin.__class__(x)", "attribute access", 0, 13),
    ("1e400 * x", "number too large", 0, 5),
    ("x + 2000000", "number too large", 4, 7),
    ("x + y²", "only printable ASCII", 5, 1),
    ("x +\ny", "only printable ASCII", 3, 1),
    ("  x +  ", "invalid syntax", 7, 1),
    ("  x.y", "attribute access", 2, 3),
    ("not x", "only unary + and -", 0, 5),
]


@pytest.mark.parametrize(
    ("text", "fragment", "column", "width"), ERRORS, ids=[e[0][:30] for e in ERRORS]
)
def test_errors_name_the_problem_and_point_at_it(text, fragment, column, width):
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert fragment in error.message
    assert (error.column, error.end - error.column) == (column, width)
    _, shown, carets = str(error).split("\n")
    # The caret line sits under the culprit in the displayed (possibly windowed) text.
    start = carets.index("^")
    if len(text) <= 80 and column < len(text):
        printable = "".join(char if " " <= char <= "~" else "?" for char in text)
        assert shown[start : len(carets)] == printable[column : column + width]


def test_too_many_parts_is_an_error_even_when_shallow_and_short():
    text = "*".join(["(x+y+x+y+x+y+x+y)"] * 27)
    assert len(text) <= MAX_LENGTH
    with pytest.raises(ExpressionError, match="too complex"):
        parse(text)
    parse("*".join(["(x+y+x+y+x+y+x+y)"] * 10))  # 160 parts are fine


def test_caret_display_for_a_simple_case():
    with pytest.raises(ExpressionError) as caught:
        parse("x + foo(y)")
    assert str(caught.value) == (
        "unknown function 'foo'; allowed: sin, cos, tan, asin, acos, atan, arcsin, arccos, arctan, "
        "sinh, cosh, tanh, exp, log, log2, log10, sqrt, abs, sigmoid, softplus, min, max (column 5)\n"
        "  x + foo(y)\n"
        "      ^^^"
    )


@pytest.mark.parametrize("text", [None, 3, b"x", ["x"]])
def test_non_string_input_is_a_type_error(text):
    with pytest.raises(TypeError, match="text must be a string"):
        parse(text)


def _forbidden(*args, **kwargs):
    raise AssertionError("parsing must never import, open files or evaluate code")


_numbers = st.floats(min_value=0, max_value=1e7, allow_nan=False).map(lambda v: f"{v:g}")
_leaves = st.sampled_from(["x", "y", "z", "pi", "e", "1", "0", "2.5"]) | _numbers
_expressions = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" + ", "-", "*", " / ", "**", "//", "."]), inner).map(
            "".join
        ),
        st.tuples(st.sampled_from(["sin", "exp", "log", "min", "foo", "", "-"]), inner).map(
            lambda pair: f"{pair[0]}({pair[1]})"
        ),
        st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
    ),
    max_leaves=20,
)
_soups = st.text(alphabet="xyz0123456789.e+-*/() ,sincoaxptlgqrbm_[]'\"=:<", max_size=120)


@settings(
    max_examples=400,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(_expressions, _soups, st.text(max_size=600)))
def test_fuzz_never_runs_code_and_always_answers(text):
    # Torch imports some of its own modules on first use; let it do so before the patch.
    parse("min(sin(pi) + 1, x)")(torch.zeros(1, 1, dtype=torch.float64))
    with ExitStack() as stack:
        for name in ("__import__", "open", "eval", "exec", "input", "breakpoint"):
            stack.enter_context(mock.patch.object(builtins, name, _forbidden))
        try:
            landscape = parse(text)
        except ExpressionError as error:
            landscape = None
            assert 0 <= error.column <= len(text) and error.message
            assert str(error).count("\n") == 2
    if landscape is not None:
        # Outside the patch: torch may import lazily on its own; the compiled closures run here.
        values = landscape(torch.full((3, landscape.dim), 0.5, dtype=torch.float64))
        assert values.shape == (3,)
