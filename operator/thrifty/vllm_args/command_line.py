"""The rewrites vLLM's `FlexibleArgumentParser.parse_args` applies before argparse reads a
`vllm serve` command line, replayed on plain strings.

Every token keeps the index it had in the caller's list, so that errors point at what the caller
wrote, not at what the rewrites made of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.vllm_args.errors import InvalidEngineArgs
from thrifty.vllm_args.spec import EngineArgSpec
from thrifty.vllm_args.values import parse_size

MODEL_OPTION = re.compile(r"^--model(=.+|$)")
SERVED_MODEL_NAME_OPTION = re.compile(r"^--served[-_]model[-_]name(=.+|$)")
OPTIMIZATION_LEVELS = {"0", "1", "2", "3"}


@dataclass(frozen=True)
class Token:
    index: int
    """Position in the caller's argument list."""
    written: str
    """The element as the caller wrote it, for error messages."""
    text: str
    """The element as argparse will see it."""
    folded: bool = False
    """Whether the rewrite made this token out of dotted JSON keys."""


def rewrite_command_line(args: Sequence[str], spec: EngineArgSpec) -> list[Token]:
    """The tokens argparse will see for `vllm serve ARGS`."""
    tokens = [Token(index, text, text) for index, text in enumerate(args)]
    _refuse_config_file(tokens)
    if spec.syntax.model_option_moves_to_positional:
        tokens = _move_model_option_first(tokens)
    _check_model_precedes_served_name(tokens)
    respelled: list[Token] = []
    for position, token in enumerate(tokens):
        following = tokens[position + 1].text if position + 1 < len(tokens) else None
        respelled += _respell(token, following, spec)
    return _fold_dotted_keys(respelled) if spec.syntax.dotted_json_keys else respelled


def _refuse_config_file(tokens: list[Token]) -> None:
    for token in tokens:
        if token.text == "--config" or token.text.startswith("--config="):
            raise InvalidEngineArgs(
                index=token.index,
                argument=token.written,
                flag="--config",
                problem="Thrifty cannot check settings hidden in a config file; pass them as flags",
            )


def _move_model_option_first(tokens: list[Token]) -> list[Token]:
    # `vllm serve --model M ...` is rewritten to `vllm serve M ...` (first occurrence only).
    for position, token in enumerate(tokens):
        if not MODEL_OPTION.match(token.text):
            continue
        if token.text != "--model":
            model = Token(token.index, token.written, token.text.removeprefix("--model="))
            return [model, *tokens[:position], *tokens[position + 1 :]]
        if position + 1 == len(tokens):
            raise InvalidEngineArgs(
                index=token.index,
                argument=token.written,
                flag="--model",
                problem="expects a model name after it",
            )
        return [tokens[position + 1], *tokens[:position], *tokens[position + 2 :]]
    return tokens


def _check_model_precedes_served_name(tokens: list[Token]) -> None:
    if not tokens or not tokens[0].text.startswith("-"):
        return
    for token in tokens:
        if SERVED_MODEL_NAME_OPTION.match(token.text):
            raise InvalidEngineArgs(
                index=tokens[0].index,
                argument=tokens[0].written,
                flag="--served-model-name",
                problem="vLLM requires the model as the first argument (or --model) when "
                "--served-model-name is given",
            )


def _respell(token: Token, following: str | None, spec: EngineArgSpec) -> list[Token]:
    """`--a_b` as `--a-b`, `-O3` as `--optimization-level 3`; `following` is the next element."""
    text = token.text
    if text.startswith("--"):
        if not spec.syntax.underscore_spelling:
            return [token]
        # Underscores become dashes in the name: after `--`, before the first `.` and any `=`.
        key, equals, value = text.partition("=")
        name, dot, rest = key[2:].partition(".")
        return [
            Token(token.index, token.written, "--" + name.replace("_", "-") + dot + rest + equals + value)
        ]
    if spec.syntax.optimization_level_shorthand and text.startswith("-O"):
        if text != "-O":
            level = text[3:] if text[2] == "=" else text[2:]
            return [
                Token(token.index, token.written, "--optimization-level"),
                Token(token.index, token.written, level),
            ]
        if following in OPTIMIZATION_LEVELS:
            return [Token(token.index, token.written, "--optimization-level")]
    return [token]


def _fold_dotted_keys(tokens: list[Token]) -> list[Token]:
    """`--x.a.b 1 --x.c+ p,q` becomes `--x '{"a": {"b": 1}, "c": ["p", "q"]}'`, appended at the end
    (so it overrides any `--x JSON` given whole: argparse keeps the last value)."""
    kept: list[Token] = []
    folded: dict[str, dict[str, Any]] = {}
    first: dict[str, Token] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        key_part, equals, value_text = token.text.partition("=")
        if not token.text.startswith("-") or "." not in key_part:
            kept.append(token)
            continue
        if not equals:
            if position == len(tokens):
                raise InvalidEngineArgs(
                    index=token.index,
                    argument=token.written,
                    flag=key_part.split(".")[0],
                    problem="expects a value",
                )
            value_text = tokens[position].text
            position += 1
        if key_part.endswith("+"):
            key_part = key_part[:-1]
            value_text = json.dumps(value_text.split(","))
        flag, *path = key_part.split(".")
        first.setdefault(flag, token)
        _merge(folded.setdefault(flag, {}), _nest(path, _dotted_value(value_text)))
    for flag, value in folded.items():
        origin = first[flag]
        kept += [
            Token(origin.index, origin.written, flag, True),
            Token(origin.index, origin.written, json.dumps(value), True),
        ]
    return kept


def _dotted_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return parse_size(text)
    except ValueError:
        return text


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    assert isinstance(nested, dict)
    return nested


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] += value
        else:
            into[key] = value
