"""README stays true: it lists every optimizer, its example runs, its commands parse."""

from __future__ import annotations

import shlex
from pathlib import Path

import torch

from descentlab import cli, optim

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    """The fenced code blocks of one language ("" for plain fences)."""
    blocks, current, inside = [], [], None
    for line in README.splitlines():
        if line.startswith("```"):
            if inside is None:
                inside, current = line[3:].strip(), []
            else:
                if inside == language:
                    blocks.append("\n".join(current))
                inside = None
        elif inside is not None:
            current.append(line)
    return blocks


def test_every_registry_key_is_in_the_table():
    for key in optim.names():
        assert f"| `{key}` |" in README, key


def test_the_training_loop_example_runs():
    example = _blocks("python")[0]
    batches = [(torch.randn(8, 64), torch.randint(0, 10, (8,))) for _ in range(3)]
    namespace = {"batches": batches}
    exec(compile(example, "README example", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["optimizer"].state, "the example never stepped"


def test_the_race_commands_parse():
    shell = "\n".join(_blocks(""))
    commands = [line for line in shell.splitlines() if line.startswith("descentlab ")]
    assert len(commands) >= 4
    parser = cli.build_parser()
    for line in commands:
        words = shlex.split(line.split("  #")[0])[1:]
        arguments = parser.parse_args(cli._negative_values_as_equals(words))
        if arguments.command == "race":
            cli.parse_optimizers(arguments.optimizers)


def test_the_arena_example_runs(tmp_path, monkeypatch):
    (example,) = [block for block in _blocks("python") if "arena.compare" in block]
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(160, 5, generator=generator)
    targets = (inputs[:, 0] - inputs[:, 2] > 0).long()
    namespace = {
        "torch": torch,
        "make_model": lambda: torch.nn.Sequential(
            torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
        ),
        "x_train": inputs[:120],
        "y_train": targets[:120],
        "x_val": inputs[120:],
        "y_val": targets[120:],
    }
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README arena example", "exec"), namespace)  # noqa: S102 - our README
    assert namespace["result"].recommendation.best in ("adam", "adamw", "lion", "sgd")
    assert (tmp_path / "my_model.html").exists()
