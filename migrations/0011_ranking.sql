-- A challenge's declared ranking (the event file's `ranking = {scheme = ..., ...}`, normalised
-- by server/ranking.py; NULL: the kind's own rule), and its kind options as JSON (hu_window,
-- and whatever option a kind declares), passed to the scorer by name. hu_low and hu_high stay
-- for the scorers of a server that predates this column.
ALTER TABLE challenge ADD COLUMN ranking jsonb;
ALTER TABLE challenge ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb;
UPDATE challenge SET options = jsonb_build_object('hu_window', jsonb_build_array(hu_low, hu_high))
    WHERE hu_low IS NOT NULL AND hu_high IS NOT NULL;
