"""Settings for every idrflow process: pydantic-settings, prefix ``IDRFLOW_``.

``DATABASE_URL``, ``TEMPORAL_ADDRESS`` and ``KAFKA_BOOTSTRAP_SERVERS`` are also read without the
prefix, so that any piece of the local stack can be switched to an external server.
"""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDRFLOW_", env_file=".env", extra="ignore")

    # dependencies
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:55432/idrflow",
        validation_alias=AliasChoices("DATABASE_URL", "IDRFLOW_DATABASE_URL"),
    )
    # connections each process keeps open to PostgreSQL, and how many more it may open for a burst
    # (those are closed again when returned, and a new one costs a connect and the driver's type
    # lookups): size the pool to the requests a process serves at once
    db_pool_size: int = Field(default=20, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    temporal_address: str = Field(
        default="127.0.0.1:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "IDRFLOW_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = "default"
    # how long Temporal keeps a closed workflow's history (``idrflow temporal-setup`` and the local
    # stack set it on the namespace); the dispute schema keeps the record beyond that.
    temporal_retention_days: int = Field(default=30, ge=1)
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "IDRFLOW_KAFKA_BOOTSTRAP_SERVERS"),
    )
    # The local tansu broker refuses idempotent producers; switch this on for real Kafka.
    kafka_enable_idempotence: bool = False
    kafka_topic_partitions: int = 3
    # a consumer that stops without leaving its group (killed, or a broker that ignores LeaveGroup)
    # holds its partitions this long: its replacement waits for it after a restart
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100, le=100_000)

    # task queues
    dispute_task_queue: str = "dispute"
    negotiation_task_queue: str = "negotiation"

    # topics
    topic_claims: str = "idr.claims.v1"
    topic_lifecycle: str = "idr.lifecycle.v1"
    topic_alerts: str = "idr.alerts.v1"
    topic_notices: str = "idr.notices.v1"

    # HTTP ports
    host: str = "127.0.0.1"
    intake_port: int = 8001
    # uvicorn worker processes of `idrflow serve intake` (the local stack uses 2 with 4+ cores)
    intake_workers: int = Field(default=1, ge=1, le=64)
    negotiation_port: int = 8002
    dispute_port: int = 8003
    notifier_port: int = 8004
    temporal_ui_port: int = 8233
    max_body_bytes: int = Field(default=1_048_576, ge=1024)  # larger bodies: 413 before parsing
    # a known API key's tenant is remembered this long (0: every request reads it); a rotated or
    # removed key stops working within it
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # integration files (POST /v1/remittances, /v1/claims/x12, /v1/fhir/..., /v1/claims:batch)
    max_file_bytes: int = Field(default=52_428_800, ge=1024)
    log_format: Literal["json", "text"] = "json"  # JSON lines with correlation id, tenant and claim
    temporal_request_timeout_seconds: float = Field(default=20.0, gt=0)  # then 503 worker-unavailable

    # payload privacy (shared/codec.py): "id:base64key,..." (AES-GCM, 32-byte keys advised); the
    # active key encrypts, every listed key decrypts (rotation). Without keys payloads reach
    # Temporal in clear, which is refused for a Temporal server that is not on this machine unless
    # payload_encryption is "off".
    payload_keys: SecretStr = SecretStr("")
    payload_key_id: str | None = None
    payload_encryption: Literal["on", "off"] = "on"
    # `idrflow codec-server`: the Temporal UI / CLI remote codec endpoint for operators who hold the
    # keys; a bearer token when set; the browser origins allowed to call it (the UI's)
    codec_port: int = 8005
    codec_token: SecretStr | None = None
    codec_cors_origins: list[str] = ["http://127.0.0.1:8233", "http://localhost:8233"]

    # clocks (idr-rules Part A item 3): reminders fire at reminder_time on the business day that is
    # N business days before the deadline; a deadline ends at deadline_cutoff on its date.
    reminder_business_days_before: list[int] = [5, 2, 1, 0]
    reminder_time: time = time(9, 0)
    deadline_cutoff: time = time(23, 59, 59)
    # a forfeited claim stays revivable this long (an extension granted late, a timely action
    # recorded late); then its workflow completes and the forfeiture is final
    forfeiture_grace_days: int = Field(default=120, ge=0, le=3650)
    business_timezone: str = "America/New_York"
    # each claim's reminders wake a stable, per-claim amount (0 to this many minutes) before
    # reminder_time, never after it, so a day's reminders do not all wake at the same second
    reminder_spread_minutes: float = Field(default=30.0, ge=0, le=720)
    # workflows the dispute worker keeps in memory (Worker max_cached_workflows); more replay less
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    # consumers and relay
    consumer_max_attempts: int = Field(
        default=5, ge=1
    )  # errors neither transient nor permanent, then the DLQ
    # transient failures (database, Temporal, network) are retried for as long as it takes, with
    # a delay doubling from base to cap; the offset does not move meanwhile
    consumer_retry_base_seconds: float = Field(default=0.5, gt=0)
    consumer_retry_cap_seconds: float = Field(default=30.0, gt=0)
    # each partition's messages in their own task (in order within a partition, so per claim);
    # off: one message at a time across all partitions
    consumer_partition_concurrency: bool = True
    relay_poll_seconds: float = 0.2
    relay_batch_size: int = 200
    # a row that fails to publish waits base * 2**(attempts-1) (at most cap), then is parked after
    # relay_max_attempts; rows with the same key wait behind a failing one (per-key order)
    relay_retry_base_seconds: float = Field(default=1.0, gt=0)
    relay_retry_cap_seconds: float = Field(default=300.0, gt=0)
    relay_max_attempts: int = Field(default=12, ge=1)
    relay_send_timeout_seconds: float = Field(default=5.0, gt=0)
    # published outbox rows and processed inbox rows are deleted after this many days
    outbox_retention_days: float = Field(default=7.0, gt=0)
    relay_prune_interval_seconds: float = Field(default=600.0, gt=0)
    kafka_replication_factor: int = Field(default=1, ge=1)  # 3 on a real cluster
    kafka_min_insync_replicas: int = Field(default=1, ge=1)  # 2 on a real cluster

    # observability (README "Observability"): where spans go (jsonl: OTLP-JSON lines in traces_file,
    # which the local stack and compose use; otlp needs opentelemetry-exporter-otlp-proto-http)
    traces_exporter: Literal["none", "console", "jsonl", "otlp"] = "none"
    traces_file: Path = Path(".devstack/traces.jsonl")
    # /healthz reports a consumer loop down when it has not polled the broker for this long
    consumer_stall_seconds: float = Field(default=60.0, gt=0)
    # the relay process's /healthz and /metrics (0: not served; the local stack and compose use 8006)
    relay_port: int = Field(default=0, ge=0)

    # notifications
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_start_tls: bool = False
    email_from: str = "idrflow <alerts@idrflow.local>"
    dashboard_base_url: str = "http://127.0.0.1:8003"
    # notifier delivery (issue 10 item 3): each channel call is bounded; the consumer only records
    # the deliveries and the notifier's sender sends them, retrying a failure from its row
    # (base * 2**(attempts-1), at most cap, with jitter) until notifier_max_attempts, then `failed`
    slack_timeout_seconds: float = Field(default=5.0, gt=0)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    notifier_max_attempts: int = Field(default=8, ge=1)
    notifier_retry_base_seconds: float = Field(default=5.0, gt=0)
    notifier_retry_cap_seconds: float = Field(default=900.0, gt=0)
    notifier_poll_seconds: float = Field(default=0.2, gt=0)
    notifier_send_concurrency: int = Field(default=16, ge=1)
    # sends in flight to one Slack webhook or one mailbox (a 429 still pauses the whole target)
    notifier_per_target_concurrency: int = Field(default=4, ge=1, le=64)
    # an alert a channel still rate limits this long after it was raised fails (reported) instead of
    # waiting on forever: its deadline may be past, a person has to look
    notifier_rate_limited_give_up_hours: float = Field(default=24.0, gt=0)
    # an open negotiation notice is retried (backoff capped at notifier_retry_cap_seconds) this long
    # after it was issued, whatever notifier_max_attempts says; then failed, with a failed proof
    notifier_notice_give_up_hours: float = Field(default=24.0, gt=0)

    # local stack
    devstack_dir: Path = Path(".devstack")
    slack_sink_port: int = 8025

    @field_validator("reminder_business_days_before")
    @classmethod
    def _reminders_sorted(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("reminder offsets are business days before the deadline and cannot be negative")
        return sorted(set(value), reverse=True)

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"business_timezone: {value!r} is not a time zone (e.g. America/New_York)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        """Refused at start rather than discovered later: credentials sent in clear, placeholder
        secrets on a server that is not this machine."""
        local = self.smtp_host in ("127.0.0.1", "localhost", "::1")
        if (self.smtp_username or self.smtp_password) and not self.smtp_start_tls and not local:
            raise ValueError("smtp_start_tls: SMTP credentials are set for a remote server without STARTTLS")
        for name in ("smtp_password",):
            value = getattr(self, name)
            if (
                value
                and not local
                and value.lower() in {"changeme", "change-me", "password", "secret", "xxx"}
            ):
                raise ValueError(f"{name}: a placeholder value; set the real secret")
        from shared.codec import build_codec

        build_codec(self.payload_keys.get_secret_value(), self.payload_key_id)  # malformed: refused
        return self

    @property
    def temporal_is_local(self) -> bool:
        return self.temporal_address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")

    @property
    def sync_database_url(self) -> str:
        return self.database_url.replace("+asyncpg", "")


@lru_cache
def get_settings() -> Settings:
    return Settings()
