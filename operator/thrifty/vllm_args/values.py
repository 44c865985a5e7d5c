"""Turn one command-line string into the value vLLM's parser would store, or say why it cannot.

Each conversion mirrors the converter vLLM registers for the option (`int`, `float`,
`human_readable_int`, `json.loads`, ...), as described by the option's spec entry.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from thrifty.vllm_args.spec import OptionSpec

SIZE_SUFFIX = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
DECIMAL_SUFFIXES = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
BINARY_SUFFIXES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# Outside JSON strings, bare numbers with a size suffix are expanded before the JSON is decoded.
JSON_STRING = re.compile(r'("(?:[^"\\]|\\.)*")')
JSON_SIZED_NUMBER = re.compile(r"\b\d+(?:\.\d+)?[kKmMgGtT]\b")
# vLLM reads a value as JSON only when it looks like an object; otherwise it keeps the string.
JSON_OBJECT_SHAPE = re.compile(r"(?s)^\s*{.*}\s*$")


class InvalidValueError(ValueError):
    """A value the option's converter refuses; the message says what was expected."""


def convert_value(option: OptionSpec, text: str) -> Any:
    """The value vLLM would store for `text` given to `option` (one item, for list options)."""
    if option.none_literals and text in ("", "None"):
        value: Any = None
    elif option.kind == "int":
        value = _int_value(option, text)
    elif option.kind == "float":
        value = _float_value(text)
    elif option.kind == "json":
        value = _json_value(option, text)
    elif option.kind == "json-or-str":
        value = _json_value(option, text) if JSON_OBJECT_SHAPE.match(text) else text
    elif option.kind == "id-list":
        value = [int(part) if part.isdigit() else part for part in (item.strip() for item in text.split(","))]
    elif option.kind == "lora-modules":
        value = _lora_module(option, text)
    else:
        value = _normalized(option, text)
    if option.choices is not None and value not in option.choices:
        raise InvalidValueError(_not_a_choice(option, value))
    return value


def parse_size(text: str) -> int:
    """An int that may carry a size suffix, as vLLM's `human_readable_int` reads it.

    >>> parse_size("8k"), parse_size("8K"), parse_size("2.5m"), parse_size(" 4096 ")
    (8000, 8192, 2500000, 4096)
    """
    text = text.strip()
    match = SIZE_SUFFIX.fullmatch(text)
    if match is None:
        return int(text)
    number, suffix = match.groups()
    if suffix in DECIMAL_SUFFIXES:
        return int(float(number) * DECIMAL_SUFFIXES[suffix])
    if not number.isdigit():
        raise ValueError(
            f"{text!r} has a decimal with the binary suffix {suffix}; use {number}{suffix.lower()}"
        )
    return int(number) * BINARY_SUFFIXES[suffix]


def _int_value(option: OptionSpec, text: str) -> int:
    if option.auto_value is not None and text.strip().lower() in ("auto", str(option.auto_value)):
        return option.auto_value
    try:
        return parse_size(text) if option.int_suffixes else int(text)
    except ValueError as error:
        example = "a whole number such as 8192"
        if option.int_suffixes:
            example += " or 8k"
        if option.auto_value is not None:
            example += " or 'auto'"
        detail = f" ({error})" if "suffix" in str(error) else ""
        raise InvalidValueError(f"expects {example}, got {text!r}{detail}") from None


def _float_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidValueError(f"expects a number such as 0.9, got {text!r}") from None


def _json_value(option: OptionSpec, text: str) -> Any:
    source = text
    if option.json_number_suffixes:
        try:
            source = _expand_sized_numbers(text)
        except ValueError as error:
            raise InvalidValueError(str(error)) from None
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        raise InvalidValueError(
            f"expects JSON, got {text!r} ({error.msg} at character {error.pos})"
        ) from None
    if option.json_keys is not None:
        _check_json_keys(option, value)
    return value


def _expand_sized_numbers(text: str) -> str:
    parts = JSON_STRING.split(text)
    for index in range(0, len(parts), 2):  # even parts lie outside JSON strings
        parts[index] = JSON_SIZED_NUMBER.sub(lambda match: str(parse_size(match.group())), parts[index])
    return "".join(parts)


def _check_json_keys(option: OptionSpec, value: Any) -> None:
    assert option.json_keys is not None
    if not isinstance(value, dict):
        raise InvalidValueError(f"expects a JSON object, got {type(value).__name__} {json.dumps(value)}")
    for key in value:
        if key not in option.json_keys:
            hint = _did_you_mean(key, option.json_keys)
            raise InvalidValueError(f"has no key {key!r}{hint}; keys: {', '.join(sorted(option.json_keys))}")
    missing = sorted((option.json_required_keys or frozenset()) - value.keys())
    if missing:
        raise InvalidValueError(f"needs the key(s) {', '.join(missing)}")


def _lora_module(option: OptionSpec, text: str) -> Any:
    # vLLM's LoRAParserAction: `name=path`, or a JSON object of LoRAModulePath fields.
    if "=" in text and "," not in text:
        name, path = text.split("=", 1)
        return {"name": name, "path": path}
    return _json_value(option, text)


def _normalized(option: OptionSpec, text: str) -> str:
    if option.normalize == "lower-snake":
        return text.lower().replace("-", "_")
    if option.normalize == "none-to-empty" and text.lower() == "none":
        return ""
    return text


def _not_a_choice(option: OptionSpec, value: Any) -> str:
    assert option.choices is not None
    shown = [choice for choice in option.choices if choice is not None]
    hint = _did_you_mean(str(value), [str(choice) for choice in shown])
    return f"{value!r} is not one of its choices{hint}; choose from {', '.join(map(str, shown))}"


def _did_you_mean(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
