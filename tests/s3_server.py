"""A moto S3 server on 127.0.0.1 for tests that speak the real S3 protocol.

The server runs in a child process, not a thread of the test process: delta-rs keeps
the GIL while it waits on the network (``DeltaTable.is_deltatable``), so a server
thread inside the test process could never answer it.

``serial=True`` answers one request at a time. moto checks a conditional write
(``If-None-Match: *``) and then stores the object as two steps with no lock between
them, so nothing stops two request threads both passing the check (not seen in 30
rounds of 8 racing PUTs, but possible); AWS S3 makes check and write one atomic step.
Tests that race writers on put-if-absent use the serial server to model S3 faithfully.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_MOTO_SERVER = """
import logging
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
server = make_server(
    "127.0.0.1",
    0,
    DomainDispatcherApplication(create_backend_app),
    threaded=sys.argv[1] == "threaded",
    request_handler=MotoRequestHandler,
)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
"""


@contextmanager
def moto_server(*, serial: bool = False) -> Iterator[str]:
    """Start a moto server; yield its endpoint URL; stop it when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER, "serial" if serial else "threaded"],
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
