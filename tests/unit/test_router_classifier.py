"""The tier classifier and `thrifty router train`: it learns more than the majority class,
stores as a ConfigMap the router can read back, and says which line of bad data is bad."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from thrifty.router.classifier import ClassifierError, TierClassifier, TrainingSettings, features, train
from thrifty.router.train import main, read_examples, split

EASY = ("hi, how are you?", "translate 'thank you' into {x}", "what is {x} in one line?", "a synonym for {x}")
HARD = (
    "prove rigorously that {x} holds, every step justified",
    "implement {x} and analyse its complexity",
    "design {x}: compare trade-offs and failure modes in depth",
)
FILL = ("French", "photosynthesis", "a B-tree", "rate limiting", "black holes", "inflation", "a parser")


def labelled(count: int, *, seed: int, noise: float = 0.1) -> list[tuple[str, str]]:
    """Small-tier and large-tier prompts (about a third large), some labels flipped."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        tier = "large" if rng.random() < 0.35 else "small"
        text = rng.choice(HARD if tier == "large" else EASY).format(x=rng.choice(FILL))
        if rng.random() < noise:
            tier = "small" if tier == "large" else "large"
        rows.append((text, tier))
    return rows


def test_training_beats_the_majority_class_on_held_out_prompts() -> None:
    rows = labelled(600, seed=1)
    training, held_out = rows[:480], rows[480:]
    majority = max(("small", "large"), key=lambda tier: sum(label == tier for _, label in training))

    classifier = train([t for t, _ in training], [label for _, label in training], TrainingSettings(epochs=5))
    accuracy = sum(classifier.predict(text).tier == label for text, label in held_out) / len(held_out)
    baseline = sum(label == majority for _, label in held_out) / len(held_out)

    assert accuracy > baseline + 0.15
    assert accuracy > 0.8


def test_confidence_is_lower_for_ambiguous_prompts() -> None:
    rows = labelled(400, seed=2, noise=0.0)
    classifier = train([t for t, _ in rows], [label for _, label in rows], TrainingSettings(epochs=5))

    clear = classifier.predict("prove rigorously that a parser holds, every step justified")
    vague = classifier.predict("zebra quantum umbrella")

    assert clear.tier == "large"
    assert clear.confidence > vague.confidence


def test_stored_classifier_predicts_the_same() -> None:
    rows = labelled(200, seed=3)
    classifier = train([t for t, _ in rows], [label for _, label in rows], TrainingSettings(epochs=3))

    restored = TierClassifier.from_json(classifier.to_json())

    for text, _ in rows[:30]:
        assert restored.predict(text).tier == classifier.predict(text).tier
        assert restored.predict(text).confidence == pytest.approx(
            classifier.predict(text).confidence, abs=1e-3
        )


def test_training_is_deterministic() -> None:
    rows = labelled(150, seed=4)
    texts, labels = [t for t, _ in rows], [label for _, label in rows]

    assert train(texts, labels).to_json() == train(texts, labels).to_json()


def test_features_are_unit_length_hashed_ngrams() -> None:
    values = features("Hello hello world")

    assert len(values) == 4  # hello, world, "hello hello", "hello world"
    assert sum(value * value for value in values.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("[]", "format"),
        (
            '{"format": "thrifty.dev/tier-classifier/v1", "tiers": ["a"], "bias": [0], "weights": {}, "buckets": 8}',
            "at least two tiers",
        ),
        (
            '{"format": "thrifty.dev/tier-classifier/v1", "tiers": ["a", "b"], "bias": [0], "weights": {}, "buckets": 8}',
            "bias",
        ),
        ("not json", "not JSON"),
    ],
)
def test_malformed_classifiers_are_refused_with_a_reason(text: str, phrase: str) -> None:
    with pytest.raises(ClassifierError, match=phrase):
        TierClassifier.from_json(text)


def write_data(path: Path, rows: list[tuple[str, str]]) -> None:
    lines = []
    for index, (text, tier) in enumerate(rows):
        if index % 2:
            lines.append(json.dumps({"messages": [{"role": "user", "content": text}], "tier": tier}))
        else:
            lines.append(json.dumps({"prompt": text, "tier": tier}))
    path.write_text("\n".join(lines) + "\n")


def test_train_command_writes_a_configmap_with_its_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, output = tmp_path / "data.jsonl", tmp_path / "classifier.yaml"
    write_data(data, labelled(300, seed=5))

    assert (
        main(["--data", str(data), "--output", str(output), "--name", "tiers", "--namespace", "models"]) == 0
    )

    manifest = yaml.safe_load(output.read_text())
    report = capsys.readouterr().err
    assert (manifest["kind"], manifest["metadata"]["name"], manifest["metadata"]["namespace"]) == (
        "ConfigMap",
        "tiers",
        "models",
    )
    accuracy = float(manifest["metadata"]["annotations"]["thrifty.dev/held-out-accuracy"])
    baseline = float(manifest["metadata"]["annotations"]["thrifty.dev/majority-baseline"])
    assert accuracy > baseline
    assert "held-out accuracy" in report
    assert set(TierClassifier.from_json(manifest["data"]["classifier.json"]).tiers) == {"small", "large"}


def test_bad_training_lines_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "a", "tier": "small"}\n{"prompt": 3, "tier": "large"}\n')

    assert main(["--data", str(data)]) == 2
    assert f"{data}:2:" in capsys.readouterr().err


def test_apply_needs_a_namespace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "x.jsonl"), "--apply"]) == 2
    assert "--apply needs --namespace" in capsys.readouterr().err


def test_examples_are_read_as_the_router_reads_them() -> None:
    texts, labels = read_examples(['{"messages": [{"role": "user", "content": "hi"}], "tier": "small"}', ""])

    assert (texts, labels) == (["user: hi"], ["small"])


def test_split_holds_out_a_seeded_share() -> None:
    training, held_out = split(["x"] * 100, ["y"] * 100, holdout=0.2, seed=7)

    assert (len(training), len(held_out)) == (80, 20)
    assert sorted(training + held_out) == list(range(100))
    assert split(["x"] * 100, ["y"] * 100, holdout=0.2, seed=7) == (training, held_out)
