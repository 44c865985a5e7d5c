"""Validation errors in the words of the YAML a person wrote: field paths in camelCase, from the root."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(location: tuple[int | str, ...]) -> str:
    """`("spec", "resources", "tolerations", 0, "value")` -> `spec.resources.tolerations[0].value`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, `path: message`, for a Degraded condition or a CLI error.

    Messages of cross-field rules already name their fields; the path says where the rule sits.
    """
    lines = []
    for problem in error.errors(include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{field_path(problem['loc']) or '(root)'}: {message}")
    return "\n".join(lines)
