"""How fast the arena trains, side by side in one run.

batched      descentlab.arena.train: K configurations of Adam (one lr each) on the digits MLP
             as ONE stacked model (functional_call + vmap)
sequential   the same K configurations one after another in this process: a plain nn.Module,
             descentlab.optim.Adam with a Python-number lr, the same epochs and batch size
comparison   arena.compare with every first-order registry key, its lr grid and 3 seeds (the
             default comparison), and a 4-optimizer comparison (budget 6, 2 seeds: 32 trainings)
sklearn      scikit-learn's MLPClassifier (100 hidden units, Adam defaults) on a 75/25 split of
             digits: its test accuracy and seconds per fit, the peer a user would pick instead

  python benchmarks/arena_speed.py [--configs 64] [--threads 2] [--skip-default]
"""

from __future__ import annotations

import argparse
import time

import torch

from descentlab import arena, optim
from descentlab.arena.problem import from_task
from descentlab.arena.train import Settings, train


def sequential(problem, configs, seeds, settings) -> float:
    """The K configurations one after another, as a user would write the loop."""
    started = time.perf_counter()
    inputs, targets = problem.train.inputs, problem.train.targets
    for config, seed in zip(configs, seeds, strict=True):
        torch.manual_seed(seed)
        model = problem.model()
        optimizer = optim.Adam(model.parameters(), lr=config["lr"])
        order = torch.Generator().manual_seed(seed)
        for _ in range(settings.epochs):
            permutation = torch.randperm(len(inputs), generator=order)
            for start in range(0, len(inputs), settings.batch_size):
                rows = permutation[start : start + settings.batch_size]
                optimizer.zero_grad()
                problem.loss(model(inputs[rows]), targets[rows]).backward()
                optimizer.step()
            with torch.no_grad():
                problem.loss(model(problem.val.inputs), problem.val.targets)
    return time.perf_counter() - started


def sklearn_peer(repeats: int = 3) -> tuple[float, float]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    scores, seconds = [], []
    for seed in range(repeats):
        started = time.perf_counter()
        model = MLPClassifier(hidden_layer_sizes=(100,), random_state=seed, max_iter=200)
        model.fit(x_train, y_train)
        seconds.append(time.perf_counter() - started)
        scores.append(model.score(x_test, y_test))
    return sum(scores) / repeats, sum(seconds) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--skip-default", action="store_true", help="skip the long default comparison"
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    problem = from_task("digits-mlp")
    settings = Settings(epochs=problem.epochs, batch_size=problem.batch_size)
    count = arguments.configs
    rates = torch.logspace(-4, -1, count).tolist()
    configs, seeds = [{"lr": lr} for lr in rates], list(range(count))
    train(problem, "adam", configs[:2], seeds[:2], Settings(epochs=1, batch_size=64))  # warm up

    started = time.perf_counter()
    train(problem, "adam", configs, seeds, settings)
    batched = time.perf_counter() - started
    alone = sequential(problem, configs, seeds, settings)
    print(
        f"digits MLP, {count} Adam configurations x {settings.epochs} epochs, batch {settings.batch_size}"
    )
    print(f"| batched (one stacked model) | {batched:6.1f} s | 1.00x |")
    print(
        f"| sequential (plain loop)     | {alone:6.1f} s | {alone / batched:.2f}x slower (goal >= 10x) |"
    )

    accuracy, fit_seconds = sklearn_peer()
    print(
        f"\nscikit-learn MLPClassifier(100): test accuracy {accuracy:.3f}, {fit_seconds:.2f} s per fit"
    )
    started = time.perf_counter()
    four = arena.compare(
        "digits-mlp",
        optimizers="adam,sgd,momentum,rmsprop",
        budget=6,
        seeds=2,
        notice=lambda m: None,
    )
    four_seconds = time.perf_counter() - started
    best = four.summaries[0]
    print(
        f"4-optimizer comparison (budget 6, 2 seeds, 32 trainings): {four_seconds:.1f} s against "
        f"32 MLPClassifier fits {32 * fit_seconds:.1f} s ({32 * fit_seconds / four_seconds:.2f}x); "
        f"best {best.optimizer} test accuracy {best.test_metric:.3f} (sklearn {accuracy:.3f})"
    )
    if not arguments.skip_default:
        started = time.perf_counter()
        default = arena.compare("digits-mlp", notice=lambda m: None)
        seconds = time.perf_counter() - started
        best = default.summaries[0]
        print(
            f"default comparison ({len(default.optimizers)} optimizers x budget {default.budget} x "
            f"{default.seeds} seeds = {len(default.runs)} trainings): {seconds:.1f} s (goal <= 120 s); "
            f"best {best.optimizer} test accuracy {best.test_metric:.3f}"
        )


if __name__ == "__main__":
    main()
