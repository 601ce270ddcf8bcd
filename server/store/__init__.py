"""The store: SQL on the event's tables, returning dataclasses that presenters and rules take
(challenges, submissions, extensions, releases, sessions). The caller owns the connection and,
where one is needed, the transaction; "now" is always the database's `podium_now()`."""
