"""Whether a process still exists on this host: for locks and temp files left by a killed writer."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host and is not a zombie.

    A zombie has exited (only its exit status waits for its parent), so it holds
    nothing. Signal 0 checks existence without touching the process; a permission
    error means it exists under another user.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): existence is all we can tell
    # The state letter follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
