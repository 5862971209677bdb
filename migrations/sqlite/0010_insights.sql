-- Kept identical in meaning in migrations/sqlite and migrations/postgres.

-- Attribution tags on events (issue 14): the event's tag set as a JSON
-- object with sorted keys (NULL = none), shown in the usage log and CSV,
-- and one row per tag for breakdowns and filters. A tag row names its event
-- by (user_id, event_id) and carries no amounts: cost, tokens and period
-- are always read from the event itself, so re-pricing an event or moving
-- it into the open period never leaves a tag total behind.
ALTER TABLE usage_events ADD COLUMN tags TEXT;

CREATE TABLE usage_event_tags (
    user_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    tag_key   TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (user_id, event_id, tag_key)
);
CREATE INDEX usage_event_tags_value ON usage_event_tags (user_id, tag_key, tag_value);

-- The tag keys each user's events carry, for the dashboard's "group by"
-- choices: read on every dashboard refresh, so kept as its own small table
-- rather than found by scanning a user's tag rows.
CREATE TABLE user_tag_keys (
    user_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    PRIMARY KEY (user_id, tag_key)
);

-- Per-customer timezones (issue 14): the IANA name a subscription's
-- periods are counted in (from the anchor's local wall-clock time: local
-- midnight for subscriptions created from now on; existing anchors keep
-- their time of day).
ALTER TABLE subscriptions ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
