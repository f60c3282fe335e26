"""Layered YAML config: read, deep-merge and substitute ``${NAME}`` tokens.

FlowEHR layers ``config.yaml`` → ``config.{ENV}.yaml`` → ``config.local.yaml`` with a
shallow ``dict.update``, which silently drops nested keys of the base file when an
overlay sets any key of the same section. Here mappings merge key by key at every
depth; lists and scalars are replaced whole, because merging two lists of source
tables item by item would guess at identity.

Every value remembers which file set it, so a validation error can name the file
and the key that is wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from resources.settings import ConfigError

_TOKEN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ConfigLayer:
    """One YAML file's parsed content."""

    path: Path
    data: dict[str, Any]


def read_layer(path: Path) -> ConfigLayer | None:
    """Parse one config file; a missing file is simply no layer.

    Raises:
        ConfigError: when the file is not valid YAML or not a mapping at the top.
    """
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not a list or value")
    return ConfigLayer(path=path, data=data)


def deep_merge(
    base: Mapping[str, Any],
    overlay: Mapping[str, Any],
    *,
    sources: dict[str, Path],
    overlay_path: Path,
    prefix: str = "",
) -> dict[str, Any]:
    """Merge ``overlay`` into a copy of ``base``, mapping by mapping.

    Args:
        base: the merged result so far.
        overlay: the next layer.
        sources: dotted key -> file that last set it; updated in place.
        overlay_path: the overlay's file, recorded in ``sources``.
        prefix: the dotted key of ``base`` (for recursion).

    Returns:
        A new dict; neither input is modified.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in overlay.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(
                merged[key], value, sources=sources, overlay_path=overlay_path, prefix=f"{dotted}."
            )
        else:
            merged[key] = value
            _record_sources(value, dotted, overlay_path, sources)
    return merged


def _record_sources(value: Any, dotted: str, path: Path, sources: dict[str, Path]) -> None:
    for stale in [k for k in sources if k == dotted or k.startswith(f"{dotted}.")]:
        del sources[stale]
    sources[dotted] = path
    if isinstance(value, Mapping):
        for key, child in value.items():
            _record_sources(child, f"{dotted}.{key}", path, sources)


class ConfigProblems(ConfigError):
    """Several config problems found in one pass, so a user fixes them all at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__(f"{len(problems)} configuration problems: " + "; ".join(problems))


def substitute_tokens(
    value: Any,
    env: Mapping[str, str],
    *,
    sources: Mapping[str, Path],
    key: str = "",
    unresolved: dict[str, list[str]] | None = None,
) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string, recursively.

    Args:
        unresolved: when given, a token without a value is recorded here (dotted key ->
            variable names) and replaced by an empty string, so every missing variable
            is reported in one pass instead of one per attempt (``unresolved_problems``).

    Raises:
        ConfigError: naming the key and its file when a token has no value and no
            default (only without ``unresolved``).
    """
    if isinstance(value, Mapping):
        return {
            k: substitute_tokens(
                v,
                env,
                sources=sources,
                key=f"{key}.{k}" if key else str(k),
                unresolved=unresolved,
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_tokens(v, env, sources=sources, key=f"{key}[{i}]", unresolved=unresolved)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found not in (None, ""):
            return str(found)
        if default is not None:
            return default
        if unresolved is None:
            raise ConfigError(_unresolved_message(key, [name], sources))
        unresolved.setdefault(key, []).append(name)
        return ""

    return _TOKEN.sub(replace, value)


def unresolved_problems(
    unresolved: Mapping[str, list[str]], sources: Mapping[str, Path]
) -> list[str]:
    """One message per key whose ``${NAME}`` tokens had no value."""
    return [_unresolved_message(key, names, sources) for key, names in unresolved.items()]


def _unresolved_message(key: str, names: list[str], sources: Mapping[str, Path]) -> str:
    if len(names) == 1:
        return (
            f"{source_of(key, sources)}: key '{key}' needs environment variable {names[0]}, "
            "which is not set (set it, or write ${" + names[0] + ":-default})"
        )
    return (
        f"{source_of(key, sources)}: key '{key}' needs environment variables "
        f"{', '.join(dict.fromkeys(names))}, which are not set"
    )


def source_of(key: str, sources: Mapping[str, Path]) -> str:
    """The file that set a dotted key, or its nearest parent; list indexes ignored."""
    candidate = re.sub(r"\[\d+\]", "", key)
    while candidate:
        if candidate in sources:
            return str(sources[candidate])
        candidate = candidate.rpartition(".")[0]
    return "config"


def load_layers(config_dir: Path, env_name: str) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read and deep-merge the three layers for an environment.

    Returns:
        The merged raw mapping (tokens not yet substituted) and the per-key sources.

    Raises:
        ConfigError: when ``config.yaml`` is missing or any layer is malformed.
    """
    base_path = config_dir / "config.yaml"
    if not base_path.exists():
        raise ConfigError(
            f"{base_path}: not found. Run from the repository root or set FLOWEHR_CONFIG_DIR."
        )
    merged: dict[str, Any] = {}
    sources: dict[str, Path] = {}
    for name in ("config.yaml", f"config.{env_name}.yaml", "config.local.yaml"):
        layer = read_layer(config_dir / name)
        if layer is not None:
            merged = deep_merge(merged, layer.data, sources=sources, overlay_path=layer.path)
    return merged, sources


def environment() -> MutableMapping[str, str]:
    """The process environment: the one place settings read it from."""
    return os.environ
