"""Reading the router's configuration file (its shape: `thrifty.api.RouterConfig`).

The router reloads the file when it changes; a file that does not validate is logged and the
last good one stays in force.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from thrifty.api import RouterConfig, describe_validation_error


class ConfigError(ValueError):
    """The configuration file cannot be used; the message says where and why."""


def parse_config(text: str, *, source: str = "router.json") -> RouterConfig:
    """Validate a configuration document; `ConfigError` lists every problem with its field path."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not JSON: {error}") from None
    try:
        return RouterConfig.model_validate(payload)
    except ValidationError as error:
        raise ConfigError(f"{source}:\n{describe_validation_error(error)}") from None


def load_config(path: Path) -> RouterConfig:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    return parse_config(text, source=str(path))
