"""Read a `vllm serve` argument list the way the pinned vLLM release reads it.

The walk mirrors argparse as vLLM configures it: options take their values from the tokens that
follow unless given as `--flag=value`; the first free token is the model; a value that looks like a
flag ends an option's values.

Thrifty is stricter than vLLM on purpose, and says so in each error: an abbreviated flag
(`--max-num-seq`) or a value glued to a short flag (`-qfp8`), which could change meaning in the next
release; a `--config` file, whose contents it cannot see; a JSON option given both whole and by
dotted keys (vLLM silently keeps only the dotted keys); and a bare `--`. vLLM's checks that run after
parsing (a chat template file that must exist, flags that require other flags) are not modelled.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.vllm_args.command_line import Token, rewrite_command_line
from thrifty.vllm_args.errors import InvalidEngineArgs
from thrifty.vllm_args.spec import EngineArgSpec, OptionSpec, load_spec
from thrifty.vllm_args.values import InvalidValueError, convert_value

NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
JSON_KINDS = ("json", "json-or-str")


@dataclass(frozen=True)
class _OptionUse:
    option: OptionSpec
    spelling: str
    explicit_value: str | None
    """The value given after `=` in the same token, if any."""


def validate_engine_args(args: Sequence[str]) -> None:
    """Raise InvalidEngineArgs unless the pinned `vllm serve` accepts `args` (the words after
    `vllm serve`).

    >>> validate_engine_args(["meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs", "256"])
    >>> validate_engine_args(["m", "--max-num-seq", "256"])
    Traceback (most recent call last):
    ...
    thrifty.vllm_args.errors.InvalidEngineArgs: --max-num-seq: is an abbreviation of --max-num-seqs, which vLLM expands silently; write the full flag (args[1] = '--max-num-seq')
    >>> validate_engine_args(["m", "--kv-cache-dtype", "fp8", "--gpu-memory-utilization", "high"])
    Traceback (most recent call last):
    ...
    thrifty.vllm_args.errors.InvalidEngineArgs: --gpu-memory-utilization: expects a number such as 0.9, got 'high' (args[4] = 'high')
    """
    parse_engine_args(args)


def parse_engine_args(args: Sequence[str]) -> dict[str, Any]:
    """The values `vllm serve` would read from `args`, by dest, with every other option at its
    default: ints as int, switches as bool, JSON as dicts and lists. The positional model (or
    `--model`) lands in `model`, as `vllm serve` puts it there.

    >>> values = parse_engine_args(
    ...     ["meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs=128", "--no-enable-prefix-caching",
    ...      "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 4}', "-tp", "2"]
    ... )
    >>> values["model"], values["max_num_seqs"], values["enable_prefix_caching"], values["tensor_parallel_size"]
    ('meta-llama/Llama-3.1-8B-Instruct', 128, False, 2)
    >>> values["speculative_config"]["method"], values["port"], values["max_num_batched_tokens"]
    ('ngram', 8000, None)
    >>> parse_engine_args(["m", "--max-num-batched-tokens", "8k", "--speculative-config.method", "ngram"])[
    ...     "max_num_batched_tokens"]
    8000

    Raises InvalidEngineArgs where `validate_engine_args` would.
    """
    spec = load_spec()
    tokens = rewrite_command_line(args, spec)
    values = _defaults(spec)
    given_whole: set[str] = set()
    position = 0
    while position < len(tokens):
        token = tokens[position]
        use = _option_use(token, spec)
        if use is None:
            _take_positional(token, values, spec)
            position += 1
            continue
        if token.folded:
            _check_dotted(token, use.option, given_whole)
        elif use.option.kind in JSON_KINDS:
            given_whole.add(use.option.dest)
        position = _take_option(use, tokens, position, values, spec)
    if values[spec.positional_dest] is not None:
        values["model"] = values[spec.positional_dest]
    return values


def _defaults(spec: EngineArgSpec) -> dict[str, Any]:
    values: dict[str, Any] = {spec.positional_dest: None}
    for option in spec.options.values():
        default = option.default
        # argparse passes a string default through the option's converter, as if it were given.
        if isinstance(default, str) and option.takes_value:
            default = convert_value(option, default)
        # A copy, so that a caller editing its result cannot edit the shared spec.
        values[option.dest] = copy.deepcopy(default)
    return values


def _option_use(token: Token, spec: EngineArgSpec) -> _OptionUse | None:
    """The option a token names, or None when argparse would read the token as a value."""
    text = token.text
    if not text.startswith("-") or len(text) == 1 or text == "--":
        return None
    if text in spec.by_option_string:
        return _OptionUse(spec.by_option_string[text], text, None)
    name, equals, value = text.partition("=")
    if equals and name in spec.by_option_string:
        return _OptionUse(spec.by_option_string[name], name, value)
    if _abbreviation_targets(name, spec):
        raise _abbreviation_error(token, name, spec)
    if (spec.syntax.negative_numbers_are_values and NEGATIVE_NUMBER.match(text)) or " " in text:
        return None
    raise InvalidEngineArgs(
        index=token.index,
        argument=token.written,
        flag=name,
        problem=f"is not a vLLM {spec.vllm_version} flag{_closest_flag(name, spec)}",
    )


def _looks_like_option(token: Token, spec: EngineArgSpec) -> bool:
    if token.text == "--":
        return True
    try:
        return _option_use(token, spec) is not None
    except InvalidEngineArgs:
        return True


def _abbreviation_targets(name: str, spec: EngineArgSpec) -> list[str]:
    # argparse expands a unique prefix of a long flag; for a short flag it also splits `-qfp8`
    # into `-q fp8`. Both are refused here, so that a flag never changes meaning between releases.
    if name.startswith("--"):
        return sorted(spelling for spelling in spec.by_option_string if spelling.startswith(name))
    return sorted(
        spelling
        for spelling in spec.by_option_string
        if not spelling.startswith("--") and (spelling.startswith(name) or name.startswith(spelling))
    )


def _abbreviation_error(token: Token, name: str, spec: EngineArgSpec) -> InvalidEngineArgs:
    targets = _abbreviation_targets(name, spec)
    if not name.startswith("--") and any(name.startswith(target) for target in targets):
        short = next(target for target in targets if name.startswith(target))
        problem = f"glues a value to {short}; write {short} {name[len(short) :]!r} as two arguments"
    elif len(targets) == 1:
        problem = f"is an abbreviation of {targets[0]}, which vLLM expands silently; write the full flag"
    else:
        problem = f"is ambiguous: it abbreviates {', '.join(targets[:5])}; write the full flag"
    return InvalidEngineArgs(index=token.index, argument=token.written, flag=name, problem=problem)


def _closest_flag(name: str, spec: EngineArgSpec) -> str:
    close = difflib.get_close_matches(name, sorted(spec.by_option_string), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _take_positional(token: Token, values: dict[str, Any], spec: EngineArgSpec) -> None:
    if token.text == "--":
        raise InvalidEngineArgs(
            index=token.index, argument=token.written, flag=None, problem="a bare '--' is not supported here"
        )
    if values[spec.positional_dest] is not None:
        raise InvalidEngineArgs(
            index=token.index,
            argument=token.written,
            flag=None,
            problem=f"unexpected: the model is already {values[spec.positional_dest]!r} and "
            "vLLM takes no other positional argument (a flag's value may be missing its flag)",
        )
    values[spec.positional_dest] = token.text


def _take_option(
    use: _OptionUse, tokens: list[Token], position: int, values: dict[str, Any], spec: EngineArgSpec
) -> int:
    """Store the option at `tokens[position]` and return the position after its values."""
    option, token = use.option, tokens[position]
    if not option.takes_value:
        if use.explicit_value is not None:
            raise _error(token, option, f"takes no value; drop {'=' + use.explicit_value!r}")
        values[option.dest] = (
            option.const if option.kind == "flag" else use.spelling not in option.negative_option_strings
        )
        return position + 1
    if use.explicit_value is not None:
        texts, after = [Token(token.index, token.written, use.explicit_value)], position + 1
        if isinstance(option.nargs, int) and option.nargs != 1:
            raise _error(token, option, f"expects {option.nargs} values; '=' gives it one")
    else:
        texts, after = _following_values(option, tokens, position, spec)
    if option.nargs == "?" and not texts:
        values[option.dest] = option.const
        return after
    converted = [_convert(option, text) for text in texts]
    if option.kind == "lora-modules":
        converted = [item for item in converted if item not in (None, "")]
    if option.nargs in (None, "?"):
        value: Any = converted[0]
    else:
        value = converted
    if option.repeatable:
        values[option.dest] = [*values[option.dest], value]
    else:
        values[option.dest] = value
    return after


def _following_values(
    option: OptionSpec, tokens: list[Token], position: int, spec: EngineArgSpec
) -> tuple[list[Token], int]:
    """The value tokens after an option (up to the next flag, as many as its nargs allows)."""
    end = position + 1
    while end < len(tokens) and not _looks_like_option(tokens[end], spec):
        end += 1
    available = tokens[position + 1 : end]
    nargs = option.nargs
    if isinstance(nargs, int):
        least = most = nargs
    else:
        least = 1 if nargs in (None, "+") else 0
        most = 1 if nargs in (None, "?") else len(available)
    if len(available) < least:
        after_it = "the arguments end there" if end == len(tokens) else f"{tokens[end].written!r} follows"
        count = "a value" if nargs is None else f"at least {least} value(s)"
        raise _error(tokens[position], option, f"expects {count}, but {after_it}")
    taken = available[:most]
    return taken, position + 1 + len(taken)


def _convert(option: OptionSpec, token: Token) -> Any:
    try:
        return convert_value(option, token.text)
    except InvalidValueError as error:
        raise _error(token, option, str(error)) from None


def _check_dotted(token: Token, option: OptionSpec, given_whole: set[str]) -> None:
    if option.kind not in JSON_KINDS:
        raise _error(token, option, "takes no dotted keys: it is not a JSON option")
    if option.dest in given_whole:
        raise _error(
            token,
            option,
            "is given both as whole JSON and by dotted keys; vLLM would keep only the dotted keys, "
            "so put every key in one of the two forms",
        )


def _error(token: Token, option: OptionSpec, problem: str) -> InvalidEngineArgs:
    return InvalidEngineArgs(index=token.index, argument=token.written, flag=option.flag, problem=problem)
