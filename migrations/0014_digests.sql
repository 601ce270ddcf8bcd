-- The centers' digest (docs/centers.md): one row per center and due moment, written before the
-- mail is sent and marked sent in the same transaction that held it, so a digest is never sent
-- twice, and one a crash interrupted is sent after the restart.
CREATE TABLE digest (
    id        bigserial PRIMARY KEY,
    center_id integer NOT NULL REFERENCES center (id),
    due_at    timestamptz NOT NULL,        -- the digest's moment (digest_days, 08:00 local)
    since     timestamptz,                 -- the previous digest's moment; NULL: the first
    state     text NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'sent', 'empty', 'failed')),
    recipient text,
    error     text,                        -- the SMTP server's answer to the last try
    tries     integer NOT NULL DEFAULT 0,
    tried_at  timestamptz,
    sent_at   timestamptz,
    UNIQUE (center_id, due_at)
);
