"""`thrifty router train`: fit the tier classifier and store it as a ConfigMap the router loads.

    thrifty router train --data labelled.jsonl > classifier.yaml
    thrifty router train --data labelled.jsonl --name router-classifier --namespace models --apply

`--data` is JSON lines, one request each, labelled with the tier that served it well (in
production: the cheapest tier whose answer was accepted, e.g. not escalated, not retried by the
user): `{"prompt": "...", "tier": "small"}`, or `{"messages": [...], "tier": "large"}` for chat
requests (read as the router reads them). A seeded share is held out; the report gives accuracy
on it next to the majority-class baseline, and per tier precision and recall.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from thrifty.router.classifier import TierClassifier, TrainingSettings, train
from thrifty.router.prompt import BadRequestError, read_prompt

DEFAULT_KEY = "classifier.json"


class TrainingDataError(ValueError):
    """The training file cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    examples: int
    held_out: int
    accuracy: float
    majority_accuracy: float
    """Accuracy of always answering the most common tier of the training part."""
    per_tier: dict[str, tuple[float, float, int]]
    """Tier -> (precision, recall, held-out examples)."""


def read_examples(lines: Sequence[str], *, source: str = "data") -> tuple[list[str], list[str]]:
    """Texts (as the router would see them) and tier labels from JSON lines."""
    texts: list[str] = []
    labels: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as error:
            raise TrainingDataError(f"{source}:{number}: not JSON: {error}") from None
        if not isinstance(row, dict) or not isinstance(row.get("tier"), str) or not row["tier"]:
            raise TrainingDataError(f'{source}:{number}: needs a "tier" string and a "prompt" or "messages"')
        try:
            if "messages" in row:
                text = read_prompt("chat", row).text
            elif isinstance(row.get("prompt"), str):
                text = row["prompt"]
            else:
                raise BadRequestError('needs "prompt" (a string) or "messages"')
        except BadRequestError as error:
            raise TrainingDataError(f"{source}:{number}: {error}") from None
        texts.append(text)
        labels.append(row["tier"])
    if not texts:
        raise TrainingDataError(f"{source}: no examples")
    return texts, labels


def split(
    texts: Sequence[str], labels: Sequence[str], *, holdout: float, seed: int
) -> tuple[list[int], list[int]]:
    """Positions of the training and held-out examples, shuffled with `seed`."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = len(order) - max(1, round(len(order) * holdout)) if holdout > 0 else len(order)
    return order[:cut], order[cut:]


def evaluate(
    classifier: TierClassifier, texts: Sequence[str], labels: Sequence[str], training_labels: Sequence[str]
) -> Evaluation:
    labels = list(labels)
    predicted = [classifier.predict(text).tier for text in texts]
    correct = sum(p == t for p, t in zip(predicted, labels, strict=True))
    majority = Counter(training_labels).most_common(1)[0][0]
    per_tier: dict[str, tuple[float, float, int]] = {}
    for tier in sorted(set(labels) | set(classifier.tiers)):
        true_positive = sum(p == t == tier for p, t in zip(predicted, labels, strict=True))
        predicted_count = predicted.count(tier)
        actual = labels.count(tier)
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / actual if actual else 0.0
        per_tier[tier] = (precision, recall, actual)
    count = len(labels)
    return Evaluation(
        examples=count + len(training_labels),
        held_out=count,
        accuracy=correct / count if count else float("nan"),
        majority_accuracy=sum(label == majority for label in labels) / count if count else float("nan"),
        per_tier=per_tier,
    )


def config_map(
    classifier: TierClassifier, evaluation: Evaluation, *, name: str, namespace: str | None, key: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/component": "tier-classifier", "app.kubernetes.io/part-of": "thrifty"},
        "annotations": {
            "thrifty.dev/tiers": ",".join(classifier.tiers),
            "thrifty.dev/held-out-accuracy": f"{evaluation.accuracy:.4f}",
            "thrifty.dev/majority-baseline": f"{evaluation.majority_accuracy:.4f}",
            "thrifty.dev/examples": str(evaluation.examples),
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {key: classifier.to_json()},
    }


def report(evaluation: Evaluation, out: TextIO) -> None:
    print(
        f"held-out accuracy {evaluation.accuracy:.3f} on {evaluation.held_out} of {evaluation.examples} "
        f"examples (majority-class baseline {evaluation.majority_accuracy:.3f})",
        file=out,
    )
    for tier, (precision, recall, count) in evaluation.per_tier.items():
        print(f"  {tier:<16} precision {precision:.3f}  recall {recall:.3f}  ({count} held out)", file=out)
    if evaluation.accuracy <= evaluation.majority_accuracy:
        print(
            "warning: the classifier is no better than always predicting the commonest tier; "
            "add labelled examples or leave spec.selection.classifier unset",
            file=out,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `thrifty router train`, for cli.py to put on its subcommand."""
    parser.add_argument("--data", type=Path, required=True, help="JSON lines of {prompt|messages, tier}")
    parser.add_argument(
        "--holdout", type=float, default=0.2, help="share held out for accuracy (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument("--epochs", type=int, default=TrainingSettings().epochs, help="passes over the data")
    parser.add_argument(
        "--name", default="router-classifier", help="ConfigMap name (default router-classifier)"
    )
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"ConfigMap key (default {DEFAULT_KEY})")
    parser.add_argument("--namespace", default=None, help="ConfigMap namespace (required with --apply)")
    parser.add_argument(
        "--output", type=Path, default=None, help="write the ConfigMap YAML here (default: standard output)"
    )
    parser.add_argument(
        "--apply", action="store_true", help="server-side apply the ConfigMap instead of printing it"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig for --apply (default $KUBECONFIG)"
    )


def run_parsed(args: argparse.Namespace) -> int:
    if not 0 <= args.holdout < 1:
        print(f"thrifty router train: --holdout {args.holdout}: must be in [0, 1)", file=sys.stderr)
        return 2
    if args.apply and not args.namespace:
        print("thrifty router train: --apply needs --namespace", file=sys.stderr)
        return 2
    try:
        texts, labels = read_examples(args.data.read_text().splitlines(), source=str(args.data))
    except OSError as error:
        print(f"thrifty router train: {args.data}: {error.strerror or error}", file=sys.stderr)
        return 2
    except TrainingDataError as error:
        print(f"thrifty router train: {error}", file=sys.stderr)
        return 2
    if len(set(labels)) < 2:
        print(f"thrifty router train: {args.data}: needs examples of at least two tiers", file=sys.stderr)
        return 2
    training, held_out = split(texts, labels, holdout=args.holdout, seed=args.seed)
    settings = TrainingSettings(epochs=args.epochs, seed=args.seed)
    classifier = train([texts[i] for i in training], [labels[i] for i in training], settings)
    evaluation = evaluate(
        classifier, [texts[i] for i in held_out], [labels[i] for i in held_out], [labels[i] for i in training]
    )
    report(evaluation, sys.stderr)
    if held_out:
        # Ship the model trained on everything: the held-out part only measured the method.
        classifier = train(texts, labels, settings)
    manifest = config_map(classifier, evaluation, name=args.name, namespace=args.namespace, key=args.key)
    if args.apply:
        return _apply(manifest, args.kubeconfig)
    text = yaml.safe_dump(manifest, sort_keys=False, width=1 << 20)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _apply(manifest: dict[str, Any], kubeconfig: Path | None) -> int:
    if kubeconfig is not None:
        # k8s.client reads $KUBECONFIG when it builds the process's one client.
        os.environ["KUBECONFIG"] = str(kubeconfig)
    from kubernetes.client.exceptions import ApiException

    from thrifty.k8s.client import api_client
    from thrifty.k8s.objects import server_side_apply

    try:
        server_side_apply(api_client(), manifest)
    except ApiException as error:
        print(
            f"thrifty router train: applying the ConfigMap failed: {error.status} {error.reason}",
            file=sys.stderr,
        )
        return 1
    metadata = manifest["metadata"]
    print(f"applied ConfigMap {metadata['namespace']}/{metadata['name']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `thrifty router train`."""
    parser = argparse.ArgumentParser(prog="thrifty router train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_parsed(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
