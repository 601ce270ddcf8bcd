-- Browser sessions (issue 12). The cookie holds a random session id; only its SHA-256 is kept,
-- so a copy of the database logs nobody in. A session belongs to one credential: a token
-- removed from the event (rotated) ends its sessions with it. Logging out revokes the session.

CREATE TABLE browser_session (
    id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    token_hash  bytea NOT NULL REFERENCES credential (token_hash) ON DELETE CASCADE,
    -- Who is at the keyboard (e.g. which organizer), for the log; set by a later change.
    operator    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX browser_session_token ON browser_session (token_hash);
