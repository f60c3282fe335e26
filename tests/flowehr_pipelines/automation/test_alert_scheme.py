"""The alert webhook opens HTTP(S) URLs only: urllib would also read file:// paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowehr_pipelines.automation.alerts import AlertDeliveryError, AlertWebhook


@pytest.mark.parametrize("scheme", ["file", "ftp"])
def test_a_webhook_url_that_is_not_http_is_refused(tmp_path: Path, scheme: str) -> None:
    target = tmp_path / "secret.txt"
    target.write_text("not for posting")
    with pytest.raises(AlertDeliveryError, match="not an http"):
        AlertWebhook(url=f"{scheme}://{target}").send("x")
