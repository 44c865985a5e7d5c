"""Write the argument spec of the installed vLLM's `vllm serve` to a JSON file.

Run with vLLM's own virtualenv (`make vllm-spec` does this):

    .venv-vllm/bin/python tools/vllm/generate_spec.py operator/thrifty/vllm_args/spec.json

The spec is read from vLLM's real parser: every action it registers, every option string it maps to
that action (hidden `--no-x` spellings included), and the syntax its `parse_args` accepts, probed by
parsing sample command lines. A value type this script does not recognise stops it, so that a vLLM
upgrade cannot slip an argument past the spec with a wrong kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from serve_parser import build_serve_parser, vllm_version

# Actions that store one value per occurrence, like argparse's own `store`.
STORE_ACTIONS = {"_StoreAction", "DeprecatedLogConfigFileAction"}
FLAG_ACTIONS = {"_StoreTrueAction", "_StoreFalseAction", "_StoreConstAction"}
SKIPPED_ACTIONS = {"_HelpAction", "_VersionAction"}
HELP_LIMIT = 240
# A sentence ends at a full stop before a capital letter, but not after "e.g." or "i.e.".
SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)\.\s+(?=[A-Z`])")
# Every option carries every field, so that readers never guess what a missing key means.
UNSET_FIELDS: dict[str, Any] = {
    "auto_value": None,
    "const": None,
    "int_suffixes": False,
    "json_keys": None,
    "json_required_keys": None,
    "json_number_suffixes": False,
    "none_literals": False,
    "normalize": None,
}


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: generate_spec.py OUTPUT.json")
    top, serve = build_serve_parser(with_help_text=True)
    spec = {
        "vllm_version": vllm_version(),
        "command": "vllm serve",
        "generated_by": "tools/vllm/generate_spec.py",
        "positional": positional_spec(serve),
        "syntax": probe_syntax(top, serve),
        "options": options_spec(top, serve),
    }
    text = json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    Path(sys.argv[1]).write_text(text, encoding="utf-8")


def positional_spec(serve: argparse.ArgumentParser) -> dict[str, Any]:
    (model,) = [action for action in serve._actions if not action.option_strings]
    return {"dest": model.dest, "nargs": model.nargs, "help": short_help(model.help)}


def options_spec(top: argparse.ArgumentParser, serve: argparse.ArgumentParser) -> dict[str, Any]:
    # The parser's own lookup table is the truth about spellings: vLLM keeps some of them
    # (`--no-enable-x`) registered but out of the help and out of `action.option_strings`.
    spellings: dict[int, list[str]] = {}
    for option_string, action in serve._option_string_actions.items():
        spellings.setdefault(id(action), []).append(option_string)
    options: dict[str, Any] = {}
    for action in serve._actions:
        kind = type(action).__name__
        if not action.option_strings or kind in SKIPPED_ACTIONS:
            continue
        if action.dest in options:
            raise SystemExit(f"two actions share dest {action.dest!r}; the spec keys options by dest")
        # The spelling vLLM documents first leads; hidden spellings follow in a stable order.
        visible = [spelling for spelling in action.option_strings if spelling in spellings[id(action)]]
        option_strings = visible + sorted(set(spellings[id(action)]) - set(visible))
        entry = {
            **UNSET_FIELDS,
            "option_strings": option_strings,
            "negative_option_strings": [],
            "nargs": action.nargs,
            "choices": None if action.choices is None else [jsonable(c) for c in action.choices],
            "known_values": list(action.metavar) if isinstance(action.metavar, list | tuple) else None,
            "default": None if action.default == argparse.SUPPRESS else jsonable(action.default),
            "help": short_help(action.help),
            "repeatable": kind == "_AppendAction",
        }
        if isinstance(action, argparse.BooleanOptionalAction):
            entry["kind"] = "bool-optional"
            entry["negative_option_strings"] = negative_spellings(top, action, option_strings)
        elif kind in FLAG_ACTIONS:
            entry.update(kind="flag", const=action.const)
        elif kind == "LoRAParserAction":
            # Each item goes through the action's converter first ("" and "None" are dropped).
            entry.update(value_type(action))
            entry.update(kind="lora-modules", **dataclass_keys(lora_module_class()))
        elif kind in STORE_ACTIONS or kind == "_AppendAction":
            entry.update(value_type(action))
            if action.nargs == "?":
                entry["const"] = jsonable(action.const)
        else:
            raise SystemExit(f"{option_strings[0]}: unknown action class {kind}; teach generate_spec.py")
        options[action.dest] = entry
    add_known_quantization_methods(options)
    return options


def value_type(action: argparse.Action) -> dict[str, Any]:
    """Describe what `action.type` does to a command-line string, as plain data."""
    from vllm.engine import arg_utils
    from vllm.utils import argparse_utils

    described: dict[str, Any] = {}
    convert = action.type
    # vLLM wraps converters: optional_type(f) maps "" and "None" to None, parse_type(f) only
    # rewords errors. Unwrap both to reach the converter that decides validity.
    while getattr(convert, "__qualname__", "").startswith(("optional_type.", "parse_type.")):
        if convert.__qualname__.startswith("optional_type."):
            described["none_literals"] = True
        convert = inspect.getclosurevars(convert).nonlocals["return_type"]
    name = getattr(convert, "__qualname__", "")
    if convert is None or convert is str:
        described["kind"] = "str"
    elif convert is arg_utils.parse_reasoning_parser:
        described.update(kind="str", normalize="none-to-empty")
    elif convert is int:
        described["kind"] = "int"
    elif convert is float:
        described["kind"] = "float"
    elif convert is argparse_utils.human_readable_int:
        described.update(kind="int", int_suffixes=True)
    elif convert is argparse_utils.human_readable_int_or_auto:
        described.update(kind="int", int_suffixes=True, auto_value=-1)
    elif convert is json.loads:
        described["kind"] = "json"
    elif convert is arg_utils.union_dict_and_str:
        described["kind"] = "json-or-str"
    elif name.endswith("parse_dataclass"):
        (config_class,) = convert.__defaults__
        described.update(kind="json", json_number_suffixes=True, **dataclass_keys(config_class))
    elif name.endswith("<lambda>") and convert("Ab-Cd") == "ab_cd":
        described.update(kind="str", normalize="lower-snake")
    elif name.endswith("<lambda>") and convert("0, gpu-a") == [0, "gpu-a"]:
        described["kind"] = "id-list"
    else:
        raise SystemExit(
            f"{action.option_strings[0]}: unknown value type {convert!r}; teach generate_spec.py"
        )
    return described


def negative_spellings(
    top: argparse.ArgumentParser, action: argparse.Action, spellings: list[str]
) -> list[str]:
    """Ask the parser which spellings of a boolean switch turn it off."""
    negative = []
    for spelling in spellings:
        namespace = top.parse_args(["serve", "some-model", spelling])
        if getattr(namespace, action.dest) is False:
            negative.append(spelling)
    return negative


def probe_syntax(top: argparse.ArgumentParser, serve: argparse.ArgumentParser) -> dict[str, Any]:
    """The rewrites vLLM's `FlexibleArgumentParser.parse_args` applies before argparse runs, each
    confirmed by parsing a sample command line."""

    def parse(*args: str) -> argparse.Namespace:
        return top.parse_args(["serve", *args])

    dotted = parse("m", "--speculative-config.method", "ngram", "--speculative-config.draft.x+", "1,2")
    return {
        "abbreviations": serve.allow_abbrev,
        "underscore_spelling": parse("m", "--max_num_seqs", "3").max_num_seqs == 3,
        "dotted_json_keys": dotted.speculative_config == {"method": "ngram", "draft": {"x": ["1", "2"]}},
        "model_option_moves_to_positional": parse("--model", "m").model_tag == "m",
        "optimization_level_shorthand": parse("m", "-O3").optimization_level == "3",
        "negative_numbers_are_values": not serve._has_negative_number_optionals,
    }


def add_known_quantization_methods(options: dict[str, Any]) -> None:
    # `--quantization` is a free string for the parser; the methods vLLM ships are a Literal elsewhere.
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

    options["quantization"]["known_values"] = sorted(QUANTIZATION_METHODS)


def lora_module_class() -> type:
    from vllm.entrypoints.openai.models.protocol import LoRAModulePath

    return LoRAModulePath


def dataclass_keys(config_class: type) -> dict[str, list[str]]:
    """The keys a JSON object must draw from (and must include) to build `config_class`."""
    fields = dataclasses.fields(config_class)
    required = [
        field.name
        for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    ]
    return {"json_keys": sorted(field.name for field in fields), "json_required_keys": sorted(required)}


def jsonable(value: Any) -> Any:
    """The value as JSON would carry it, or None where JSON cannot (a callable, a class)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, set | frozenset | tuple):
        value = sorted(value) if isinstance(value, set | frozenset) else list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_refuse))
    except (TypeError, ValueError):
        return None


def _refuse(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(type(value).__name__)


def short_help(text: str | None) -> str:
    """The first sentence of an argument's help, on one line."""
    if not text or text == argparse.SUPPRESS:
        return ""
    paragraph = " ".join(text.split("\n\n", 1)[0].split()).replace("%%", "%")
    sentence = SENTENCE_END.split(paragraph, maxsplit=1)[0].rstrip(".") + "."
    return sentence if len(sentence) <= HELP_LIMIT else sentence[: HELP_LIMIT - 3].rstrip() + "..."


if __name__ == "__main__":
    main()
