"""examples/radam_digits.py runs in a reduced mode, prints its table and writes its figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

EXAMPLE = Path(__file__).parents[2] / "examples" / "radam_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("radam_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reduced_run_writes_the_figure_and_table(example, tmp_path, capsys):
    out = tmp_path / "figures" / "radam.png"
    example.main(["--epochs", "2", "--seeds", "1", "--lrs", "0.01,0.3", "--out", str(out)])
    with Image.open(out) as image:
        width, height = image.size
    assert width > 1000 and height > 700  # two rows of two panels
    printed = capsys.readouterr().out
    rows = [
        line.split() for line in printed.splitlines() if line.strip().startswith(("0.01", "0.3"))
    ]
    assert [row[1] for row in rows] == ["Adam", "Adam", "RAdam", "Adam", "Adam", "RAdam"]
    assert "6 trainings" in printed and str(out) in printed


def test_warmup_scheduler_ramps_the_learning_rate(example):
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer, scheduler = example.make_optimizer("Adam + warmup", model, 0.3, warmup_steps=10)
    seen = []
    for _ in range(12):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(0.003)
    assert seen[10] == pytest.approx(0.3) and seen[11] == pytest.approx(0.3)
    assert all(a < b for a, b in zip(seen[:10], seen[1:11], strict=True))
    assert type(example.make_optimizer("RAdam", model, 0.3, 10)[0]).__name__ == "RAdam"


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--seeds", "0"], "--seeds must be at least 1"), (["--lrs", "0.1,-1"], "must be positive")],
)
def test_bad_arguments_are_one_clear_line(example, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
