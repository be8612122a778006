"""The whole run configuration in the URL, like TensorFlow Playground's links.

A teacher copies the address bar into another browser and gets the same setup. The URL is
outside input: every value is parsed, checked against lab.core.config's allowed values and limits,
and a bad one is replaced by the default with a sentence saying so. A URL never names a folder
on the server (``data_dir`` is not read from it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lab.core.config import RunConfig, coerce, problems
from lab.core.fields import FIELDS, URL_FIELDS

MAX_VALUE_CHARS = 64


def config_from_query(params: Mapping[str, object],
                      base: RunConfig | None = None) -> tuple[RunConfig, list[str]]:
    """Parse query parameters into a RunConfig; returns it and the warnings to show.

    The loss is read first and brings its own energy and margin
    (lab.metric.loss_specs.LOSS_DEFAULTS), as on the Train page and in the CLI; ``energy`` and
    ``margin`` in the link then override them. A link made by :func:`config_to_query` therefore
    reads back as the same config.
    """
    config = base or RunConfig()
    warnings: list[str] = []
    for name in ("loss", *(n for n in URL_FIELDS if n != "loss")):
        if name not in params:
            continue
        raw = params[name]
        text = str(raw[-1] if isinstance(raw, list | tuple) else raw)[:MAX_VALUE_CHARS]
        if name == "loss" and not problems(config.replace(loss=text)):
            config = config.replace(loss=text, energy=None, margin=None)
            continue
        try:
            candidate = config.replace(**{name: coerce(name, text)})
        except (ValueError, TypeError):
            warnings.append(f"Ignored {name}={_shown(text)} from the link: it is not a valid "
                            f"{_kind(name)}.")
            continue
        wrong = problems(candidate)
        if wrong:
            warnings.append(f"Ignored {name}={_shown(text)} from the link: {wrong[0]} "
                            f"Kept {name}={getattr(config, name)}.")
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
    spec = FIELDS[name]
    word = {"bool": "true/false value", "int": "whole number", "float": "finite number"}.get(
        spec.kind, "value")
    return f"{word} ({spec.describe()})"


def config_to_query(config: RunConfig) -> dict[str, str]:
    """The fields that differ from the defaults, as strings (a short, shareable link). The
    defaults of the config's loss count as defaults: ``loss=triplet`` alone means α = 0.2."""
    default = RunConfig(loss=config.loss)
    query = {
        name: str(getattr(config, name))
        for name in URL_FIELDS
        if getattr(config, name) != getattr(default, name)
    }
    if config.loss != RunConfig().loss:
        query["loss"] = config.loss
    return query
