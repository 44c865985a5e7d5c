"""The tier classifier: multinomial logistic regression over hashed word n-grams, in pure Python.

Small on purpose. A prompt becomes the counts of its lower-cased words and word pairs, hashed
into 2^18 buckets (no vocabulary to store), scaled to unit length; a weight per bucket and tier
turns them into a probability per tier (softmax). Logistic regression rather than naive Bayes
because its probabilities are calibrated enough for a confidence threshold to mean something;
naive Bayes is near-certain about almost everything.

Stored as JSON (what `thrifty router train` puts into a ConfigMap):

    {"format": "thrifty.dev/tier-classifier/v1", "tiers": ["small", "large"],
     "buckets": 262144, "bias": [0.3, -0.3], "weights": {"1234": [0.8, -0.8], ...}}

Training is deterministic (examples shuffled with a fixed seed), so the same data give the same
ConfigMap.
"""

from __future__ import annotations

import json
import math
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FORMAT = "thrifty.dev/tier-classifier/v1"
DEFAULT_BUCKETS = 1 << 18
_WORD = re.compile(r"[a-z0-9]+")
_MAX_FEATURE_CHARS = 16_384
"""Only the start of a long prompt is read: what kind of request it is shows early, and
classification must stay a fraction of a millisecond."""


class ClassifierError(ValueError):
    """A stored classifier that cannot be read; the message says what is wrong."""


def features(text: str, buckets: int = DEFAULT_BUCKETS) -> dict[int, float]:
    """Hashed unigram and bigram counts of `text`, scaled to unit Euclidean length."""
    words = _WORD.findall(text[:_MAX_FEATURE_CHARS].lower())
    counts: dict[int, float] = {}
    previous = ""
    for word in words:
        for gram in (word, f"{previous} {word}") if previous else (word,):
            bucket = zlib.crc32(gram.encode()) % buckets
            counts[bucket] = counts.get(bucket, 0.0) + 1.0
        previous = word
    norm = math.sqrt(sum(value * value for value in counts.values()))
    if norm == 0:
        return counts
    return {bucket: value / norm for bucket, value in counts.items()}


@dataclass(frozen=True, slots=True)
class Prediction:
    tier: str
    confidence: float
    """The predicted tier's probability (0..1)."""


class TierClassifier:
    """A trained classifier: `predict(text)` gives the likeliest tier and its probability."""

    def __init__(
        self,
        tiers: Sequence[str],
        bias: Sequence[float],
        weights: dict[int, list[float]],
        *,
        buckets: int = DEFAULT_BUCKETS,
    ) -> None:
        if len(tiers) < 2:
            raise ClassifierError(f"tiers: a classifier needs at least two tiers, got {list(tiers)}")
        if len(bias) != len(tiers):
            raise ClassifierError(f"bias: expected {len(tiers)} values (one per tier), got {len(bias)}")
        for bucket, row in weights.items():
            if len(row) != len(tiers) or not 0 <= bucket < buckets:
                raise ClassifierError(
                    f"weights[{bucket}]: expected a bucket in 0..{buckets - 1} with {len(tiers)} weights"
                )
        self.tiers = tuple(tiers)
        self.bias = list(bias)
        self.weights = weights
        self.buckets = buckets

    def probabilities(self, text: str) -> list[float]:
        """Probability of each tier (in `tiers` order) for a prompt."""
        return _softmax(self._scores(features(text, self.buckets)))

    def predict(self, text: str) -> Prediction:
        probabilities = self.probabilities(text)
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return Prediction(self.tiers[best], probabilities[best])

    def _scores(self, values: dict[int, float]) -> list[float]:
        scores = list(self.bias)
        weights = self.weights
        for bucket, value in values.items():
            row = weights.get(bucket)
            if row is not None:
                for index, weight in enumerate(row):
                    scores[index] += weight * value
        return scores

    def to_json(self) -> str:
        payload = {
            "format": FORMAT,
            "tiers": list(self.tiers),
            "buckets": self.buckets,
            "bias": [round(value, 5) for value in self.bias],
            "weights": {
                str(bucket): [round(value, 5) for value in row]
                for bucket, row in sorted(self.weights.items())
            },
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TierClassifier:
        """Read a stored classifier; `ClassifierError` names what is wrong with it."""
        try:
            payload: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise ClassifierError(f"not JSON: {error}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ClassifierError(f"format: expected {FORMAT!r} (write it with `thrifty router train`)")
        try:
            weights = {int(bucket): [float(v) for v in row] for bucket, row in payload["weights"].items()}
            return cls(
                [str(tier) for tier in payload["tiers"]],
                [float(value) for value in payload["bias"]],
                weights,
                buckets=int(payload["buckets"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            if isinstance(error, ClassifierError):
                raise
            raise ClassifierError(f"malformed classifier: {error!r}") from None


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = sum(exps)
    return [value / total for value in exps]


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    epochs: int = 8
    learning_rate: float = 0.5
    l2: float = 1e-5
    """L2 penalty per update: keeps rare n-grams from memorising single examples."""
    buckets: int = DEFAULT_BUCKETS
    max_features: int = 40_000
    """Buckets kept in the stored model (largest weights first): a ConfigMap holds at most 1 MiB."""
    seed: int = 0


def train(
    texts: Sequence[str], labels: Sequence[str], settings: TrainingSettings = TrainingSettings()
) -> TierClassifier:
    """Fit by stochastic gradient descent on the cross-entropy, AdaGrad step sizes per weight."""
    if len(texts) != len(labels) or not texts:
        raise ValueError(
            f"training needs one label per prompt and at least one prompt, got {len(texts)}/{len(labels)}"
        )
    tiers = sorted(set(labels))
    if len(tiers) < 2:
        raise ValueError(f"training needs prompts of at least two tiers, got only {tiers}")
    tier_index = {tier: index for index, tier in enumerate(tiers)}
    examples = [
        (features(text, settings.buckets), tier_index[label])
        for text, label in zip(texts, labels, strict=True)
    ]
    classes = len(tiers)
    bias = [0.0] * classes
    bias_g = [1e-8] * classes
    weights: dict[int, list[float]] = {}
    gradients: dict[int, list[float]] = {}
    rng = random.Random(settings.seed)
    order = list(range(len(examples)))
    rate, l2 = settings.learning_rate, settings.l2
    for _epoch in range(settings.epochs):
        rng.shuffle(order)
        for position in order:
            values, label = examples[position]
            scores = list(bias)
            for bucket, value in values.items():
                row = weights.get(bucket)
                if row is not None:
                    for index in range(classes):
                        scores[index] += row[index] * value
            probabilities = _softmax(scores)
            for index in range(classes):
                error = probabilities[index] - (1.0 if index == label else 0.0)
                bias_g[index] += error * error
                bias[index] -= rate * error / math.sqrt(bias_g[index])
            for bucket, value in values.items():
                row = weights.setdefault(bucket, [0.0] * classes)
                squares = gradients.setdefault(bucket, [1e-8] * classes)
                for index in range(classes):
                    gradient = (probabilities[index] - (1.0 if index == label else 0.0)) * value + l2 * row[
                        index
                    ]
                    squares[index] += gradient * gradient
                    row[index] -= rate * gradient / math.sqrt(squares[index])
    kept = sorted(weights.items(), key=lambda item: -max(abs(w) for w in item[1]))[: settings.max_features]
    return TierClassifier(tiers, bias, dict(kept), buckets=settings.buckets)
