"""The whole run configuration in the URL, like TensorFlow Playground's links.

A teacher copies the address bar into another browser and gets the same setup. The URL is
outside input: every value is parsed, checked against lab.config's allowed values and limits,
and a bad one is replaced by the default with a sentence saying so. A URL never names a folder
on the server (``data_dir`` is not read from it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields

from lab.config import RunConfig, coerce, problems

URL_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in ("data_dir", "extra"))
MAX_VALUE_CHARS = 64


def config_from_query(params: Mapping[str, object],
                      base: RunConfig | None = None) -> tuple[RunConfig, list[str]]:
    """Parse query parameters into a RunConfig; returns it and the warnings to show."""
    config = base or RunConfig()
    warnings: list[str] = []
    for name in URL_FIELDS:
        if name not in params:
            continue
        raw = params[name]
        text = str(raw[-1] if isinstance(raw, list | tuple) else raw)[:MAX_VALUE_CHARS]
        try:
            candidate = config.replace(**{name: coerce(name, text)})
        except (ValueError, TypeError):
            warnings.append(f"Ignored {name}={_shown(text)} from the link: it is not a valid "
                            f"{_kind(name)}.")
            continue
        wrong = problems(candidate)
        if wrong:
            warnings.append(f"Ignored {name}={_shown(text)} from the link: {wrong[0]}")
            continue
        config = candidate
    if "data_dir" in params:
        warnings.append("Ignored data_dir from the link: a link cannot choose a folder on the "
                        "server.")
    return config, warnings


def _shown(text: str) -> str:
    """A value as it may be echoed back: short, and no characters that could become markup."""
    return "'" + re.sub(r"[^A-Za-z0-9.+_-]", "?", text[:24]) + "'"


def _kind(name: str) -> str:
    kind = str(RunConfig.__dataclass_fields__[name].type)
    return next((word for key, word in (("bool", "true/false value"), ("int", "whole number"),
                                        ("float", "finite number")) if kind.startswith(key)),
                "value")


def config_to_query(config: RunConfig) -> dict[str, str]:
    """The fields that differ from the defaults, as strings (a short, shareable link)."""
    default = RunConfig()
    return {
        name: str(getattr(config, name))
        for name in URL_FIELDS
        if getattr(config, name) != getattr(default, name)
    }
