-- Leaderboards: a version number per challenge's board, the moment its freeze began, and the
-- per-exam values the evaluators keep for plots and rank stability.

ALTER TABLE challenge ADD COLUMN board_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE challenge ADD COLUMN frozen_at timestamptz;
ALTER TABLE submission ADD COLUMN details jsonb;
CREATE INDEX submission_scored ON submission (challenge_id, team_id) WHERE status = 'scored';
