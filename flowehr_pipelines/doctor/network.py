"""Spark (local JVM, standalone master or Spark Connect), Databricks and the alert webhook.

Nothing is started here: a local master needs only Java, a remote one a TCP (or, for
Spark Connect, gRPC) answer. ``--spark`` asks ``spark_session.py`` to start the real
session instead.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

from flowehr_pipelines.config import Settings
from flowehr_pipelines.config_loading import environment
from flowehr_pipelines.doctor.findings import Finding, fail, first_line, ok

SPARK_CONNECT_PORT = 15002
SPARK_STANDALONE_PORT = 7077


def spark_remote(settings: Settings) -> str | None:
    """The Spark Connect URL the runs would use (``spark.remote``)."""
    return settings.spark.remote


def tcp_reachable(host: str, port: int, *, timeout: float) -> str | None:
    """None when something accepts a TCP connection there, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or first_line(exc)


def check_spark(settings: Settings, *, timeout: float) -> Finding:
    check = "spark"
    remote = spark_remote(settings)
    if remote:
        return _check_connect(remote, timeout=timeout)
    master = settings.spark.master
    if master.startswith("spark://"):
        parts = urlsplit(master)
        host, port = parts.hostname or "", parts.port or SPARK_STANDALONE_PORT
        reason = tcp_reachable(host, port, timeout=timeout)
        if reason:
            return fail(check, f"master {host}:{port} unreachable: {reason}")
        return ok(check, f"master {host}:{port} accepts connections")
    java = _java()
    if java is None:
        return fail(check, f"master {master} needs Java 17+, and no java was found")
    return ok(check, f"master {master}: java at {java} (not started; --spark starts a session)")


def _java() -> str | None:
    home = environment().get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _check_connect(remote: str, *, timeout: float) -> Finding:
    """A gRPC channel that becomes ready: the Spark Connect server speaks HTTP/2."""
    import grpc

    check = "spark"
    parts = urlsplit(remote.split(";", 1)[0])
    host, port = parts.hostname or "", parts.port or SPARK_CONNECT_PORT
    use_ssl = "use_ssl=true" in remote.lower()
    target = f"{host}:{port}"
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if use_ssl
        else grpc.insecure_channel(target)
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        return fail(check, f"Spark Connect {target}: no gRPC answer within {timeout:g}s")
    finally:
        channel.close()
    return ok(check, f"Spark Connect {target}: gRPC channel ready")


def check_databricks(settings: Settings, *, timeout: float) -> Finding | None:
    """The workspace answers on HTTPS (only when feature transforms run there)."""
    if settings.compute != "databricks":
        return None
    check = "databricks"
    host = settings.databricks.host
    if not host:
        return fail(check, "databricks.host is required when compute is 'databricks'")
    if not (settings.databricks.existing_cluster_id or settings.databricks.new_cluster):
        return fail(check, "set databricks.existing_cluster_id or databricks.new_cluster")
    parts = urlsplit(host if "://" in host else f"https://{host}")
    reason = tcp_reachable(parts.hostname or "", parts.port or 443, timeout=timeout)
    if reason:
        return fail(check, f"workspace {parts.hostname} unreachable: {reason}")
    return ok(check, f"workspace {parts.hostname} reachable")


def check_webhook(settings: Settings, *, timeout: float) -> Finding:
    """The webhook's host accepts connections; nothing is posted, and the URL (a secret,
    as it often carries a token) is never shown: only its host and port."""
    check = "webhook"
    alerts = settings.alerts
    url = alerts.webhook_url or settings.secret(alerts.webhook_url_env)
    if not url:
        if alerts.webhook_url_env:
            return Finding(check, "skip", f"{alerts.webhook_url_env} is not set (see above)")
        return ok(check, "none configured: alerts are logged only")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return fail(check, "the webhook URL is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reason = tcp_reachable(parts.hostname, port, timeout=timeout)
    if reason:
        return fail(check, f"host {parts.hostname}:{port} unreachable: {reason}")
    return ok(check, f"host {parts.hostname}:{port} reachable (nothing posted)")


def check_spark_session(settings: Settings) -> Finding:
    """Start the session the runs would use and run one tiny job (``--spark`` only)."""
    from resources.spark import build_connect_session, build_local_spark_session

    check = "spark session"
    remote = spark_remote(settings)
    if remote:
        token_env = settings.spark.remote_token_env
        session = build_connect_session(
            remote,
            settings.spark.conf,
            token=environment().get(token_env) if token_env else None,
            timeout=settings.spark.connect_timeout_seconds,
        )
    else:
        conf = settings.spark.conf
        session = build_local_spark_session(settings.spark.master, "flowehr-doctor", conf)
    try:
        rows = session.range(3).count()
    finally:
        session.stop()
    return ok(check, f"started and ran a job ({rows} rows), then stopped")
