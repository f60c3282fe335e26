"""Render ``docs/bench/*.json`` as ``docs/BENCHMARKS.md``.

python -m bench.report

The generated part ends at ``MARKER``; everything after it in the existing file
(hand-written sections such as "Optimisations") is kept as it is. If the marker is
missing, a hand-written "## Optimisations" section is kept from its heading on.
``docs/bench/NOTES.md`` (before/after records, caveats) is included verbatim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench"
NOTES = RESULTS / "NOTES.md"
OUTPUT = ROOT / "docs" / "BENCHMARKS.md"
SCALE_ORDER = ("XS", "S", "M", "L")
MARKER = "<!-- end of generated section: hand-written sections below are kept -->"
HAND_WRITTEN_HEADINGS = ("## Optimisations",)

# The targets the benchmarks are held to.
REPORTING_RATIO_MAX = 1.0
CHANGELOG_RATIO_MAX = 0.05
WINDOW_RATIO_MAX = 1.5
PEAK_MEMORY_MAX_GIB = 8.0
E2E_AT_S_MAX_SECONDS = 60.0
TRAINING_SET_MAX_SECONDS = 5.0


def _seconds(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "-"
    return f"{summary['median_seconds']:.2f} s (n={summary['runs']})"


def _memory(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("median_peak_rss_mb") is None:
        return "-"
    return f"{summary['median_peak_rss_mb'] / 1024:.2f} GiB"


def _verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= limit else "missed"


def _target_row(target: str, shown: str, value: float | None, limit: float) -> str:
    """One row of the targets table: what is held to a limit, what was measured, verdict."""
    return f"| {target} | {shown if value is not None else '-'} | {_verdict(value, limit)} |"


def _targets(results: list[dict[str, Any]], windows: dict[str, Any] | None) -> list[str]:
    by_scale = {r["scale"]: r for r in results}
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    e2e_s = by_scale.get("S", {}).get("e2e")
    seconds = e2e_s["median_seconds"] if e2e_s else None
    lines.append(
        _target_row(
            f"e2e `flowehr run` at S <= {E2E_AT_S_MAX_SECONDS:.0f} s",
            f"{seconds:.1f} s" if seconds is not None else "",
            seconds,
            E2E_AT_S_MAX_SECONDS,
        )
    )
    for scale in ("S", "M"):
        reporting = by_scale.get(scale, {}).get("reporting")
        ratio = reporting["ratio"] if reporting else None
        lines.append(
            _target_row(
                f"reporting cycle at {scale}: product / DuckDB peer <= {REPORTING_RATIO_MAX}",
                str(ratio),
                ratio,
                REPORTING_RATIO_MAX,
            )
        )
    for scale in ("S", "M"):
        changelog = by_scale.get(scale, {}).get("changelog")
        ratio = changelog["ratio"] if changelog else None
        lines.append(
            _target_row(
                f"1% changelog load at {scale} <= {CHANGELOG_RATIO_MAX:.0%} of the bulk load",
                str(ratio),
                ratio,
                CHANGELOG_RATIO_MAX,
            )
        )
    window_ratio = windows.get("ratio_longest_to_shortest") if windows else None
    lines.append(
        _target_row(
            f"incremental cycle with 365 days of history <= {WINDOW_RATIO_MAX}x the 7-day one",
            str(window_ratio),
            window_ratio,
            WINDOW_RATIO_MAX,
        )
    )
    training = by_scale.get("S", {}).get("training_set")
    build = training["known_at_join_median"] if training else None
    lines.append(
        _target_row(
            f"training set of 10,000 spine rows at S <= {TRAINING_SET_MAX_SECONDS:.0f} s",
            f"{build:.2f} s" if build is not None else "",
            build,
            TRAINING_SET_MAX_SECONDS,
        )
    )
    e2e = by_scale.get("M", {}).get("e2e")
    peak = e2e["median_peak_rss_mb"] / 1024 if e2e and e2e.get("median_peak_rss_mb") else None
    lines.append(
        _target_row(
            f"peak memory of `flowehr run` at M <= {PEAK_MEMORY_MAX_GIB:.0f} GiB",
            f"{peak:.2f} GiB" if peak is not None else "",
            peak,
            PEAK_MEMORY_MAX_GIB,
        )
    )
    return lines


def _gib(mb: float) -> str:
    return f"{mb / 1024:.2f}"


# Steps shown in the memory table: the ones with the highest peaks (the rest are checks
# and small steps that run at whatever the steps before them left resident).
MEMORY_STEPS_SHOWN = 15


def _memory_section(scale: str, memory: dict[str, Any]) -> list[str]:
    """Per-step peak memory of the e2e run (absent from results older than the field)."""
    steps = memory.get("step_peaks") or {}
    if not steps:
        return []
    peak = memory.get("peak") or {}
    lines = [
        "",
        f"## Peak memory by step at {scale}",
        "",
        "Summed RSS of the run's process tree, sampled every 100 ms and attributed to the "
        "steps running at the time (from the runs' event logs). Python is the `flowehr run` "
        "process (delta-rs, DuckDB, pyarrow, Spark's driver side), JVM the Spark driver, "
        "other the rest of the tree: a run part's own process when independent parts run "
        "side by side, Spark's Python workers. A step's peak includes whatever ran "
        "alongside it, and memory a step leaves resident shows in the steps after it: "
        "*at start* is the tree's RSS when the step began.",
    ]
    if peak:
        lines += [
            "",
            f"Run peak: Python {_gib(peak['python_mb'])} GiB + JVM {_gib(peak['jvm_mb'])} GiB"
            f" + other {_gib(peak.get('other_mb', 0.0))} GiB.",
        ]
    lines += [
        "",
        "| step | peak GiB | Python GiB | JVM GiB | other GiB | at start GiB | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(steps.items(), key=lambda kv: -kv[1]["peak_mb"])
    for step, row in ranked[:MEMORY_STEPS_SHOWN]:
        lines.append(
            f"| `{step}` | {_gib(row['peak_mb'])} | {_gib(row['python_mb'])} "
            f"| {_gib(row['jvm_mb'])} | {_gib(row.get('other_mb', 0.0))} "
            f"| {_gib(row['start_mb'])} | {row['seconds']:.1f} |"
        )
    outside = memory.get("outside_steps")
    if outside:
        lines.append(
            f"| (outside any step) | {_gib(outside['peak_mb'])} | {_gib(outside['python_mb'])} "
            f"| {_gib(outside['jvm_mb'])} | - | - | - |"
        )
    if len(ranked) > MEMORY_STEPS_SHOWN:
        lines += ["", f"{len(ranked) - MEMORY_STEPS_SHOWN} smaller steps are in the JSON."]
    return lines


def _ingestion_section(scale: str, ingestion: dict[str, Any] | None) -> list[str]:
    """CDC ingestion against its DuckDB peer (``bench/ingestion.py``)."""
    if not ingestion:
        return []
    rows = ingestion["rows"]["product"]
    agree = ingestion.get("valid_agree") and ingestion.get("quarantine_agree")
    return [
        "",
        f"## CDC ingestion at {scale}: product vs DuckDB peer",
        "",
        f"All {ingestion['files']} landing files into a fresh lake: {rows['valid']:,} valid "
        f"lines to bronze and {rows['quarantined']:,} to quarantine"
        + (" (both sides agree, reasons included)." if agree else " (the sides DISAGREE)."),
        "",
        f"Product (parse, quarantine, two Delta commits): {_seconds(ingestion['product'])}; "
        f"DuckDB peer (SQL over the lines into a DuckDB file): "
        f"{_seconds(ingestion['duckdb_peer'])}; ratio {ingestion['ratio']} (target at most 1.0).",
    ]


def _scale_sections(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    scale = result["scale"]
    e2e = result.get("e2e")
    if e2e and e2e.get("step_seconds_median"):
        lines += ["", f"## Per-step medians at {scale}", "", "| step | seconds |", "|---|---|"]
        for step, seconds in sorted(e2e["step_seconds_median"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| `{step}` | {seconds:.2f} |")
    if e2e and e2e.get("memory"):
        lines += _memory_section(scale, e2e["memory"])
    reporting = result.get("reporting")
    if reporting:
        counts = ", ".join(
            f"{table} {sides['product']:,}"
            for table, sides in reporting["rows_after_cycle"].items()
        )
        agree = reporting.get("rows_agree")
        cycle = reporting.get(
            "cycle", "cycle re-reading unchanged data (measured before new files were landed)"
        )
        lines += [
            "",
            f"## Reporting cycle at {scale}: product vs DuckDB peer",
            "",
            "One cycle (3 projections + the summaries, default windows) after the same "
            f"initial load: {cycle}. Row counts after the cycle: {counts}"
            + (" (both sides agree)." if agree is not False else " (the sides DISAGREE)."),
            "",
            f"Product (delta-rs MERGE): {_seconds(reporting['product'])}; "
            f"DuckDB peer (MERGE INTO a DuckDB file): {_seconds(reporting['duckdb_peer'])}; "
            f"ratio {reporting['ratio']} (target at most {REPORTING_RATIO_MAX}).",
        ]
        if "views_ratio" in reporting:
            lines += [
                "",
                "Then pass 3, NHS Notify's 23 views and the query table, each recomputed in "
                "full: product (DuckDB over Delta, one overwrite commit each): "
                f"{_seconds(reporting['product_views'])}; DuckDB peer (CREATE OR REPLACE "
                f"TABLE): {_seconds(reporting['duckdb_peer_views'])}; ratio "
                f"{reporting['views_ratio']} (no target).",
            ]
    lines += _ingestion_section(scale, result.get("ingestion"))
    features = result.get("features")
    if features:
        lines += [
            "",
            f"## Feature builds at {scale} (local Spark)",
            "",
            f"Fixed costs: SparkSession start {features['spark_session_start_seconds']:.1f} s, "
            f"first trivial job {features['first_job_seconds']:.1f} s. Then each table's full "
            "build (read silver, transform, collect as Arrow), median of the repeats:",
            "",
            "| feature table | seconds | input rows | output rows | input rows/s | output rows/s |",
            "|---|---|---|---|---|---|",
        ]
        for name, table in features["tables"].items():
            lines.append(
                f"| `{name}` | {table['median_seconds']:.2f} (n={table['runs']}) "
                f"| {table['input_rows']:,} | {table['output_rows']:,} "
                f"| {table['input_rows_per_second'] or 0:,} "
                f"| {table['output_rows_per_second'] or 0:,} |"
            )
    training = result.get("training_set")
    if training:
        lines += [
            "",
            f"## Training sets at {scale} (researcher API: delta-rs to Arrow, DuckDB join)",
            "",
            f"{training['spine_rows']:,} spine rows (seeded visits and times within each stay), "
            f"features `{', '.join(training['features'])}` ({training['output_columns']} "
            "output columns), medians of the repeats:",
            "",
            f"- known-at join (the default): {training['known_at_join_median']:.2f} s "
            f"(samples {training['known_at_join_seconds']})",
            f"- event-time join: {training['event_time_join_median']:.2f} s "
            f"(samples {training['event_time_join_seconds']})",
            f"- cohort `sepsis_adults`: {training['cohort_median']:.2f} s, "
            f"{training['cohort_visits']:,} visits",
            "- feature rows: "
            + ", ".join(f"{k} {v:,}" for k, v in training["feature_rows"].items()),
        ]
    floor = result.get("floor")
    if floor:
        lines += [
            "",
            f"## Floor at {scale}: plain pyarrow Parquet of bronze CDC",
            "",
            f"{floor['rows']:,} rows, {floor['parquet_bytes'] / 2**20:.1f} MiB Parquet: "
            f"write {_seconds(floor['write'])}, read {_seconds(floor['read'])}.",
        ]
    return lines


def _window_section(windows: dict[str, Any]) -> list[str]:
    spec = windows["spec"]
    lines = [
        "",
        "## Window scaling: one incremental cycle against the length of history",
        "",
        f"Same daily volume for every history ({spec['events_per_day']:,} CDC events a day, "
        f"{spec['patients']:,} patients); only the number of days differs. One cycle with the "
        "default windows after the migration load and one newly landed file.",
        "",
        "| days of history | incremental cycle |",
        "|---|---|",
    ]
    for days, summary in windows["histories"].items():
        lines.append(f"| {days} | {_seconds(summary)} |")
    lines += [
        "",
        f"365-day / 7-day: {windows['ratio_longest_to_shortest']} "
        f"(target at most {WINDOW_RATIO_MAX}).",
    ]
    return lines


def render(
    results: list[dict[str, Any]], windows: dict[str, Any] | None = None, notes: str = ""
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run` then `python -m bench.report`) from",
        "the JSON in `docs/bench/`. Medians of repeated runs (n = runs); every sample is in",
        "the JSON. Benchmarks are measurements, not tests: nothing here fails a build.",
        "",
    ]
    if not results and not windows:
        lines.append("No results yet: run `make bench`.")
        return "\n".join(lines) + "\n"
    env = (results[-1] if results else windows or {})["environment"]
    lines += [
        f"Machine: {env['machine']}; Python {env['python']}; measured {env['date']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
        "## Targets",
        "",
        *_targets(results, windows),
        "",
        "## Overview",
        "",
        "| scale | patients | CDC events | e2e `flowehr run` | peak memory "
        "| bulk load | 1% changelog | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        changelog = result.get("changelog", {})
        lines.append(
            f"| {result['scale']} | {result['patients']:,} | {result['events']:,} "
            f"| {_seconds(result.get('e2e'))} | {_memory(result.get('e2e'))} "
            f"| {_seconds(changelog.get('bulk'))} | {_seconds(changelog.get('changelog_1pct'))} "
            f"| {changelog.get('ratio', '-')} |"
        )
    if any(r["scale"] == "L" for r in results) is False:
        lines += [
            "",
            "L (1M patients, 100M CDC events) is not run: S's generated data takes 780 MB for "
            "1M events, so L's 100M would need about 100 x 780 MB = 78 GB before any lake "
            "copy, against about 46 GB free on the benchmark machine.",
        ]
    if windows:
        lines += _window_section(windows)
    for result in results:
        lines += _scale_sections(result)
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def hand_written_tail(existing: str) -> str:
    """What follows the generated part of the current file, kept verbatim."""
    if MARKER in existing:
        return existing.split(MARKER, 1)[1].lstrip("\n")
    for heading in HAND_WRITTEN_HEADINGS:
        at = existing.find(f"\n{heading}")
        if at >= 0:
            return existing[at + 1 :]
    return ""


def main() -> None:
    files = sorted(
        (p for p in RESULTS.glob("*.json") if p.stem in SCALE_ORDER),
        key=lambda p: SCALE_ORDER.index(p.stem),
    )
    results = [json.loads(p.read_text()) for p in files]
    windows_path = RESULTS / "windows.json"
    windows = json.loads(windows_path.read_text()) if windows_path.exists() else None
    notes = NOTES.read_text() if NOTES.exists() else ""
    tail = hand_written_tail(OUTPUT.read_text()) if OUTPUT.exists() else ""
    text = render(results, windows, notes) + "\n" + MARKER + "\n"
    if tail:
        text += "\n" + tail
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
