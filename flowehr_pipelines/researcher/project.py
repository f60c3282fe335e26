"""A research project's identity for the reader: its id and its derived key, never the
master key.

The pipeline identity derives a project's key (``derive``, or ``flowehr governance
project-key`` to hand it to the project's environment); the project's reader takes it
from ``FLOWEHR_PROJECT_ID`` and ``FLOWEHR_PROJECT_KEY`` (64 hex characters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flowehr_pipelines.config import Settings
from flowehr_pipelines.config_loading import environment
from transforms.project_keys import KEY_BYTES, derive_project_key

PROJECT_ID_ENV = "FLOWEHR_PROJECT_ID"
PROJECT_KEY_ENV = "FLOWEHR_PROJECT_KEY"


@dataclass(frozen=True)
class ProjectKey:
    """A configured project's id and key (the key is never shown in a repr)."""

    project_id: str
    key: bytes = field(repr=False)

    @classmethod
    def derive(cls, settings: Settings, project_id: str) -> ProjectKey:
        """The key of a configured project, from the master key (pipeline identity only).

        Raises:
            KeyError: the project is not in ``governance.projects``.
        """
        from flowehr_pipelines.deployment import build_pseudonymiser

        settings.governance.project(project_id)
        master = build_pseudonymiser(settings).key_bytes()
        return cls(project_id, derive_project_key(master, project_id))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProjectKey | None:
        """The project of the reader's environment, or None when no project is set.

        Raises:
            ValueError: a project id without a well-formed key, or a key without an id.
        """
        env = environment() if env is None else env
        project_id = (env.get(PROJECT_ID_ENV) or "").strip()
        hex_key = (env.get(PROJECT_KEY_ENV) or "").strip()
        if not project_id and not hex_key:
            return None
        if not project_id or not hex_key:
            raise ValueError(f"set both {PROJECT_ID_ENV} and {PROJECT_KEY_ENV}, or neither")
        try:
            key = bytes.fromhex(hex_key)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise ValueError(f"{PROJECT_KEY_ENV} must be {2 * KEY_BYTES} hex characters")
        return cls(project_id, key)
