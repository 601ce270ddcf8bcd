-- The validation set of each challenge as prepared when the event is loaded: the archive teams
-- download, whether it may go out (the GDPR guard), and for a sealed one its key.

CREATE TABLE release (
    challenge_id   integer PRIMARY KEY REFERENCES challenge (id),
    path           text NOT NULL,
    file_name      text NOT NULL,
    size           bigint NOT NULL,
    sha256         text NOT NULL,
    sealed         boolean NOT NULL,
    key            text,                     -- revealed to registered teams at the start
    armed          boolean NOT NULL,         -- false: identifying data found, not overridden
    findings       jsonb NOT NULL DEFAULT '[]',
    allowed_reason text,
    prepared_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
