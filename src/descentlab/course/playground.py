"""The playground's setup in a URL query, so that a shared link restores the race.

``?landscape=rosenbrock&opt=adam:lr=0.01&opt=sgd:lr=0.001,weight_decay=0&start=-1.5,2&steps=300``:
one ``opt`` per racer in the lab's own ``key:name=value,...`` form. A part that does not parse is
left at its default and named in ``problems``, shown above the form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import optim
from ..lab.runs import parse_entry
from .api import MAX_EXPRESSION, MAX_RACERS, MAX_STEPS
from .content import resolve_landscape

DEFAULT = {
    "landscape": "rosenbrock",
    "racers": [
        {"key": "adam", "hyperparameters": {"lr": 0.05}},
        {"key": "momentum", "hyperparameters": {"lr": 0.001, "momentum": 0.9}},
    ],
    "start": None,
    "steps": 300,
}


def parse(query: Any) -> tuple[dict[str, Any], list[str]]:
    """(setup, problems) from the query parameters (a Starlette QueryParams or a mapping)."""
    setup = {**DEFAULT, "racers": list(DEFAULT["racers"])}
    problems: list[str] = []
    get_all = query.getlist if hasattr(query, "getlist") else (lambda name: _listed(query, name))
    landscape = query.get("landscape")
    surface = None
    if landscape:
        landscape = landscape.strip()[: MAX_EXPRESSION + 1]
        try:
            if len(landscape) > MAX_EXPRESSION:
                raise ValueError(f"at most {MAX_EXPRESSION} characters")
            surface = resolve_landscape(landscape)
            setup["landscape"] = landscape
        except ValueError as error:
            problems.append(f"landscape: {str(error).splitlines()[0]}")
    entries = get_all("opt")
    if entries:
        racers = []
        for text in entries[:MAX_RACERS]:
            try:
                key, hyperparameters = parse_entry(text)
                optim.spec(key).kwargs(hyperparameters)
                racers.append({"key": key, "hyperparameters": hyperparameters})
            except (ValueError, TypeError) as error:
                problems.append(f"opt={text}: {error}")
        if len(entries) > MAX_RACERS:
            problems.append(f"opt: at most {MAX_RACERS} optimizers; the rest are left out")
        if racers:
            setup["racers"] = racers
    start = query.get("start")
    if start:
        try:
            point = [float(value) for value in start.split(",")]
            dim = surface.dim if surface is not None else resolve_landscape(setup["landscape"]).dim
            if len(point) != dim:
                raise ValueError(f"the landscape is {dim}-D, got {len(point)} numbers")
            setup["start"] = point
        except ValueError as error:
            problems.append(f"start: {error}")
    steps = query.get("steps")
    if steps:
        try:
            value = int(steps)
            if not 1 <= value <= MAX_STEPS:
                raise ValueError
            setup["steps"] = value
        except ValueError:
            problems.append(f"steps: a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    if setup["start"] is None:
        chosen = resolve_landscape(setup["landscape"])
        setup["start"] = (
            list(chosen.starts[0])
            if chosen.starts
            else [(low + high) / 2 for low, high in chosen.domain]
        )
    return setup, problems


def _listed(query: Mapping[str, Any], name: str) -> list[str]:
    value = query.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
