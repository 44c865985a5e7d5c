"""A synthetic labelled set for `thrifty router train`: prompts a small model serves well, and
prompts that need the large one.

    python -m bench.router.classifier_data --count 2000 > /tmp/tier-examples.jsonl
    thrifty router train --data /tmp/tier-examples.jsonl

Small-tier requests are chit-chat, short lookups, rewording and translation; large-tier requests
ask for proofs, multi-step reasoning, non-trivial code and long analysis. The two share much of
their vocabulary (both ask to "explain", both mention code and numbers), and a share of labels is
flipped, as production labels (the cheapest tier whose answer was accepted) are noisy, so the
classifier has to learn more than a keyword. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

TOPICS = (
    "the French revolution",
    "photosynthesis",
    "a binary search tree",
    "the TCP handshake",
    "compound interest",
    "black holes",
    "the Python GIL",
    "vaccines",
    "inflation",
    "the Rust borrow checker",
    "plate tectonics",
    "Kubernetes pods",
    "the stock market",
    "climate change",
    "neural networks",
    "the Roman empire",
)
LANGUAGES = ("French", "German", "Spanish", "Italian", "Japanese", "Portuguese")
PHRASES = (
    "good morning",
    "where is the station",
    "thank you very much",
    "the meeting moved to Friday",
    "I will be late today",
    "please send the invoice",
)
CODE_TASKS = (
    "a lock-free queue in C++",
    "a distributed rate limiter",
    "an LRU cache with O(1) operations",
    "a parser for arithmetic expressions with precedence",
    "a B-tree with deletion",
    "a scheduler for tasks with dependencies",
    "a consistent hashing ring with bounded loads",
)
SIMPLE_CODE = (
    "reverse a string",
    "sum a list",
    "check if a number is even",
    "print hello world",
    "read a file",
)
MATH = (
    "there are infinitely many primes",
    "the square root of 2 is irrational",
    "every tree with n nodes has n-1 edges",
    "the sum of the first n odd numbers is n squared",
    "a continuous function on [a,b] attains its maximum",
)

SMALL_TEMPLATES = (
    "hi! how are you today?",
    "what is {topic} in one sentence?",
    "translate '{phrase}' into {language}",
    "give me a synonym for {word}",
    "write a short friendly reply saying {phrase}",
    "what's the capital of {country}?",
    "summarize {topic} in two lines",
    "how do I {simple} in python?",
    "fix the typo: {phrase}",
    "tell me a fun fact about {topic}",
    "explain {topic} simply to a child",
)
LARGE_TEMPLATES = (
    "prove that {math}. give a rigorous proof and justify every step",
    "implement {code} and analyse its time and space complexity",
    "step by step, derive the closed form and explain why {math}",
    "compare three designs for {code}, discuss trade-offs, failure modes and benchmarks",
    "analyse the causes and long-term consequences of {topic} with evidence and counterarguments",
    "debug this concurrency issue in {code}: threads deadlock under load; reason about lock ordering",
    "write a detailed technical design document for {code} including APIs, data structures and tests",
    "explain {topic} in depth, then critique the main theories and propose an experiment",
    "solve: a train leaves at 3pm at 80 km/h, another at 4pm at 100 km/h; when and where do they meet? show the algebra",
)
WORDS = ("happy", "fast", "big", "smart", "quiet", "bright", "strong")
COUNTRIES = ("France", "Japan", "Brazil", "Kenya", "Canada", "Norway")


def example(rng: random.Random, tier: str) -> str:
    template = rng.choice(SMALL_TEMPLATES if tier == "small" else LARGE_TEMPLATES)
    return template.format(
        topic=rng.choice(TOPICS),
        phrase=rng.choice(PHRASES),
        language=rng.choice(LANGUAGES),
        word=rng.choice(WORDS),
        country=rng.choice(COUNTRIES),
        simple=rng.choice(SIMPLE_CODE),
        code=rng.choice(CODE_TASKS),
        math=rng.choice(MATH),
    )


def generate(
    count: int, *, seed: int = 0, large_share: float = 0.35, noise: float = 0.08
) -> list[dict[str, object]]:
    """`count` labelled requests; `noise` of the labels flipped. Every third one is a chat."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for index in range(count):
        tier = "large" if rng.random() < large_share else "small"
        text = example(rng, tier)
        label = tier if rng.random() >= noise else ("small" if tier == "large" else "large")
        if index % 3 == 0:
            rows.append({"messages": [{"role": "user", "content": text}], "tier": label})
        else:
            rows.append({"prompt": text, "tier": label})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.router.classifier_data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for row in generate(args.count, seed=args.seed):
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
