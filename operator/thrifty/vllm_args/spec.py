"""The pinned vLLM release's `vllm serve` arguments, as typed data.

`spec.json` beside this file is generated from vLLM's own parser by `tools/vllm/generate_spec.py`
(`make vllm-spec`) and committed; this module only reads it. No vLLM import happens here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, cast

ValueKind = Literal[
    "flag", "bool-optional", "int", "float", "str", "json", "json-or-str", "id-list", "lora-modules"
]
Normalization = Literal["lower-snake", "none-to-empty"]


@dataclass(frozen=True, kw_only=True)
class OptionSpec:
    """One `vllm serve` option: how it is spelled, what value it takes, what it defaults to."""

    dest: str
    """The attribute name vLLM stores the value under (`max_num_seqs` for `--max-num-seqs`)."""
    option_strings: tuple[str, ...]
    """Every spelling the parser accepts, the documented one first (`--gpu-memory-utilization`,
    then aliases such as `--device-memory-utilization` and short forms such as `-tp`)."""
    negative_option_strings: frozenset[str]
    """For on/off switches, the spellings that turn it off (`--no-enable-x`, `--disable-x`)."""
    kind: ValueKind
    """`flag` (no value, stores `const`), `bool-optional` (no value, on or off by spelling), `int`,
    `float`, `str`, `json` (parsed with `json.loads`), `json-or-str` (JSON when the value looks like
    an object, else the string), `id-list` (comma-separated device ids, digits become ints) or
    `lora-modules` (`name=path` items or JSON objects)."""
    nargs: int | str | None
    """argparse's nargs: None for exactly one value, `?` for an optional value (then `const`), `+`
    for one or more, `*` for any number, an int for exactly that many, 0 for switches."""
    const: Any
    """The value stored by a `flag`, or by a `?` option given without a value."""
    choices: tuple[Any, ...] | None
    """The only values the parser accepts (after conversion), or None for any value of the kind."""
    known_values: tuple[str, ...] | None
    """Values vLLM documents (for example the KV-cache dtypes and quantization methods) where the
    parser itself accepts any string. Useful for enums in the API; never enforced here."""
    none_literals: bool
    """Whether `""` and `"None"` are accepted and mean None."""
    int_suffixes: bool
    """Whether an int may carry a size suffix: k/m/g/t (powers of 1000) or K/M/G/T (of 1024)."""
    auto_value: int | None
    """For ints that also accept `auto` (and `-1`): the value `auto` stands for."""
    json_keys: frozenset[str] | None
    """For JSON options that vLLM builds into a config object: the only top-level keys it accepts."""
    json_required_keys: frozenset[str] | None
    """Of those keys, the ones an object must have."""
    json_number_suffixes: bool
    """Whether bare numbers inside the JSON may carry size suffixes (`{"cpu_bytes": 80g}`)."""
    normalize: Normalization | None
    """A rewrite vLLM applies to a string value: `lower-snake` (lowercase, `-` to `_`) or
    `none-to-empty` (`none` in any case becomes the empty string)."""
    repeatable: bool
    """Whether each occurrence appends to a list instead of replacing the previous value."""
    default: Any
    """The value when the option is not given (None where vLLM's default is not plain data)."""
    help: str
    """The first sentence of vLLM's help for the option."""

    @property
    def flag(self) -> str:
        """The documented spelling, for example `--max-num-seqs`."""
        return self.option_strings[0]

    @property
    def takes_value(self) -> bool:
        return self.kind not in ("flag", "bool-optional")


@dataclass(frozen=True, kw_only=True)
class SyntaxRules:
    """Rewrites vLLM's parser applies to a command line before argparse sees it, as probed by the
    generator on the real parser."""

    underscore_spelling: bool
    """`--max_num_seqs` is read as `--max-num-seqs`."""
    dotted_json_keys: bool
    """`--speculative-config.method ngram` is read as `--speculative-config '{"method": "ngram"}'`."""
    model_option_moves_to_positional: bool
    """`--model M` is read as the positional model."""
    optimization_level_shorthand: bool
    """`-O3` is read as `--optimization-level 3`."""
    negative_numbers_are_values: bool
    """`-1` after an option is its value, not an unknown flag."""
    abbreviations: bool
    """Whether vLLM accepts unique prefixes (`--max-num-seq`). Thrifty refuses them either way:
    a prefix that is unique today may become ambiguous in the next vLLM release."""


@dataclass(frozen=True, kw_only=True)
class EngineArgSpec:
    """Everything `vllm serve` of one vLLM release accepts."""

    vllm_version: str
    """The vLLM release the spec was generated from."""
    positional_dest: str
    """Where the positional model (`vllm serve MODEL`) is stored; `vllm serve` copies it to `model`."""
    syntax: SyntaxRules
    options: Mapping[str, OptionSpec]
    """Every option, by dest."""
    by_option_string: Mapping[str, OptionSpec]
    """Every option, by each of its spellings."""

    def option(self, dest: str) -> OptionSpec:
        """The option stored under `dest`; KeyError names the dest when there is none."""
        try:
            return self.options[dest]
        except KeyError:
            raise KeyError(f"vLLM {self.vllm_version} has no option with dest {dest!r}") from None


@functools.cache
def load_spec() -> EngineArgSpec:
    """The spec of the pinned vLLM release, read once from the package's `spec.json`.

    >>> spec = load_spec()
    >>> spec.option("max_num_seqs").flag
    '--max-num-seqs'
    >>> spec.by_option_string["-tp"].dest
    'tensor_parallel_size'
    """
    text = resources.files(__package__).joinpath("spec.json").read_text(encoding="utf-8")
    return spec_from_json(json.loads(text))


def spec_from_json(data: Mapping[str, Any]) -> EngineArgSpec:
    """Build the typed spec from the decoded `spec.json`."""
    options = {dest: _option_from_json(dest, entry) for dest, entry in data["options"].items()}
    by_option_string = {spelling: option for option in options.values() for spelling in option.option_strings}
    return EngineArgSpec(
        vllm_version=data["vllm_version"],
        positional_dest=data["positional"]["dest"],
        syntax=SyntaxRules(**data["syntax"]),
        options=MappingProxyType(options),
        by_option_string=MappingProxyType(by_option_string),
    )


def _option_from_json(dest: str, entry: Mapping[str, Any]) -> OptionSpec:
    def optional_tuple(key: str) -> tuple[Any, ...] | None:
        values = entry[key]
        return None if values is None else tuple(values)

    def optional_frozenset(key: str) -> frozenset[str] | None:
        values = entry[key]
        return None if values is None else frozenset(values)

    return OptionSpec(
        dest=dest,
        option_strings=tuple(entry["option_strings"]),
        negative_option_strings=frozenset(entry["negative_option_strings"]),
        kind=cast(ValueKind, entry["kind"]),
        nargs=entry["nargs"],
        const=entry["const"],
        choices=optional_tuple("choices"),
        known_values=optional_tuple("known_values"),
        none_literals=entry["none_literals"],
        int_suffixes=entry["int_suffixes"],
        auto_value=entry["auto_value"],
        json_keys=optional_frozenset("json_keys"),
        json_required_keys=optional_frozenset("json_required_keys"),
        json_number_suffixes=entry["json_number_suffixes"],
        normalize=cast(Normalization | None, entry["normalize"]),
        repeatable=entry["repeatable"],
        default=entry["default"],
        help=entry["help"],
    )
