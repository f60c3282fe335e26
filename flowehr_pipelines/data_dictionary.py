"""The data dictionary of the published tables, rendered as Markdown from the catalogue.

It reads the same definition metadata the Dagster UI shows (description, ``zone`` tag,
owners, group and ``dagster/column_schema``), so the document cannot say anything the
catalogue does not. ``flowehr docs data-dictionary`` writes it to
``docs/data_dictionary.md``; ``tests/test_data_dictionary.py`` fails when the committed
file is stale.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from flowehr_pipelines.catalogue import COLUMN_SCHEMA, is_published

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "data_dictionary.md"
REGENERATE = "flowehr docs data-dictionary"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def published_specs(defs: dg.Definitions) -> list[dg.AssetSpec]:
    """The published tables' asset specs, ordered by asset key."""
    specs = [s for s in defs.resolve_all_asset_specs() if is_published(s.key)]
    return sorted(specs, key=lambda s: s.key.to_user_string())


def _table_section(spec: dg.AssetSpec) -> list[str]:
    schema = spec.metadata.get(COLUMN_SCHEMA)
    columns = schema.columns if isinstance(schema, dg.TableSchema) else []
    lines = [
        f"### `{spec.key.to_user_string()}`",
        "",
        _cell(spec.description) or "_No description._",
        "",
        f"- zone: {spec.tags.get('zone', '')}",
        f"- owners: {', '.join(spec.owners)}",
        f"- group: {spec.group_name}",
        "",
        "| column | type | description |",
        "|---|---|---|",
    ]
    lines += [f"| `{c.name}` | {_cell(c.type)} | {_cell(c.description)} |" for c in columns]
    return [*lines, ""]


def render_data_dictionary(defs: dg.Definitions) -> str:
    """Markdown describing every published table and its columns, in key order."""
    specs = published_specs(defs)
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated from the Dagster catalogue; do not edit. "
        f"Regenerate with `{REGENERATE}`. -->",
        "",
        "Every published table (zones `gold/features` and `reporting`), with the column "
        "descriptions the Dagster UI shows. Feature column descriptions start with the "
        "column's role: `[key]`, `[feature]`, `[label]` or `[metadata]`.",
        "",
        "| table | zone | columns |",
        "|---|---|---|",
    ]
    for spec in specs:
        schema = spec.metadata.get(COLUMN_SCHEMA)
        count = len(schema.columns) if isinstance(schema, dg.TableSchema) else 0
        lines.append(f"| `{spec.key.to_user_string()}` | {spec.tags.get('zone', '')} | {count} |")
    lines.append("")
    for spec in specs:
        lines += _table_section(spec)
    return "\n".join(lines).rstrip("\n") + "\n"
