"""The local stack runner and the CLI share deploy.bootstrap; the runner does not import the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def _imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_runner_does_not_import_the_cli() -> None:
    modules = _imported_by("deploy.devstack")
    assert "deploy.bootstrap" in modules
    assert "services.cli" not in modules


def test_the_cli_uses_the_shared_bootstrap() -> None:
    from deploy import bootstrap
    from services import cli

    assert cli.seed_tenant is bootstrap.seed_tenant
    assert cli.ensure_topics_with is bootstrap.ensure_topics_with
    assert cli.republish_all is bootstrap.republish_all


def test_every_service_outbox_is_republished() -> None:
    from deploy.bootstrap import outboxes

    assert [t.schema for t in outboxes()] == ["intake", "dispute", "negotiation", "notifier"]


def test_temporal_retention_is_at_least_one_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().temporal_retention_days == 30
    monkeypatch.setenv("IDRFLOW_TEMPORAL_RETENTION_DAYS", "45")
    assert Settings().temporal_retention_days == 45
    monkeypatch.setenv("IDRFLOW_TEMPORAL_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_settings_refuse_what_would_fail_later() -> None:
    """issue 10 item 5: a bad time zone, credentials in clear to a remote server and placeholder
    secrets are refused at start."""
    import pytest
    from pydantic import ValidationError

    from shared.settings import Settings

    with pytest.raises(ValidationError, match="not a time zone"):
        Settings(business_timezone="America/Nowhere")
    with pytest.raises(ValidationError, match="without STARTTLS"):
        Settings(smtp_host="smtp.example.com", smtp_username="u", smtp_password="p")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(
            smtp_host="smtp.example.com", smtp_username="u", smtp_password="changeme", smtp_start_tls=True
        )
    assert Settings(smtp_host="smtp.example.com", smtp_username="u", smtp_password="s3", smtp_start_tls=True)
    with pytest.raises(ValidationError):
        Settings(consumer_max_attempts=0)
