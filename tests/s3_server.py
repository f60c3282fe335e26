"""A moto S3 server on 127.0.0.1 for tests that speak the real S3 protocol.

The server runs in a child process, not a thread of the test process: delta-rs keeps
the GIL while it waits on the network (``DeltaTable.is_deltatable``), so a server
thread inside the test process could never answer it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_MOTO_SERVER = """
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@contextmanager
def moto_server() -> Iterator[str]:
    """Start a moto server; yield its endpoint URL; stop it when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the server stops when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
