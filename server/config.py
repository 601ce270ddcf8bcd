"""One frozen configuration, built from flags and environment; tests build it directly.

Each field is a setting declared once (server/settings.py): its default, its flag, its
environment variable and the commands that take it; docs/settings.md lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.settings import setting

# Which commands take which settings.
SERVER = ("serve", "demo")
EVENT = ("serve", "tokens", "score", "export", "rescore", "check-release", "split")
DATA = ("serve", "demo", "tokens", "export", "rescore", "check-release", "split")
DATABASE = ("serve", "demo", "export", "rescore", "split")
LINKS = ("serve", "demo", "tokens")


@dataclass(frozen=True)
class Config:
    # The command line's contract (docs/cli.md) names the flag `--event`.
    event_path: Path = setting(help="the event file (TOML)", commands=EVENT, flag="--event",
                               metavar="FILE")
    host: str = setting("127.0.0.1", "the address to listen on (0.0.0.0: every interface)",
                        commands=SERVER)
    port: int = setting(8080, "the port to listen on; 0 picks a free one", commands=SERVER,
                        minimum=0)
    data_dir: Path = setting(Path("podium-data"), "the folder that holds the embedded "
                             "database, the tokens, the uploads and the releases",
                             commands=DATA, metavar="DIR")
    # Secret: it may hold a password.
    database_url: str | None = setting(None, "the PostgreSQL server to use", commands=DATABASE,
                                       env="PODIUM_DATABASE_URL", metavar="URL", secret=True,
                                       default_text="an embedded PostgreSQL under the data dir")
    base_url: str | None = setting(None, "the public address used in printed links",
                                   commands=LINKS, metavar="URL",
                                   default_text="http://HOST:PORT, and for tokens "
                                                "http://127.0.0.1:8080")
    scoring_workers: int = setting(2, "scoring processes run by this server (0: leave scoring "
                                   "to other server processes sharing the database)",
                                   commands=SERVER, metavar="N", minimum=0)
    scoring_timeout_s: float = setting(300.0, "a submission still being scored after this long "
                                       "is marked invalid", commands=SERVER,
                                       metavar="SECONDS", minimum=0, above=True)
    # RLIMIT_AS of each scoring child.
    scoring_memory_mb: int = setting(4096, "address-space limit of each scoring process; a "
                                     "file that needs more is marked invalid (too_large); "
                                     "0: no limit", commands=SERVER, metavar="MIB", minimum=0)
    upload_idle_timeout_s: float = setting(60.0, "an upload that sends nothing for this long "
                                           "is dropped (408 upload_timeout)", commands=SERVER,
                                           metavar="SECONDS", minimum=0, above=True)
    # Per team and challenge, per server process: a burst, then one upload every so often.
    upload_burst: int = setting(6, "uploads a team may start at once on a challenge",
                                commands=SERVER, metavar="N", minimum=1)
    upload_every_s: float = setting(10.0, "after the burst, one upload per team and challenge "
                                    "this often (429 rate_limited)", commands=SERVER,
                                    metavar="SECONDS", minimum=0, above=True)
    max_pending_per_team: int = setting(3, "submissions of a team on a challenge still being "
                                        "scored at most (429 too_many_pending)",
                                        commands=SERVER, metavar="N", minimum=1)
    storage_quota_mb: float | None = setting(
        None, "what one team may store per challenge, for challenges without storage_quota_mb",
        commands=SERVER, metavar="MIB", minimum=0, above=True,
        default_text="four maximum-size uploads")
    storage_reserve_mb: float | None = setting(
        None, "free space on the data dir that uploads never use", commands=SERVER,
        metavar="MIB", minimum=0, default_text="2 GiB or 5% of the disk, whichever is smaller")
    allow_release: str | None = setting(None, "serve releases even with identifying DICOM "
                                        "attributes; the reason is logged", commands=SERVER,
                                        metavar="REASON", default_text="refuse them")
    # server/connection.py. None: derived from the open-file limit.
    max_connections: int | None = setting(None, "open connections at most", commands=SERVER,
                                          metavar="N", minimum=0,
                                          default_text="(open-file limit − 256) / 2, at most 4096")
    max_connections_per_client: int = setting(256, "open connections from one address at most "
                                              "(0: no limit; use 0 behind a proxy)",
                                              commands=SERVER, metavar="N", minimum=0)
    header_timeout_s: float = setting(10.0, "a request's headers must arrive within this time",
                                      commands=SERVER, metavar="SECONDS", minimum=0,
                                      above=True)
    keepalive_timeout_s: float = setting(30.0, "an idle keep-alive connection is closed after "
                                         "this time", commands=SERVER, metavar="SECONDS",
                                         minimum=0, above=True)
    # The centers' digest (server/inclusion/digest.py, docs/centers.md).
    smtp_host: str | None = setting(None, "the SMTP server the centers' digests are mailed "
                                    "through", commands=SERVER, metavar="HOST",
                                    default_text="none: digests are not mailed, only shown")
    smtp_port: int = setting(25, "the SMTP server's port", commands=SERVER, metavar="PORT",
                             minimum=1)
    smtp_from: str = setting("podium@localhost", "the sender address of the digests",
                             commands=SERVER, metavar="ADDRESS")
    digest_days: str = setting("mon,thu", "the days a digest is due, at 08:00 in the event's "
                               "time zone (comma-separated: mon, tue, wed, thu, fri, sat, sun)",
                               commands=SERVER, metavar="DAYS")
    # The inclusion platform's intake (server/inclusion/pipeline.py, upload.py).
    intake_workers: int = setting(1, "exams de-identified and checked at once (one process "
                                  "each)", commands=SERVER, metavar="N", minimum=1)
    inclusion_upload_mb: float = setting(4096.0, "the largest zip a center may upload for one "
                                         "exam", commands=SERVER, metavar="MIB", minimum=0,
                                         above=True)
    inclusion_unzipped_mb: float = setting(16384.0, "what one exam's zip may hold once "
                                           "unzipped (a zip bomb is refused)", commands=SERVER,
                                           metavar="MIB", minimum=0, above=True)
    inclusion_zip_entries: int = setting(10000, "files one exam's zip may hold at most",
                                         commands=SERVER, metavar="N", minimum=1)

    # The DICOM node (server/inclusion/node.py, docs/inclusion.md "The DICOM node").
    dicom_port: int | None = setting(None, "the port of the DICOM node (Storage SCP) the "
                                     "centers' PACS send exams to; 0 picks a free one",
                                     commands=SERVER, metavar="PORT", minimum=0,
                                     default_text="none: no DICOM node")
    dicom_ae_title: str = setting("PODIUM", "the DICOM node's own (called) AE title",
                                  commands=SERVER, metavar="AE")
    dicom_quiet_s: float = setting(30.0, "a study is closed and handed on when none of its "
                                   "instances arrived for this long", commands=SERVER,
                                   metavar="SECONDS", minimum=0, above=True)

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
