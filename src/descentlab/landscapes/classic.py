"""Classic benchmark functions of global optimisation.

Formulas, domains and minima follow S. Surjanovic and D. Bingham (2013), *Virtual Library of
Simulation Experiments: Test Functions and Datasets* (https://www.sfu.ca/~ssurjano), and M. Jamil
and X.-S. Yang (2013), "A literature survey of benchmark functions for global optimization
problems", *International Journal of Mathematical Modelling and Numerical Optimisation* 4(2),
150-194. Where the references quote rounded locations, the values here were refined to double
precision with Newton's method (the tests check that the gradient vanishes there).

Builders of N-dimensional families take ``dim``; the others are 2-D.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._base import Landscape, Point, box, coordinates, gradient_of

VLSE = "Surjanovic & Bingham (2013), Virtual Library of Simulation Experiments"
JAMIL_YANG = "Jamil & Yang (2013), A literature survey of benchmark functions, IJMMNO 4(2)"


def _alternate(first: float, second: float, dim: int) -> tuple[float, ...]:
    """The start point (first, second, first, second, ...) of length dim."""
    return tuple(first if axis % 2 == 0 else second for axis in range(dim))


def rosenbrock(dim: int = 2) -> Landscape:
    r"""Rosenbrock's banana valley, :math:`\sum_{i<D} 100(x_{i+1} - x_i^2)^2 + (1 - x_i)^2`.

    H. H. Rosenbrock (1960), "An automatic method for finding the greatest or least value of a
    function", *The Computer Journal* 3(3), 175-184. Global minimum 0 at (1, ..., 1).
    """

    def function(positions: Tensor) -> Tensor:
        head, tail = positions[..., :-1], positions[..., 1:]
        return (100.0 * (tail - head.square()).square() + (1.0 - head).square()).sum(dim=-1)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        if dim == 2:  # the lab's case: columns, not (N, 1) slices, are cheaper to compute on
            x, y = coordinates(positions)
            valley, offset = y - x.square(), 1.0 - x
            losses = 100.0 * valley.square() + offset.square()
            return losses, gradient_of(-400.0 * valley * x - 2.0 * offset, 200.0 * valley)
        head, tail = positions[..., :-1], positions[..., 1:]
        valley, offset = tail - head.square(), 1.0 - head
        losses = (100.0 * valley.square() + offset.square()).sum(dim=-1)
        # x_i appears as the head of term i and the tail of term i - 1.
        grad = torch.zeros_like(positions)
        grad[..., 1:] = 200.0 * valley
        grad[..., :-1] -= 400.0 * valley * head + 2.0 * offset
        return losses, grad

    return Landscape(
        key="rosenbrock",
        title="Rosenbrock",
        latex=r"f(\mathbf{x}) = \sum_{i=1}^{D-1} 100\left(x_{i+1} - x_i^2\right)^2 + (1 - x_i)^2",
        dim=dim,
        # The classic [-2, 2] x [-1, 3] view in 2-D; one box holding all starts beyond.
        domain=((-2.0, 2.0), (-1.0, 3.0)) if dim == 2 else box(-2.0, 3.0, dim),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((1.0,) * dim, 0.0),),
        starts=(_alternate(-1.2, 1.0, dim), _alternate(-1.5, 2.5, dim), _alternate(1.5, -0.5, dim)),
        teaches="Finding the curved valley is easy, following it to the minimum is hard: "
        "momentum and curvature information pay off along a narrow bending floor.",
        reference=f"Rosenbrock (1960), The Computer Journal 3(3); {VLSE}",
    )


def beale() -> Landscape:
    r"""Beale's function, :math:`(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`.

    E. M. L. Beale (1958), "On an iterative method for finding a local minimum of a function of
    more than one variable", Technical Report 25, Statistical Techniques Research Group, Princeton
    University. Global minimum 0 at (3, 0.5); domain [-4.5, 4.5]^2.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return (
            (1.5 - x + x * y).square()
            + (2.25 - x + x * y.square()).square()
            + (2.625 - x + x * y.pow(3)).square()
        )

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        y2, y3 = y.square(), y.pow(3)
        first, second, third = 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y3
        losses = first.square() + second.square() + third.square()
        along_x = 2.0 * (first * (y - 1.0) + second * (y2 - 1.0) + third * (y3 - 1.0))
        along_y = 2.0 * x * (first + 2.0 * second * y + 3.0 * third * y2)
        return losses, gradient_of(along_x, along_y)

    return Landscape(
        key="beale",
        title="Beale",
        latex=r"f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        dim=2,
        domain=box(-4.5, 4.5, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((3.0, 0.5), 0.0),),
        starts=((1.0, 1.0), (-2.0, 2.0), (2.0, -1.5)),
        teaches="Gradients that differ by orders of magnitude between a flat basin and steep "
        "corners punish a single global learning rate.",
        reference=f"Beale (1958); {VLSE}",
    )


HIMMELBLAU_MINIMA = (
    Point((3.0, 2.0), 0.0),
    Point((-2.805118086952745, 3.131312518250573), 0.0),
    Point((-3.779310253377747, -3.2831859912861696), 0.0),
    Point((3.5844283403304917, -1.8481265269644034), 0.0),
)

HIMMELBLAU_SADDLES = (
    Point((0.08667750455539634, 2.884254701174776), 67.71915008752613),
    Point((-3.0730257507643897, -0.08135304428796751), 104.01516291755811),
    Point((3.385154183607021, 0.07385187983774928), 13.311926270405587),
    Point((-0.12796134673068005, -1.9537149802445766), 178.33723920192745),
)


def himmelblau() -> Landscape:
    r"""Himmelblau's function, :math:`(x^2 + y - 11)^2 + (x + y^2 - 7)^2`: four equal minima.

    D. M. Himmelblau (1972), *Applied Nonlinear Programming*, McGraw-Hill. Minima of value 0 at
    (3, 2), (-2.805118, 3.131313), (-3.779310, -3.283186), (3.584428, -1.848126); a local
    maximum 181.617 at (-0.270845, -0.923039) and four saddles between the minima.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return (x.square() + y - 11.0).square() + (x + y.square() - 7.0).square()

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        first, second = x.square() + y - 11.0, x + y.square() - 7.0
        losses = first.square() + second.square()
        return losses, gradient_of(4.0 * x * first + 2.0 * second, 2.0 * first + 4.0 * y * second)

    return Landscape(
        key="himmelblau",
        title="Himmelblau",
        latex=r"f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        dim=2,
        domain=box(-5.0, 5.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=HIMMELBLAU_MINIMA,
        saddles=HIMMELBLAU_SADDLES,
        starts=((0.0, 0.0), (-1.0, -1.0), (-0.5, 1.0), (1.0, -4.0)),
        teaches="With several equally good minima, the start point (and the optimizer's path) "
        "decides which one a run ends in.",
        reference=f"Himmelblau (1972), Applied Nonlinear Programming; {VLSE}",
    )


def rastrigin(dim: int = 2) -> Landscape:
    r"""Rastrigin's function, :math:`10D + \sum_i x_i^2 - 10\cos(2\pi x_i)`.

    L. A. Rastrigin (1974), *Systems of Extremal Control*, Nauka. Global minimum 0 at the origin,
    surrounded by a regular lattice of local minima near the integer points; domain [-5.12, 5.12]^D.
    """

    def function(positions: Tensor) -> Tensor:
        terms = positions.square() - 10.0 * torch.cos((2.0 * math.pi) * positions)
        return 10.0 * dim + terms.sum(dim=-1)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        angles = (2.0 * math.pi) * positions
        terms = positions.square() - 10.0 * torch.cos(angles)
        grad = 2.0 * positions + (20.0 * math.pi) * torch.sin(angles)
        return 10.0 * dim + terms.sum(dim=-1), grad

    return Landscape(
        key="rastrigin",
        title="Rastrigin",
        latex=r"f(\mathbf{x}) = 10D + \sum_{i=1}^{D} \left(x_i^2 - 10\cos(2\pi x_i)\right)",
        dim=dim,
        domain=box(-5.12, 5.12, dim),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((0.0,) * dim, 0.0),),
        starts=(_alternate(4.5, 4.5, dim), _alternate(-2.3, 3.1, dim), _alternate(0.6, -0.4, dim)),
        teaches="A bowl covered in ripples: local methods stop in the nearest dimple, so the "
        "result depends on the start and on how far a large step can jump.",
        reference=f"Rastrigin (1974); {VLSE}",
    )


def ackley(dim: int = 2) -> Landscape:
    r"""Ackley's function with a = 20, b = 0.2, c = 2π.

    :math:`-a\exp(-b\sqrt{\tfrac1D\sum x_i^2}) - \exp(\tfrac1D\sum\cos(cx_i)) + a + e`.
    D. H. Ackley (1987), *A Connectionist Machine for Genetic Hillclimbing*, Kluwer. Global
    minimum 0 at the origin, where the function has a kink. The usual search domain is
    [-32.768, 32.768]^D; the plotting domain here is [-5, 5]^D, where the ripples are visible.
    """
    a, b, c = 20.0, 0.2, 2.0 * math.pi

    def function(positions: Tensor) -> Tensor:
        # vector_norm's backward is 0 at the origin (a subgradient of the kink), where
        # sqrt(mean(x^2)) would give 0 * inf = nan.
        rms = torch.linalg.vector_norm(positions, dim=-1) / math.sqrt(dim)
        ripples = torch.cos(c * positions).mean(dim=-1)
        return a + math.e - a * torch.exp(-b * rms) - torch.exp(ripples)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        norm = torch.linalg.vector_norm(positions, dim=-1)
        rms = norm / math.sqrt(dim)
        angles = c * positions
        funnel, ripples = torch.exp(-b * rms), torch.exp(torch.cos(angles).mean(dim=-1))
        losses = a + math.e - a * funnel - ripples
        # d rms / dx = x / (sqrt(D) |x|), taken as 0 at the origin as vector_norm's backward does.
        slope = torch.where(norm > 0, (a * b / math.sqrt(dim)) * funnel / norm, 0.0)
        grad = slope.unsqueeze(-1) * positions
        grad += (c / dim) * ripples.unsqueeze(-1) * torch.sin(angles)
        return losses, grad

    return Landscape(
        key="ackley",
        title="Ackley",
        latex=r"f(\mathbf{x}) = -20\exp\left(-0.2\sqrt{\tfrac{1}{D}\sum_i x_i^2}\right)"
        r" - \exp\left(\tfrac{1}{D}\sum_i \cos(2\pi x_i)\right) + 20 + e",
        dim=dim,
        domain=box(-5.0, 5.0, dim),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((0.0,) * dim, 0.0, note="a kink: the gradient is not defined here"),),
        starts=(_alternate(3.5, 3.5, dim), _alternate(-4.0, 2.5, dim), _alternate(1.2, -0.8, dim)),
        teaches="A nearly flat outer region full of local minima around one deep funnel: "
        "small steps get trapped, and the global structure only shows at large scale.",
        reference=f"Ackley (1987); {VLSE}",
    )


def booth() -> Landscape:
    r"""Booth's function, :math:`(x + 2y - 7)^2 + (2x + y - 5)^2`, a convex quadratic.

    Global minimum 0 at (1, 3); domain [-10, 10]^2 (Jamil & Yang 2013, function 24).
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return (x + 2.0 * y - 7.0).square() + (2.0 * x + y - 5.0).square()

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        first, second = x + 2.0 * y - 7.0, 2.0 * x + y - 5.0
        losses = first.square() + second.square()
        return losses, gradient_of(2.0 * first + 4.0 * second, 4.0 * first + 2.0 * second)

    return Landscape(
        key="booth",
        title="Booth",
        latex=r"f(x, y) = (x + 2y - 7)^2 + (2x + y - 5)^2",
        dim=2,
        domain=box(-10.0, 10.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((1.0, 3.0), 0.0),),
        starts=((-5.0, 5.0), (8.0, -6.0), (-8.0, -8.0)),
        teaches="On a convex quadratic every reasonable optimizer converges; the differences "
        "are speed and, for Newton's method, one exact step.",
        reference=f"{JAMIL_YANG}; {VLSE}",
    )


def goldstein_price() -> Landscape:
    r"""The Goldstein-Price function: global minimum 3 at (0, -1), domain [-2, 2]^2.

    A. A. Goldstein and J. F. Price (1971), "On descent from local minima", *Mathematics of
    Computation* 25(115), 569-574. Local minima: 30 at (-0.6, -0.4), 84 at (1.8, 0.2) and 840
    at (1.2, 0.8). Values span five orders of magnitude over the domain.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        first = 1.0 + (x + y + 1.0).square() * (
            19.0 - 14.0 * x + 3.0 * x.square() - 14.0 * y + 6.0 * x * y + 3.0 * y.square()
        )
        second = 30.0 + (2.0 * x - 3.0 * y).square() * (
            18.0 - 32.0 * x + 12.0 * x.square() + 48.0 * y - 36.0 * x * y + 27.0 * y.square()
        )
        return first * second

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        x2, y2 = x.square(), y.square()
        # The losses' operations in function's order, so both give the same bits.
        s, p = x + y + 1.0, 19.0 - 14.0 * x + 3.0 * x2 - 14.0 * y + 6.0 * x * y + 3.0 * y2
        t, q = 2.0 * x - 3.0 * y, 18.0 - 32.0 * x + 12.0 * x2 + 48.0 * y - 36.0 * x * y + 27.0 * y2
        first = 1.0 + s.square() * p
        second = 30.0 + t.square() * q
        # dp/dx = dp/dy, so the first factor has the same slope along x and y.
        first_slope = 2.0 * s * p + s.square() * (6.0 * (x + y) - 14.0)
        second_x = 4.0 * t * q + t.square() * (24.0 * x - 36.0 * y - 32.0)
        second_y = -6.0 * t * q + t.square() * (54.0 * y - 36.0 * x + 48.0)
        along_x = first_slope * second + first * second_x
        along_y = first_slope * second + first * second_y
        return first * second, gradient_of(along_x, along_y)

    return Landscape(
        key="goldstein_price",
        title="Goldstein-Price",
        latex=r"f(x, y) = \left[1 + (x + y + 1)^2(19 - 14x + 3x^2 - 14y + 6xy + 3y^2)\right]"
        r"\left[30 + (2x - 3y)^2(18 - 32x + 12x^2 + 48y - 36xy + 27y^2)\right]",
        dim=2,
        domain=box(-2.0, 2.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((0.0, -1.0), 3.0),
            Point((-0.6, -0.4), 30.0),
            Point((1.8, 0.2), 84.0),
            Point((1.2, 0.8), 840.0),
        ),
        starts=((-1.5, 1.5), (1.5, 1.5), (0.5, -1.5)),
        teaches="When losses span orders of magnitude, a fixed learning rate is too large on "
        "the walls and too small on the floor; adaptive and normalised steps help.",
        reference=f"Goldstein & Price (1971), Math. Comp. 25(115); {VLSE}",
    )


def six_hump_camel() -> Landscape:
    r"""The six-hump camel function, :math:`(4 - 2.1x^2 + x^4/3)x^2 + xy + (-4 + 4y^2)y^2`.

    L. C. W. Dixon and G. P. Szegő (1978), "The global optimisation problem: an introduction",
    in *Towards Global Optimisation 2*, North-Holland. Two global minima -1.0316 at
    (±0.0898, ∓0.7127), four local minima, a saddle at the origin; domain [-3, 3] x [-2, 2].
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        x2, y2 = x.square(), y.square()
        return (4.0 - 2.1 * x2 + x2.square() / 3.0) * x2 + x * y + (4.0 * y2 - 4.0) * y2

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        x2, y2 = x.square(), y.square()
        losses = (4.0 - 2.1 * x2 + x2.square() / 3.0) * x2 + x * y + (4.0 * y2 - 4.0) * y2
        along_x = x * (8.0 - 8.4 * x2 + 2.0 * x2.square()) + y
        along_y = x + y * (16.0 * y2 - 8.0)
        return losses, gradient_of(along_x, along_y)

    global_value = -1.0316284534898774
    return Landscape(
        key="six_hump_camel",
        title="Six-hump camel",
        latex=r"f(x, y) = \left(4 - 2.1x^2 + \tfrac{x^4}{3}\right)x^2 + xy + (-4 + 4y^2)y^2",
        dim=2,
        domain=((-3.0, 3.0), (-2.0, 2.0)),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((0.08984201310031806, -0.7126564030207396), global_value),
            Point((-0.08984201310031806, 0.7126564030207396), global_value),
            Point((1.7036067149699807, -0.7960835686726252), -0.21546382438371725),
            Point((-1.7036067149699807, 0.7960835686726252), -0.21546382438371725),
            Point((1.6071047529201974, 0.5686514548841314), 2.1042503103112598),
            Point((-1.6071047529201974, -0.5686514548841314), 2.1042503103112598),
        ),
        saddles=(Point((0.0, 0.0), 0.0),),
        starts=((-2.5, 1.5), (2.0, -1.5), (0.05, 0.05), (2.5, 1.0)),
        teaches="Six basins of different depths: a run's end point depends on its start and "
        "its step sizes, and runs started near the central saddle split between two minima.",
        reference=f"Dixon & Szegő (1978), Towards Global Optimisation 2; {VLSE}",
    )


STYBLINSKI_TANG_LOW = -2.903534027771177  # root of 4t^3 - 32t + 5 (Newton), global
STYBLINSKI_TANG_HIGH = 2.746802770990837  # the other root giving a local minimum
STYBLINSKI_TANG_LOW_VALUE = -39.16616570377142  # per coordinate


def styblinski_tang(dim: int = 2) -> Landscape:
    r"""The Styblinski-Tang function, :math:`\tfrac12\sum_i x_i^4 - 16x_i^2 + 5x_i`.

    M. A. Styblinski and T.-S. Tang (1990), "Experiments in nonconvex optimization: stochastic
    approximation with function smoothing and simulated annealing", *Neural Networks* 3(4),
    467-483. Separable: each coordinate at -2.903534 or 2.746803 gives one of 2^D minima; the
    global one, all coordinates at -2.903534, has value -39.16617 D. Domain [-5, 5]^D.
    """

    def function(positions: Tensor) -> Tensor:
        squared = positions.square()
        return 0.5 * (squared * (squared - 16.0) + 5.0 * positions).sum(dim=-1)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        squared = positions.square()
        losses = 0.5 * (squared * (squared - 16.0) + 5.0 * positions).sum(dim=-1)
        return losses, positions * (2.0 * squared - 16.0) + 2.5

    high_value = 0.5 * (STYBLINSKI_TANG_HIGH**4 - 16.0 * STYBLINSKI_TANG_HIGH**2)
    high_value += 2.5 * STYBLINSKI_TANG_HIGH
    return Landscape(
        key="styblinski_tang",
        title="Styblinski-Tang",
        latex=r"f(\mathbf{x}) = \frac{1}{2}\sum_{i=1}^{D} \left(x_i^4 - 16x_i^2 + 5x_i\right)",
        dim=dim,
        domain=box(-5.0, 5.0, dim),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((STYBLINSKI_TANG_LOW,) * dim, STYBLINSKI_TANG_LOW_VALUE * dim),
            Point((STYBLINSKI_TANG_HIGH,) * dim, high_value * dim, note="the highest of 2^D"),
        ),
        starts=(_alternate(4.5, 4.5, dim), _alternate(0.5, -4.5, dim), _alternate(0.0, 0.0, dim)),
        teaches="A separable function: each coordinate picks one of two wells independently, "
        "so 2^D minima exist and per-coordinate methods see the structure directly.",
        reference=f"Styblinski & Tang (1990), Neural Networks 3(4); {VLSE}",
    )
