"""Command line: ``descentlab optimizers``, ``landscapes``, ``tasks``, ``race``, ``demo`` and
``serve``.

Thin by design: parse arguments, call the library, print or save. Errors in what the user typed
are reported in one line (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch

from . import landscapes, optim

OUTPUT_FORMATS = (".gif", ".mp4", ".png", ".svg", ".json", ".csv")


class UsageError(ValueError):
    """A mistake in the command line, reported without a traceback."""


# ----------------------------------------------------------------------------- parsing helpers


def parse_optimizers(text: str) -> list[str]:
    """``"adam,sgd:lr=0.01,momentum=0.9,nesterov"`` to ``["adam", "sgd:lr=0.01,momentum=0.9", ...]``.

    Commas separate entries; a piece with ``=`` and no ``:`` adds a hyperparameter to the entry
    before it.
    """
    entries: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            raise UsageError(f"--optimizers: empty entry in {text!r}")
        if "=" in piece and ":" not in piece:
            if not entries or ":" not in entries[-1]:
                raise UsageError(
                    f"--optimizers: {piece!r} must follow an optimizer, as in sgd:lr=0.1,{piece}"
                )
            entries[-1] += "," + piece
        else:
            entries.append(piece)
    for entry in entries:
        key = entry.split(":")[0]
        if key not in optim.names():
            raise UsageError(
                f"--optimizers: unknown optimizer {key!r}; choose from {', '.join(optim.names())}"
            )
    return entries


def parse_point(text: str) -> list[float]:
    try:
        return [float(value) for value in text.split(",")]
    except ValueError:
        raise UsageError(f"--start: a point is numbers separated by commas, got {text!r}") from None


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``lr=1e-4:1:20``: 20 values from 1e-4 to 1, evenly spaced in log."""
    name, equals, spec = text.partition("=")
    parts = spec.split(":")
    if not equals or not name or len(parts) != 3:
        raise UsageError(f"--sweep: write NAME=LOW:HIGH:COUNT, e.g. lr=1e-4:1:20; got {text!r}")
    try:
        low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise UsageError(
            f"--sweep: LOW and HIGH are numbers and COUNT an integer; got {text!r}"
        ) from None
    if not (0 < low < high) or not 2 <= count <= 100_000:
        raise UsageError(f"--sweep: need 0 < LOW < HIGH and 2 <= COUNT <= 100000; got {text!r}")
    return name, torch.logspace(
        math.log10(low), math.log10(high), count, dtype=torch.float64
    ).tolist()


def _negative_values_as_equals(argv: list[str]) -> list[str]:
    # "--start -1.5,2" would read as an option; glue such values to their flag.
    glued: list[str] = []
    for item in argv:
        if (
            glued
            and glued[-1] in ("--start",)
            and item.startswith("-")
            and len(item) > 1
            and (item[1].isdigit() or item[1] == ".")
        ):
            glued[-1] = f"{glued[-1]}={item}"
        else:
            glued.append(item)
    return glued


# ----------------------------------------------------------------------------- commands


def _print_optimizers(_: argparse.Namespace) -> None:
    width = max(len(key) for key in optim.names())
    for key in optim.names():
        entry = optim.spec(key)
        print(
            f"{key:<{width}}  {entry.title} ({entry.paper.authors.split(',')[0]} {entry.paper.year})"
        )


def _print_landscapes(_: argparse.Namespace) -> None:
    width = max(len(key) for key in landscapes.names())
    for key in landscapes.names():
        surface = landscapes.get(key)
        print(f"{key:<{width}}  {surface.dim}-D  {surface.title}: {surface.teaches}")


def _print_tasks(arguments: argparse.Namespace) -> None:
    from .arena import tasks

    if arguments.task:
        task = tasks.get(arguments.task)
        print(f"{task.name}: {task.title}\n")
        print(textwrap.fill(task.description, width=100))
        return
    width = max(len(name) for name in tasks.names())
    print(f"{'task':<{width}}  {'train':>5} {'val':>5} {'test':>5}  {'parameters':>10}  title")
    for name in tasks.names():
        task = tasks.get(name)
        try:
            data = task.splits()
            parameters = sum(p.numel() for p in task.model().parameters())
        except tasks.MissingDataPackage as missing:
            print(f"{name:<{width}}  ({missing})")
            continue
        sizes = " ".join(f"{len(part):>5}" for part in (data.train, data.val, data.test))
        print(f"{name:<{width}}  {sizes}  {parameters:>10,}  {task.title}")


class _LazyProgressBar:
    """A tqdm bar that appears on the first finished step, not before: the race checks the
    landscape, optimizers, hyperparameters and starts first, and an error in them prints alone."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar = None

    def advance(self, done: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(total: int, quiet: bool):
    if quiet:
        return None, None
    bar = _LazyProgressBar(total)
    return bar.advance, bar


def _race(arguments: argparse.Namespace) -> None:
    from . import lab

    out = Path(arguments.out)
    if out.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(
            f"--out: the extension picks the format, one of {', '.join(OUTPUT_FORMATS)}; got {out.name!r}"
        )
    entries = parse_optimizers(arguments.optimizers)
    if arguments.sweep:
        name, values = parse_sweep(arguments.sweep)
        entries = [_with_sweep(entry, name, values) for entry in entries]
    starts: object = arguments.starts or "suggested"
    if arguments.start:
        starts = [parse_point(text) for text in arguments.start]
    record = "final" if (arguments.sweep and out.suffix.lower() in (".png", ".svg")) else "path"
    if out.suffix.lower() in (".gif", ".mp4") and arguments.sweep:
        raise UsageError(
            "--sweep draws final loss against the swept value: write .png, .svg, .json or .csv"
        )
    advance, bar = _progress(arguments.steps, arguments.quiet)
    try:
        result = lab.race(
            arguments.landscape,
            entries,
            starts,
            arguments.steps,
            record=record,
            noise=arguments.noise,
            clip=arguments.clip,
            seed=arguments.seed,
            progress=advance,
            restarts=arguments.restarts,
            project="domain" if arguments.project else None,
        )
    finally:
        if bar is not None:
            bar.close()
    _save(result, out, sweep=parse_sweep(arguments.sweep)[0] if arguments.sweep else None)
    diverged = int(result.diverged.sum())
    print(
        f"{len(result.runs)} runs x {result.steps} steps on {result.landscape.title}: wrote {out}"
        + (f" ({diverged} diverged)" if diverged else "")
    )


def _with_sweep(entry: str, name: str, values: list[float]):
    from .lab.runs import parse_entry

    key, given = parse_entry(entry)
    return key, {**given, name: values}


def _save(result, out: Path, sweep: str | None) -> None:
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        result.to_json(out)
    elif suffix == ".csv":
        result.to_csv(out)
    elif suffix in (".gif", ".mp4"):
        from .plots.animation import animate

        animate(result, out)
    else:
        from .plots import figures

        figure = figures.sweep(result, sweep) if sweep else figures.overview(result)
        figure.savefig(out)
        figures.plt.close(figure)


def _demo(arguments: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(arguments.out), steps=arguments.steps)


def _serve(arguments: argparse.Namespace) -> None:
    try:
        import uvicorn

        from .course import ContentError, Settings, create_app
        from .course.content import default_content_dir
    except ImportError as error:
        raise UsageError(
            f"the course needs its extra: pip install 'descentlab[course]' ({error.name} is missing)"
        ) from None
    if not 0 < arguments.port < 65536:
        raise UsageError(f"--port must be from 1 to 65535, got {arguments.port}")
    torch.set_num_threads(1)  # many small races: thread hand-offs cost more than they save
    try:
        app = create_app(
            Settings(
                database=arguments.db,
                content_dir=Path(arguments.content) if arguments.content else default_content_dir(),
                cache_dir=Path(arguments.cache),
                render_clips_at_startup=not arguments.no_clips,
                warm_races=True,
            )
        )
    except ContentError as error:
        raise UsageError(str(error)) from None
    print(f"descentlab course: http://{arguments.host}:{arguments.port}  (Ctrl+C stops it)")
    uvicorn.run(app, host=arguments.host, port=arguments.port, log_level="warning")


# ----------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="descentlab", description="Learn, compare and use gradient-based optimizers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="race the classic optimizers on the classic landscapes, write pictures"
    )
    demo.add_argument("--out", default="out", help="folder for the pictures (default: out)")
    demo.add_argument(
        "--steps", type=int, default=None, help="steps per race (default: each race's own)"
    )
    demo.set_defaults(handler=_demo)

    commands.add_parser("optimizers", help="list the optimizers in the registry").set_defaults(
        handler=_print_optimizers
    )
    commands.add_parser("landscapes", help="list the loss landscapes").set_defaults(
        handler=_print_landscapes
    )

    listing = commands.add_parser(
        "tasks",
        help="list the arena's training tasks (sizes, model parameters), or describe one",
    )
    listing.add_argument("task", nargs="?", help="a task name: print its description")
    listing.set_defaults(handler=_print_tasks)

    race = commands.add_parser(
        "race",
        help="race optimizers on a landscape and write a picture, animation or data",
        description="Race optimizers on a landscape (a name from `descentlab landscapes` or an "
        "expression in x and y such as 'x**2 + 10*sin(y)'). The extension of --out picks the output.",
    )
    race.add_argument("landscape", help="landscape name or expression")
    race.add_argument(
        "--optimizers",
        default="sgd,momentum,adam",
        help="comma-separated, with hyperparameters: adam,sgd:lr=0.01,momentum=0.9",
    )
    race.add_argument("--steps", type=int, default=200, help="steps per run (default: 200)")
    race.add_argument("--start", action="append", metavar="X,Y", help="a start point (repeatable)")
    race.add_argument(
        "--starts", metavar="random:N", help="'random:N' uniform starts, or 'suggested'"
    )
    race.add_argument(
        "--sweep", metavar="NAME=LOW:HIGH:COUNT", help="sweep a hyperparameter on a log grid"
    )
    race.add_argument("--noise", type=float, default=0.0, help="std of Gaussian gradient noise")
    race.add_argument("--clip", type=float, default=None, help="clip each run's gradient norm")
    race.add_argument("--restarts", type=int, default=1, help="best of this many starts per run")
    race.add_argument(
        "--project", action="store_true", help="project onto the domain after each step"
    )
    race.add_argument("--seed", type=int, default=0, help="seed for random starts and noise")
    race.add_argument("--out", default="race.png", help=f"output file: {', '.join(OUTPUT_FORMATS)}")
    race.add_argument("--quiet", action="store_true", help="no progress bar")
    race.set_defaults(handler=_race)

    serve = commands.add_parser("serve", help="serve the course web app")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--db",
        default="out/course.sqlite3",
        help="SQLAlchemy URL (postgresql://...) or SQLite file (default: out/course.sqlite3)",
    )
    serve.add_argument(
        "--cache",
        default=".descentlab-cache",
        help="folder for rendered clips (default: .descentlab-cache)",
    )
    serve.add_argument(
        "--content", help="folder with lessons/ and quizzes/ (default: the course shipped here)"
    )
    serve.add_argument(
        "--no-clips", action="store_true", help="render clips on first request, not at start-up"
    )
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    arguments = parser.parse_args(_negative_values_as_equals(argv))
    # None: the demo races' own step counts.
    if getattr(arguments, "steps", None) is not None and arguments.steps < 1:
        print(f"descentlab {arguments.command}: error: --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        arguments.handler(arguments)
    except (UsageError, ValueError, TypeError) as error:
        print(f"descentlab {arguments.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
