"""Behaviour on a real task: every first-order optimizer trains multinomial logistic regression on
scikit-learn's bundled digits to >= 0.9 test accuracy with a learning rate from its spec's range.

The learning rate is chosen the way a user would: the spec's default first, else the best of a few
values spread over the spec's range, judged on a validation split; accuracy is then measured on a
held-out test split that played no part in the choice. Methods whose spec says ``full_batch``
(Rprop, Quickprop) train on the whole training split each step, as they were designed to.
"""

from __future__ import annotations

import functools

import pytest
import torch
from sklearn.datasets import load_digits

import descentlab.optim as optim
from tests.optim.harness import first_order_keys

EPOCHS, BATCH, FULL_BATCH_STEPS = 15, 64, 100


@functools.cache
def _splits():
    images, labels = load_digits(return_X_y=True)
    inputs = torch.tensor(images, dtype=torch.float32) / 16.0
    targets = torch.tensor(labels)
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))
    inputs, targets = inputs[order], targets[order]
    return (
        (inputs[:1200], targets[:1200]),
        (inputs[1200:1500], targets[1200:1500]),
        (inputs[1500:], targets[1500:]),
    )


def _train(key: str, lr: float) -> torch.nn.Linear:
    (train_x, train_y), _, _ = _splits()
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optimizer = optim.create(
        key, [model.weight] if optim.spec(key).matrices_only else model.parameters(), lr=lr
    )
    # Matrix-only methods (Muon) train the weight; the bias goes to AdamW, as their authors advise.
    helpers = [optim.AdamW([model.bias])] if optim.spec(key).matrices_only else []
    if optim.spec(key).full_batch:  # methods built for exact gradients get them
        batches = [torch.arange(len(train_y))] * FULL_BATCH_STEPS
    else:  # mini-batch: shuffle each epoch, batches of 64
        generator = torch.Generator().manual_seed(1)
        batches = [
            batch
            for _ in range(EPOCHS)
            for batch in torch.randperm(len(train_y), generator=generator).split(BATCH)
        ]
    for batch in batches:
        for each in (optimizer, *helpers):
            each.zero_grad()
        torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
        for each in (optimizer, *helpers):
            each.step()
    if hasattr(optimizer, "eval"):  # Schedule-Free: evaluate at the averaged point
        optimizer.eval()
    return model


def _accuracy(model: torch.nn.Linear, split) -> float:
    inputs, targets = split
    with torch.no_grad():
        return (model(inputs).argmax(dim=1) == targets).float().mean().item()


@pytest.mark.parametrize("key", first_order_keys())
def test_trains_digits_to_90_percent(key):
    _, validation, test = _splits()
    lr_spec = optim.spec(key).hyperparameter("lr")
    model = _train(key, lr_spec.default)
    if _accuracy(model, validation) < 0.9:
        candidates = [_train(key, lr) for lr in lr_spec.grid(5)]
        model = max(candidates, key=lambda m: _accuracy(m, validation))
    accuracy = _accuracy(model, test)
    assert accuracy >= 0.9, f"{key}: test accuracy {accuracy:.3f}"
