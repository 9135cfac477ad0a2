"""The built-in landscapes: stated facts (minima, saddles, domains) hold, evaluation is batched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from descentlab.landscapes import Landscape, get, n_dimensional_names, names

REQUIRED = {
    "ravine",
    "anisotropic_well",
    "saddle",
    "monkey_saddle",
    "rosenbrock",
    "beale",
    "himmelblau",
    "rastrigin",
    "ackley",
    "booth",
    "goldstein_price",
    "six_hump_camel",
    "styblinski_tang",
    "plateau",
    "x_cos_x",
}

CASES = [(name, None) for name in names()] + [
    (name, dim) for name in n_dimensional_names() for dim in (5, 10)
]
IDS = [f"{name}-{dim or 'default'}" for name, dim in CASES]


def landscape_of(case: tuple[str, int | None]) -> Landscape:
    name, dim = case
    return get(name, dim)


def value_and_gradient(landscape: Landscape, points: list[tuple[float, ...]]):
    positions = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    values = landscape(positions)
    (gradient,) = torch.autograd.grad(values.sum(), positions)
    return values.detach(), gradient


def hessian(landscape: Landscape, point: tuple[float, ...]) -> torch.Tensor:
    position = torch.tensor(point, dtype=torch.float64)
    return torch.autograd.functional.hessian(lambda p: landscape(p[None])[0], position)


def test_catalog_has_every_required_landscape_and_some_one_dimensional_ones():
    assert set(names()) >= REQUIRED
    assert set(n_dimensional_names()) == {"rosenbrock", "rastrigin", "ackley", "styblinski_tang"}
    assert sum(get(name).dim == 1 for name in names()) >= 2


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_metadata_is_complete_and_consistent(case):
    landscape = landscape_of(case)
    assert landscape.key == case[0]
    assert landscape.title and landscape.latex and landscape.teaches and landscape.reference
    assert len(landscape.domain) == landscape.dim
    assert all(low < high for low, high in landscape.domain)
    assert landscape.starts
    for point in landscape.starts + tuple(p.location for p in landscape.minima + landscape.saddles):
        assert len(point) == landscape.dim
        assert all(low <= c <= high for c, (low, high) in zip(point, landscape.domain, strict=True))
    if landscape.minima:
        assert landscape.global_minimum == landscape.minima[0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_known_minima_have_stated_values_and_zero_gradient(case):
    landscape = landscape_of(case)
    if not landscape.minima:
        pytest.skip("no minima (unbounded below)")
    points = [point.location for point in landscape.minima]
    values, gradient = value_and_gradient(landscape, points)
    stated = torch.tensor([point.value for point in landscape.minima], dtype=torch.float64)
    torch.testing.assert_close(values, stated, rtol=1e-12, atol=1e-12)
    # Ackley's kink at the origin gets the subgradient 0 (finite, so runs do not turn to nan).
    assert gradient.abs().max() < 1e-9


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_known_minima_are_local_minima(case):
    landscape = landscape_of(case)
    generator = torch.Generator().manual_seed(0)
    for point in landscape.minima:
        centre = torch.tensor(point.location, dtype=torch.float64)
        around = centre + 1e-3 * torch.randn(
            64, landscape.dim, generator=generator, dtype=torch.float64
        )
        assert landscape(around).min() >= point.value - 1e-12


@pytest.mark.parametrize("name", [n for n in names() if get(n).dim <= 2 and get(n).minima])
def test_global_minimum_is_lowest_on_a_grid_over_the_domain(name):
    landscape = get(name)
    axes = [torch.linspace(low, high, 201, dtype=torch.float64) for low, high in landscape.domain]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    assert landscape(grid).min() >= landscape.global_minimum.value - 1e-9


@pytest.mark.parametrize("name", [n for n in names() if get(n).saddles])
def test_saddles_have_zero_gradient_and_are_not_extrema(name):
    landscape = get(name)
    points = [point.location for point in landscape.saddles]
    values, gradient = value_and_gradient(landscape, points)
    stated = torch.tensor([point.value for point in landscape.saddles], dtype=torch.float64)
    torch.testing.assert_close(values, stated, rtol=1e-12, atol=1e-12)
    assert gradient.abs().max() < 1e-9
    generator = torch.Generator().manual_seed(1)
    for point in landscape.saddles:
        eigenvalues = torch.linalg.eigvalsh(hessian(landscape, point.location))
        if "degenerate" in point.note:
            assert eigenvalues.abs().max() < 1e-12
        else:
            assert eigenvalues.min() < -1e-3 < 1e-3 < eigenvalues.max()
        # Whatever the Hessian says, some nearby points lie below and some above.
        centre = torch.tensor(point.location, dtype=torch.float64)
        around = landscape(
            centre + 1e-2 * torch.randn(256, 2, generator=generator, dtype=torch.float64)
        )
        assert around.min() < point.value < around.max()


def test_monkey_saddle_is_the_only_degenerate_one():
    degenerate = [n for n in names() for p in get(n).saddles if "degenerate" in p.note]
    assert degenerate == ["monkey_saddle"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_batch_equals_row_by_row_and_keeps_dtype(case):
    landscape = landscape_of(case)
    lows = torch.tensor([low for low, _ in landscape.domain], dtype=torch.float64)
    highs = torch.tensor([high for _, high in landscape.domain], dtype=torch.float64)
    generator = torch.Generator().manual_seed(2)
    positions = lows + (highs - lows) * torch.rand(
        7, landscape.dim, generator=generator, dtype=torch.float64
    )
    batch = landscape(positions)
    assert batch.shape == (7,) and batch.dtype == torch.float64
    rows = torch.cat([landscape(row[None]) for row in positions])
    torch.testing.assert_close(batch, rows, rtol=1e-14, atol=0.0)
    single = landscape(positions.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), batch, rtol=1e-4, atol=1e-4)
    grid = positions.reshape(7, 1, landscape.dim).expand(7, 3, landscape.dim)
    assert landscape(grid).shape == (7, 3)


@pytest.mark.parametrize("name", n_dimensional_names())
def test_n_dimensional_families_scale_their_minima(name):
    for dim in (2, 5, 10):
        landscape = get(name, dim)
        assert landscape.dim == dim and len(landscape.starts[0]) == dim
    # Styblinski-Tang is separable: its global value is D times the 1-D value.
    if name == "styblinski_tang":
        assert get(name, 10).global_minimum.value == pytest.approx(
            5 * get(name, 2).global_minimum.value
        )


def test_rastrigin_and_styblinski_tang_exist_in_one_dimension_and_rosenbrock_does_not():
    assert get("rastrigin", 1).dim == 1
    assert get("styblinski_tang", 1)(torch.tensor([[-2.903534027771177]])).item() == pytest.approx(
        -39.16616570377142
    )
    with pytest.raises(ValueError, match="dim"):
        get("rosenbrock", 1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="name: unknown landscape 'nope'"):
        get("nope")
    with pytest.raises(TypeError, match="name must be a string"):
        get(3)
    with pytest.raises(ValueError, match="dim: landscape 'beale' is 2-D only"):
        get("beale", dim=3)
    with pytest.raises(TypeError, match="dim must be an integer"):
        get("ackley", dim=2.5)
    landscape = get("beale")
    with pytest.raises(ValueError, match=r"positions must have shape \(N, 2\)"):
        landscape(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="floating dtype"):
        landscape(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        landscape([[0.0, 0.0]])


def test_landscapes_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get("booth").dim = 3
