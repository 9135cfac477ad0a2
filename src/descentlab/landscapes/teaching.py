"""Small landscapes built to show one behaviour each: ravines, saddles, plateaus, 1-D pictures.

These are not benchmarks from the literature but textbook shapes; their stationary points follow
from elementary calculus (and, where no closed form exists, were solved to double precision with
Newton's method; the tests check the gradient vanishes there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import Landscape, Point, box, coordinates, gradient_of

COURSE_NOTES = "descentlab course notes, lecture 001 (per-direction step sizes, Newton's method)"


def ravine() -> Landscape:
    r"""The ill-conditioned quadratic :math:`f(x, y) = 0.1x^2 + 2y^2`.

    Its Hessian is diag(0.2, 4): condition number 20, so a step size small enough to be stable
    along y (below 2/4) crawls along x; plain gradient descent zig-zags across the ravine.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return 0.1 * x.square() + 2.0 * y.square()

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        return 0.1 * x.square() + 2.0 * y.square(), gradient_of(0.2 * x, 4.0 * y)

    return Landscape(
        key="ravine",
        title="Ill-conditioned quadratic (ravine)",
        latex=r"f(x, y) = 0.1x^2 + 2y^2",
        dim=2,
        domain=box(-3.0, 3.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((0.0, 0.0), 0.0),),
        starts=((-2.8, 1.0), (2.5, -1.5)),
        teaches="When curvatures differ by a factor 20, one learning rate cannot suit both "
        "directions: gradient descent zig-zags across the ravine while creeping along it.",
        reference="Textbook quadratic; see Goodfellow, Bengio & Courville (2016), Deep Learning, "
        "MIT Press, section 4.3.1 on the condition number.",
    )


def anisotropic_well() -> Landscape:
    r"""The anisotropic well of the course notes, :math:`-\exp(-(3x/4)^2 - (5y/4)^2)`.

    A Gaussian dip with minimum -1 at the origin, steeper along y than along x; far from the
    centre the slope vanishes, so the gradient alone says little about where the minimum is.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return -torch.exp(-(0.75 * x).square() - (1.25 * y).square())

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        well = torch.exp(-(0.75 * x).square() - (1.25 * y).square())
        # d/dx of -exp(-(3x/4)^2 - ...) = 2 (3/4)^2 x exp(...); likewise (5/4)^2 along y.
        return -well, gradient_of(1.125 * x * well, 3.125 * y * well)

    return Landscape(
        key="anisotropic_well",
        title="Anisotropic well",
        latex=r"f(x, y) = -\exp\left(-\left(\tfrac{3}{4}x\right)^2 - \left(\tfrac{5}{4}y\right)^2\right)",
        dim=2,
        domain=box(-3.0, 3.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(Point((0.0, 0.0), -1.0),),
        starts=((-2.0, 1.0), (1.5, -1.2), (2.5, 2.0)),
        teaches="Per-direction step sizes (Rprop, RMSprop, Adam) cope with a well that is steeper "
        "in one direction than the other, and with its flat rim where gradients almost vanish.",
        reference=COURSE_NOTES,
    )


def saddle() -> Landscape:
    r"""The saddle :math:`f(x, y) = x^2 - y^2`, a stationary point that is no minimum.

    Started exactly on the x-axis, gradient descent converges to the saddle; a tiny offset in y
    grows geometrically, so escape takes a number of steps logarithmic in the offset.
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return x.square() - y.square()

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        return x.square() - y.square(), gradient_of(2.0 * x, -2.0 * y)

    return Landscape(
        key="saddle",
        title="Saddle",
        latex=r"f(x, y) = x^2 - y^2",
        dim=2,
        domain=box(-2.0, 2.0, 2),
        function=function,
        with_gradient=with_gradient,
        saddles=(Point((0.0, 0.0), 0.0),),
        starts=((-1.5, 0.0), (-1.5, 0.01), (-1.5, 0.3)),
        teaches="A zero gradient does not mean a minimum: runs started near the saddle's stable "
        "axis slow down there and leave only as fast as their small offset grows.",
        reference="Textbook saddle; see Dauphin et al. (2014), Identifying and attacking the "
        "saddle point problem in high-dimensional non-convex optimization, NeurIPS.",
    )


def monkey_saddle() -> Landscape:
    r"""The monkey saddle :math:`f(x, y) = x^3 - 3xy^2`, a degenerate saddle.

    Its Hessian vanishes at the origin, so second-order methods see no curvature there; the
    function has three descending valleys (for a monkey's two legs and its tail).
    """

    def function(positions: Tensor) -> Tensor:
        x, y = coordinates(positions)
        return x * (x.square() - 3.0 * y.square())

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x, y = coordinates(positions)
        x2, y2 = x.square(), y.square()
        return x * (x2 - 3.0 * y2), gradient_of(3.0 * (x2 - y2), -6.0 * x * y)

    return Landscape(
        key="monkey_saddle",
        title="Monkey saddle",
        latex=r"f(x, y) = x^3 - 3xy^2",
        dim=2,
        domain=box(-1.5, 1.5, 2),
        function=function,
        with_gradient=with_gradient,
        saddles=(Point((0.0, 0.0), 0.0, note="degenerate: the Hessian is zero here"),),
        starts=((1.0, 0.0), (1.0, 0.1), (-0.5, 1.0)),
        teaches="At a degenerate saddle the gradient and the curvature both vanish, so "
        "gradient descent slows to a crawl and Newton's method has nothing to invert.",
        reference="Textbook example of a degenerate critical point.",
    )


PLATEAU_RING_RADIUS = 6.643492473768926  # root of -(r cos r - sin r)/r^2 + 0.02 r (Newton)


def plateau() -> Landscape:
    r"""A flat ring around a dip, :math:`f = -\sin(r)/r + 0.01r^2` with :math:`r = \|(x, y)\|`.

    The global minimum -1 sits at the origin. Near the crest at r ≈ 5.04 the slope nearly
    vanishes (a plateau), and beyond it lies a ring of local minima at r ≈ 6.6435, value ≈ 0.3883.
    """

    def function(positions: Tensor) -> Tensor:
        radius = torch.linalg.vector_norm(positions, dim=-1)
        # sinc(r/pi) = sin(r)/r with the removable singularity at r = 0 filled in (value 1,
        # gradient 0), so runs reaching the minimum get finite gradients.
        return 0.01 * radius.square() - torch.sinc(radius / torch.pi)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        radius = torch.linalg.vector_norm(positions, dim=-1)
        losses = 0.01 * radius.square() - torch.sinc(radius / torch.pi)
        # d/dr (0.01 r^2 - sin(r)/r) = r (0.02 + (sin r - r cos r) / r^3), along positions / r.
        # The fraction tends to 1/3 at r = 0, where its terms cancel: below r = 0.01 its Taylor
        # series 1/3 - r^2/30 (next term r^4/840 < 1e-11) replaces it, and the gradient is 0.
        small = radius < 0.01
        safe = torch.where(small, 1.0, radius)
        cube = safe * safe.square()
        fraction = torch.where(
            small,
            1.0 / 3.0 - radius.square() / 30.0,
            (torch.sin(safe) - safe * torch.cos(safe)) / cube,
        )
        return losses, positions * (0.02 + fraction).unsqueeze(-1)

    ring_value = 0.38829119481738883
    return Landscape(
        key="plateau",
        title="Plateau and ring",
        latex=r"f(x, y) = -\frac{\sin r}{r} + 0.01r^2,\quad r = \sqrt{x^2 + y^2}",
        dim=2,
        domain=box(-10.0, 10.0, 2),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((0.0, 0.0), -1.0),
            Point((PLATEAU_RING_RADIUS, 0.0), ring_value, note="one point of a ring of minima"),
        ),
        starts=((4.8, 1.0), (3.0, -2.0), (8.0, 3.0)),
        teaches="Where the slope nearly vanishes, steps proportional to the gradient stall, "
        "while methods that normalise the step (Adam, Rprop) keep moving.",
        reference="A radial sinc with a weak quadratic bowl, built for this course.",
    )


def x_cos_x() -> Landscape:
    r"""The 1-D function :math:`f(x) = x\cos x`, with a local and a deeper minimum on [-4, 4].

    Stationary points solve :math:`x\tan x = 1`; on the domain the minima are at x ≈ -0.8603
    (value ≈ -0.5611) and x ≈ 3.4256 (value ≈ -3.2884), with a maximum at x ≈ 0.8603 between.
    The function is unbounded below as |x| grows; the domain is chosen so that its lowest
    point is the minimum at x ≈ 3.4256, not the boundary.
    """

    def function(positions: Tensor) -> Tensor:
        x = positions[..., 0]
        return x * torch.cos(x)

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x = positions[..., 0]
        cosine = torch.cos(x)
        return x * cosine, (cosine - x * torch.sin(x)).unsqueeze(-1)

    return Landscape(
        key="x_cos_x",
        title="x cos x (1-D)",
        latex=r"f(x) = x\cos x",
        dim=1,
        domain=box(-4.0, 4.0, 1),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((3.4256184594817283,), -3.2883713955908966),
            Point((-0.8603335890193797,), -0.5610963381910451),
        ),
        starts=((0.0,), (1.5,), (-3.0,)),
        teaches="A Taylor polynomial is a good model only near its centre: Newton's method "
        "jumps to the stationary point of the local quadratic, which may be a maximum.",
        reference=COURSE_NOTES,
    )


def double_well() -> Landscape:
    r"""The tilted 1-D double well :math:`f(x) = x^4 - 2x^2 + 0.5x`.

    Global minimum at x ≈ -1.0575 (value ≈ -1.5148), local minimum at x ≈ 0.9304 (value ≈
    -0.5167), local maximum at x ≈ 0.1271 where the curvature is negative.
    """

    def function(positions: Tensor) -> Tensor:
        x = positions[..., 0]
        squared = x.square()
        return squared * (squared - 2.0) + 0.5 * x

    def with_gradient(positions: Tensor) -> tuple[Tensor, Tensor]:
        x = positions[..., 0]
        squared = x.square()
        losses = squared * (squared - 2.0) + 0.5 * x
        return losses, (4.0 * x * (squared - 1.0) + 0.5).unsqueeze(-1)

    return Landscape(
        key="double_well",
        title="Tilted double well (1-D)",
        latex=r"f(x) = x^4 - 2x^2 + 0.5x",
        dim=1,
        domain=box(-2.0, 2.0, 1),
        function=function,
        with_gradient=with_gradient,
        minima=(
            Point((-1.057453770738378,), -1.5147536412757057),
            Point((0.9304029265558517,), -0.5167485082852492),
        ),
        starts=((1.5,), (0.5,), (-0.3,), (0.2,)),
        teaches="Which minimum a run reaches depends on where it starts; Newton's method is "
        "attracted to the maximum in between wherever the curvature is negative.",
        reference=COURSE_NOTES,
    )
