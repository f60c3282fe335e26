"""The ``flowehr`` command: demo data, runs, ETL state and table listings.

A thin entry point: it loads settings, builds resources and calls the same code the
Dagster assets call. Expected problems (bad config, unreachable source, missing
secret) print one line and exit 2; a failed run exits 1.

Subcommands are imported only when used (``LazyGroup``), so ``--help`` and the
commands that need no Dagster start without importing it.
"""

from __future__ import annotations

import click

from flowehr_pipelines.cli.lazy import LazyGroup

_CLI = "flowehr_pipelines.cli"
SUBCOMMANDS: dict[str, str] = {
    "demo-data": f"{_CLI}.demo_data:demo_data",
    "run": f"{_CLI}.materialise:run",
    "tables": f"{_CLI}.published:tables",
    "privacy-scan": f"{_CLI}.published:privacy_scan",
    "etl": f"{_CLI}.etl:etl",
    "features": f"{_CLI}.features:features",
    "governance": f"{_CLI}.governance:governance",
    "docs": f"{_CLI}.docs:docs",
    "doctor": f"{_CLI}.doctor:doctor",
    "metrics": f"{_CLI}.metrics:metrics",
    "spark-server": f"{_CLI}.spark_server:spark_server",
}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def main() -> None:
    """FlowEHR Pipelines: EHR sources to research features, CDC logs to NHS reports."""


if __name__ == "__main__":
    main()
