"""Storage errors in words an operator can act on.

With no S3 credentials anywhere, delta-rs ends its credential search at the instance
metadata service and reports "Operation not supported" or a "Generic S3 error" about
``169.254.169.254`` (the cause on later lines), and botocore says "Unable to locate
credentials": none says what to set.
"""

from __future__ import annotations

NO_S3_CREDENTIALS = (
    "no S3 credentials found: set lake.s3.access_key_id_env and "
    "lake.s3.secret_access_key_env, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "an AWS profile or an instance role"
)

_NO_CREDENTIAL_MARKERS = (
    "169.254.169.254",  # the metadata service: the last place credentials are looked for
    "IMDS session token",
    "error occurred while loading credentials",
    "Unable to locate credentials",
    "NoCredentialsError",
)


def explain_storage_error(message: str) -> str:
    """The first line of a storage error, or what to do when it means "no credentials"."""
    if any(marker in message for marker in _NO_CREDENTIAL_MARKERS):
        return NO_S3_CREDENTIALS
    stripped = message.strip()
    return stripped.splitlines()[0] if stripped else message
