"""``compare``: the arena's one entry point, for a built-in task or the user's own model.

from descentlab import arena
result = arena.compare("digits-mlp", optimizers=["adam", "sgd", "rmsprop"], budget=8, seeds=3)
print(result.recommendation.text)

result = arena.compare(make_model, torch.nn.functional.cross_entropy, (x, y), (x_val, y_val),
                       optimizers="adam,adamw,lion", budget=6, seeds=2, metric="accuracy")
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from .. import optim
from ..optim import _hyper
from . import protocol, study, tasks
from .problem import Problem, from_model, from_task
from .results import Comparison
from .train import Settings

Progress = Callable[[int, int], None]


def compare(
    task: str | tasks.Task | Callable[[], Any],
    loss_fn: Callable[..., Any] | None = None,
    train: Any = None,
    val: Any = None,
    test: Any = None,
    *,
    optimizers: str | Sequence[str] = "all",
    budget: int = 8,
    seeds: int = 3,
    search: str = "grid",
    epochs: int | None = None,
    batch_size: int | None | str = "task",
    dropout: float = 0.0,
    init: str = "default",
    label_smoothing: float = 0.0,
    clip: float | None = None,
    early_stopping: int | None = None,
    weight_decay: float | None = None,
    metric: Any = None,
    storage: str | None = None,
    workers: int = 1,
    batch: int | None = None,
    seed: int = 0,
    progress: bool | Progress = False,
    notice: Callable[[str], None] = print,
) -> Comparison:
    """Compare ``optimizers`` fairly on a task and recommend one (see ``protocol`` for the rules).

    ``task`` is a built-in task's name (``descentlab tasks`` lists them) or, for your own model, a
    ``model_fn`` returning a fresh ``torch.nn.Module``, with ``loss_fn(outputs, targets)`` and
    ``train``/``val`` (and optionally ``test``) as ``(inputs, targets)`` tensors or DataLoaders.
    ``budget`` configurations per optimizer are tuned on one seed (a learning-rate grid, or Optuna's
    TPE sampler with ``search="tpe"``), then the best is trained on ``seeds`` fresh seeds.
    ``batch_size``: ``"task"`` (the task's default), None (batch gradient descent), 1 (SGD) or a size.
    ``storage``: an Optuna storage URL (``sqlite:///runs.db``, ``postgresql://...``) recording
    every trial; with a server, ``workers`` processes (here or on other machines running the same
    comparison) share the work. ``batch`` caps how many configurations train as one stacked model
    (default: the budget). ``progress``: True for a progress bar, or a callback ``(done, total)``.
    """
    problem = _problem(task, loss_fn, train, val, test, metric, label_smoothing)
    keys = protocol.resolve_optimizers(optimizers)
    _hyper.check_integer("budget", budget, 1)
    _hyper.check_integer("seeds", seeds, 1)
    _hyper.check_integer("workers", workers, 1)
    _hyper.check_integer("seed", seed, 0)
    _hyper.check_integer("batch", batch, 1, optional=True)
    _hyper.check_choice("search", search, protocol.SEARCHES)
    settings = Settings(
        epochs=problem.epochs if epochs is None else epochs,
        batch_size=problem.batch_size if batch_size == "task" else batch_size,
        dropout=dropout,
        init=init,
        label_smoothing=label_smoothing,
        clip=clip,
        early_stopping=early_stopping,
        weight_decay=weight_decay,
    )
    settings.check()
    if weight_decay is not None:
        for key in keys:
            if not any(h.name == "weight_decay" for h in optim.spec(key).hyperparameters):
                raise ValueError(f"weight_decay: {key} has no weight decay to set")
    if workers > 1 and (storage is None or storage.startswith("sqlite")):
        raise ValueError(
            "workers > 1 needs a database server shared by the workers: give "
            "storage='postgresql://...' (SQLite and memory storages serve one process)"
        )
    if workers > 1 and not isinstance(task, str):
        raise ValueError(
            "workers > 1 runs built-in tasks (by name); your own model trains in one process"
        )

    plan = {
        "task": problem.name,
        "optimizers": keys,
        "budget": budget,
        "seeds": seeds,
        "search": search,
        "seed": seed,
        "settings": asdict(settings),
    }
    items = study.plan_items(problem, keys, budget, seeds, search, seed)
    storage_object = study.open_storage(storage)
    try:
        name = study.study_name(problem, plan)
        the_study = study.create_or_load(storage_object, name, items, seed)
        total = len(items)
        report = _reporter(progress, total, len(study.finished_runs(the_study)))
        helpers = _start_workers(workers - 1, storage, name, plan)
        try:
            study.work(
                the_study,
                problem,
                settings,
                budget,
                search,
                batch=batch or budget,
                on_done=report,
                notice=notice,
            )
        finally:
            for process in helpers:
                process.join()
            report(None)
        runs = study.finished_runs(the_study)
    finally:
        study.close_storage(storage_object)
    return assemble(problem, plan, runs)


def assemble(problem: Problem, plan: dict[str, Any], runs) -> Comparison:
    """The comparison from its finished runs: summaries, ranking and recommendation."""
    keys = plan["optimizers"]
    summaries = [
        protocol.summarize(
            key,
            [r for r in runs if r.optimizer == key and r.phase == "tune"],
            [r for r in runs if r.optimizer == key and r.phase == "seed"],
            problem.target_loss,
        )
        for key in keys
    ]
    ordered = protocol.rank(summaries)
    notices = [
        f"{key} trained on the whole training set every step (its spec marks it full-batch: "
        "sign and secant rules need exact gradients)"
        for key in keys
        if optim.spec(key).full_batch and plan["settings"]["batch_size"] is not None
    ]
    return Comparison(
        task=problem.name,
        task_title=problem.title,
        metric=problem.metric_name,
        settings={**plan["settings"], "search": plan["search"], "seed": plan["seed"]},
        optimizers=keys,
        budget=plan["budget"],
        seeds=plan["seeds"],
        runs=list(runs),
        summaries=ordered,
        recommendation=protocol.recommend(ordered, problem.metric_name),
        notices=notices,
    )


def _problem(task, loss_fn, train, val, test, metric, label_smoothing) -> Problem:
    if isinstance(task, str | tasks.Task):
        if any(value is not None for value in (loss_fn, train, val, test, metric)):
            raise ValueError(
                "a built-in task brings its own loss and data: give loss_fn/train/val/test/metric "
                "only with your own model_fn"
            )
        return from_task(task, label_smoothing)
    if loss_fn is None or train is None or val is None:
        raise ValueError(
            "your own model needs loss_fn, train and val: compare(model_fn, loss_fn, train, val)"
        )
    if label_smoothing:
        raise ValueError(
            "label_smoothing is an option of the built-in tasks; put it in your loss_fn"
        )
    return from_model(task, loss_fn, train, val, test, metric=metric)


def _reporter(progress, total: int, already: int):
    """A function counting finished trials into a tqdm bar or the caller's callback."""
    state = {"done": already}
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=already, unit="training", desc="comparing", file=sys.stderr)

    def report(count: int | None) -> None:
        if count is None:  # the end: close the bar
            if bar is not None:
                bar.close()
            return
        state["done"] += count
        if bar is not None:
            bar.update(count)
        elif callable(progress):
            progress(min(state["done"], total), total)

    return report


def _start_workers(count: int, storage: str | None, name: str, plan: dict[str, Any]):
    context = multiprocessing.get_context("spawn")
    processes = []
    for _ in range(count):
        process = context.Process(target=worker, args=(storage, name, plan), daemon=False)
        process.start()
        processes.append(process)
    return processes


def worker(storage: str, name: str, plan: dict[str, Any]) -> None:
    """One more worker on a shared study of a built-in task (run in its own process)."""
    problem = from_task(plan["task"], plan["settings"]["label_smoothing"])
    settings = Settings(**plan["settings"])
    items = study.plan_items(
        problem, plan["optimizers"], plan["budget"], plan["seeds"], plan["search"], plan["seed"]
    )
    storage_object = study.open_storage(storage)
    try:
        the_study = study.create_or_load(storage_object, name, items, plan["seed"])
        study.work(
            the_study, problem, settings, plan["budget"], plan["search"], batch=plan["budget"]
        )
    finally:
        study.close_storage(storage_object)
