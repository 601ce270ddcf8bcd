"""One frozen configuration, built from flags and environment; tests build it directly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("podium-data")
DATABASE_URL_ENV = "PODIUM_DATABASE_URL"


@dataclass(frozen=True)
class Config:
    event_path: Path
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = DEFAULT_DATA_DIR
    # None: run an embedded PostgreSQL under data_dir. Hidden from repr: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    # Public address printed in links; defaults to http://host:port.
    base_url: str | None = None
    # Scoring: child processes per server process, and the time one submission may take.
    scoring_slots: int = 2
    scoring_timeout_s: float = 300.0
    # Address space of each scoring child (RLIMIT_AS), in MiB; 0 for no limit.
    scoring_memory_mb: int = 4096
    # Uploads: a slow client is dropped after this long without a byte; per-team limits.
    upload_idle_timeout_s: float = 60.0
    upload_burst: int = 6
    upload_every_s: float = 10.0
    max_pending_per_team: int = 3
    # Storage: the quota per team and challenge for challenges that set none (None: four
    # maximum-size uploads), and the data dir's free space kept from uploads (None: 2 GiB or
    # 5 %, whichever is smaller).
    storage_quota_mb: float | None = None
    storage_reserve_mb: float | None = None
    # Serve releases with identifying DICOM data anyway; the reason is logged.
    allow_release: str | None = None
    # Connections (server/connection.py). None: derived from the open-file limit.
    max_connections: int | None = None
    max_connections_per_client: int = 256
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 30.0

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def database_url_from_env(flag: str | None) -> str | None:
    return flag or os.environ.get(DATABASE_URL_ENV) or None
