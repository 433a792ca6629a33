"""Every knob is a `SALON_*` environment variable (or a `.env` line)."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError

_PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "xxx", ""}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALON_", env_file=".env", extra="ignore")

    # Where state lives. A relative SQLite path is resolved against `data_dir`.
    data_dir: Path = Field(Path("var"), description="Folder for the SQLite file, index snapshots, logs.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means sqlite:///<data_dir>/salon.db.")

    # Empty bootstrap means: `salon up` starts the embedded Tansu broker on loopback.
    kafka_bootstrap: str = Field("", description="host:port[,host:port]; empty starts the embedded broker.")
    kafka_embedded_port: int = Field(19092, description="Port for the embedded Tansu broker.")
    kafka_topic_partitions: int = Field(
        4,
        ge=1,
        description="Partitions for topics salon creates. 4 is the embedded broker's own default: "
        "after a restart it re-creates a topic as soon as any client asks about it, and consumer "
        "groups would not read partitions beyond the count they were assigned.",
    )
    kafka_repair_topics_after: int = Field(
        0,
        ge=0,
        description="Delete and re-create a topic after this many publishes in a row failed with the "
        "broker's UNKNOWN error (0: never). `salon up` sets 3 for the embedded broker, whose memory "
        "storage can break that way after a restart; leave 0 for Apache Kafka.",
    )
    kafka_session_timeout_ms: int = Field(6000, description="Consumer-group session timeout.")
    kafka_heartbeat_interval_ms: int = Field(1000, description="Consumer-group heartbeat interval.")
    kafka_max_poll_interval_ms: int = Field(30000, description="Max time between polls before a consumer is evicted.")
    topic_prefix: str = Field("salon", description="Prefix of every topic name (salon.submissions, ...).")
    instance_id: str = Field(
        "",
        description="This replica's name in status rows and Kafka client ids (e.g. matcher-2); "
        "`{hostname}` is replaced by the host name; empty means the service name.",
    )

    model: str = Field("packaged:all-MiniLM-L6-v2", description="sentence-transformers model name or path.")
    embedding_dim: int = Field(384, ge=8, description="Dimension of the model's vectors (384 for MiniLM).")
    embed_max_tokens: int = Field(
        128,
        ge=16,
        description="Embedder: tokens of each text the model reads (it truncates the rest); the model's own "
        "limit applies if lower. 128 halves the encode time of MiniLM's 256 on long Chinese texts.",
    )
    embed_batch_size: int = Field(16, ge=1, description="Embedder: texts per model forward pass (encode batch size).")
    embed_poll_size: int = Field(
        256,
        ge=1,
        description="Embedder: at most this many submissions per poll, sorted by length before encoding ...",
    )
    embed_batch_wait_ms: int = Field(200, ge=0, description="... or whatever arrived within this many ms.")
    embed_cache_size: int = Field(
        20000,
        ge=0,
        description="Embedder: vectors kept (about 1.5 KiB each at 384 dims) so a re-delivered or re-driven "
        "submission of the same entity version and text is not encoded again; 0 turns the cache off.",
    )
    index_dir: Path | None = Field(None, description="FAISS snapshots; default <data_dir>/index.")
    index_snapshot_every: int = Field(200, ge=1, description="Matcher snapshots its indices after this many adds.")
    matcher_entity_cache: int = Field(
        50_000,
        ge=0,
        description="Counterparts a matcher keeps in memory between events (about 5 kB each; 0: none), "
        "filled at start-up by the rebuild. Each use checks version and update time against the database.",
    )
    index_exact_max: int = Field(
        20_000,
        ge=1,
        description="Up to this many vectors per kind the FAISS index searches exactly (flat); above, IVF-SQ8.",
    )
    index_ivf_nprobe: int = Field(32, ge=1, description="IVF lists scanned per query (more: higher recall, slower).")
    index_ivf_list_factor: float = Field(
        4.0, gt=0, description="IVF lists = factor × √vectors, chosen each time the index (re)trains."
    )

    match_top_k: int = Field(10, ge=1, le=100, description="Counterparts proposed per kind for each entity.")
    match_min_score: float = Field(0.12, ge=0, le=1, description="Proposals scoring below this are not published.")
    weight_dense: float = Field(0.10, ge=0, description="Weight of dense (embedding) similarity.")
    weight_lexical: float = Field(
        0.40, ge=0, description="Weight of lexical similarity: BM25 (works for Chinese) or shared glossary concepts."
    )
    weight_structured: float = Field(
        0.75, ge=0, description="Weight of structured fit (sectors, stage, ticket, region)."
    )
    weight_activity: float = Field(0.10, ge=0, description="Weight of the activity prior (recorded deals, recency).")

    dense_cjk_reliability: float = Field(
        0.25, ge=0, le=1, description="Trust in dense similarity for Chinese text (1.0 with a multilingual model)."
    )

    api_host: str = Field("127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(8000, description="Port of the API.")
    api_key_pepper: str = Field(
        "salon-dev-pepper-not-for-production",
        description="Server-side secret mixed into API-key hashes. Set a long random value in production.",
    )
    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses SQLite, the embedded broker and the dev pepper."
    )

    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Request bodies over this size get a 413.")
    import_max_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="POST /v1/imports only: files over this size get a 413."
    )
    import_batch_size: int = Field(
        500, ge=1, le=10000, description="Bulk import: rows (each with its event) per database transaction."
    )
    rate_limit_per_minute: int = Field(1200, ge=1, description="Sustained requests per minute per API key (429 above).")
    rate_limit_burst: int = Field(120, ge=1, description="Requests a key may send at once before the rate applies.")

    outbox_poll_ms: int = Field(200, ge=10, description="Outbox relay poll interval.")
    reconcile_after_s: int = Field(120, ge=5, description="Entities stuck this long in a state are re-driven.")
    outbox_retention_hours: int = Field(
        168,
        ge=2,
        description="Published outbox rows are deleted this long after they were published (re-drives look back 1 h).",
    )
    db_lock_timeout_ms: int = Field(
        5000,
        ge=100,
        description="API: a write waiting longer than this for a database lock gets a 503 with Retry-After.",
    )
    fault_inject: str = Field(
        "",
        description="Tests only: service.point[@N],… makes a process SIGKILL itself there once; production refuses it.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["json", "text"] = Field(
        "json", description="Service logs: one JSON object per line (`json`) or readable lines (`text`)."
    )
    metrics_port: int = Field(
        0,
        ge=-1,
        le=65535,
        description="Workers' Prometheus endpoint: a port, 0 = a free port (in the heartbeat), -1 = off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address the workers' metrics endpoint binds to.")

    webhook_allow_loopback: bool = Field(
        False, description="Development only: allow webhook URLs on loopback (and plain http there)."
    )
    webhook_timeout_s: float = Field(15.0, gt=0, le=60, description="A webhook attempt slower than this fails.")
    webhook_rotation_overlap_s: int = Field(
        86400, ge=0, description="After a secret rotation the old secret still signs this long."
    )
    webhook_disable_after_s: int = Field(
        5 * 86400, ge=60, description="An endpoint failing continuously this long is disabled."
    )
    webhook_poll_ms: int = Field(250, ge=10, description="Webhook delivery worker poll interval.")
    webhook_concurrency: int = Field(16, ge=1, le=256, description="Webhook attempts in flight per notifier.")

    session_invite_cap: int = Field(
        3, ge=1, le=50, description="Invitations per participant across published sessions (the planner's cap)."
    )
    planner_time_limit_s: float = Field(10.0, gt=0, le=300, description="Time limit of one planner solve.")

    def model_post_init(self, __context: object) -> None:
        if self.environment == "production":
            if self.api_key_pepper.lower() in _PLACEHOLDER_SECRETS or "not-for-production" in self.api_key_pepper:
                raise ConfigurationError("SALON_API_KEY_PEPPER must be set to a real secret in production")
            if not self.database_url or self.database_url.startswith("sqlite"):
                raise ConfigurationError("production needs SALON_DATABASE_URL pointing at PostgreSQL")
            if not self.kafka_bootstrap:
                raise ConfigurationError("production needs SALON_KAFKA_BOOTSTRAP pointing at Apache Kafka")
            if self.fault_inject:
                raise ConfigurationError("SALON_FAULT_INJECT is for fault tests; production refuses it")
            if self.webhook_allow_loopback:
                raise ConfigurationError("SALON_WEBHOOK_ALLOW_LOOPBACK is for development; production refuses it")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'salon.db').resolve()}"

    @property
    def resolved_index_dir(self) -> Path:
        return self.index_dir or self.data_dir / "index"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_embedded_port}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def instance_name(self, service: str) -> str:
        """This replica's name (`SALON_INSTANCE_ID`, `{hostname}` filled in), else the service name."""
        if not self.instance_id:
            return service
        return self.instance_id.replace("{hostname}", socket.gethostname())


@lru_cache
def get_settings() -> Settings:
    return Settings()
