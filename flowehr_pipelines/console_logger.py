"""The console logger of every job: one line per event, the cause instead of a stack trace.

Dagster's default console logger prints a failed step as its wrapper error, the error
it wraps and both stack traces: 60 lines on the terminal of a ``flowehr run`` for a
single cause. This one prints the event's first line and the innermost error's line
(``BrokenTableError: internal/etl_state: …``). The full trace is not lost: it is in the
run's event log (the Dagster UI, ``dagster debug export``), which loggers do not feed.

Dagster builds a job's loggers only when the run's config names one; ``flowehr run``
configures ``console``, so its terminal gets this logger, while runs launched from the
UI without logger config keep Dagster's default console output in their compute logs.
"""

from __future__ import annotations

import logging
import re
import sys

import dagster as dg

FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
_ERROR_LINE = re.compile(
    r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Failure|Interrupt)): (?P<text>.+)$"
)
_WRAPPERS = ("dagster._core.errors.", "dagster_")


def one_line(message: str) -> str:
    """A Dagster log message on one line: its first line, then the innermost error's.

    Errors are listed outermost first (each cause after "caused by"), so the last error
    line that is not Dagster's own wrapper is the innermost cause.
    """
    lines = message.strip().splitlines()
    if len(lines) <= 1:
        return message.strip()
    causes = [m for line in lines[1:] if (m := _ERROR_LINE.match(line))]
    own = [m for m in causes if not m.group("name").startswith(_WRAPPERS)] or causes
    if not own:
        return lines[0]
    name = own[-1].group("name").rpartition(".")[2]
    return f"{lines[0]} {name}: {own[-1].group('text')}"


class OneLineFormatter(logging.Formatter):
    """Dagster's console format with multi-line messages folded by ``one_line``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Console logger: one line per event, the innermost cause for failures.",
)
def one_line_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    level = logging.getLevelName(str(config["log_level"]).upper())
    console = logging.Logger(config["name"], level=level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT, DATE_FORMAT))
    console.addHandler(handler)
    return console
