-- A challenge's kind is one of the kind modules (server/kinds/), checked by the event loader
-- against the kinds this installation has: a new kind needs no migration.
ALTER TABLE challenge DROP CONSTRAINT IF EXISTS challenge_kind_check;
