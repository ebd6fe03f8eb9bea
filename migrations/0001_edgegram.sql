-- edgegram's tables for PERSISTENCE=d1 (src/edge/d1.rs), applied with
-- `npx wrangler d1 migrations apply EDGEGRAM_D1` (wrangler.toml names this directory).
--
-- Every data table has the same value columns:
--   data        the entry's JSON exactly as /admin/export shows it, so that
--               SELECT json_extract(data, '$.count') FROM user_data WHERE user_id = 1 works
--   version     the bot's schema version the data was written at (ApplicationBuilder::schema_version);
--               NULL only for a value that is not an edgegram envelope, kept as it was written
--   updated_at  when it was last written, ms since the epoch (datetime(updated_at / 1000, 'unixepoch'))
--   rev         the revision edgegram compares before it writes (compare-and-set); anything
--               that changes a row must also change rev, or a concurrent update can overwrite it
-- An update's changes and its processed_updates row are written in one D1 batch (a transaction).

CREATE TABLE bot_data (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
);

CREATE TABLE chat_data (
  chat_id INTEGER PRIMARY KEY,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
);

CREATE TABLE user_data (
  user_id INTEGER PRIMARY KEY,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
);

-- key: the conversation key as python-telegram-bot writes it, e.g. '[-1001500000001, 456]'.
CREATE TABLE conversations (
  name TEXT NOT NULL,
  key TEXT NOT NULL,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL,
  PRIMARY KEY (name, key)
) WITHOUT ROWID;

-- Arbitrary callback data: one inline keyboard's buttons, by keyboard id.
CREATE TABLE callback_keyboards (
  keyboard_id TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
) WITHOUT ROWID;

-- Which keyboard a callback query id belongs to.
CREATE TABLE callback_queries (
  query_id TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
) WITHOUT ROWID;

-- The keyboards made in one chat ('chat.<id>') or for one user ('user.<id>').
CREATE TABLE keyboard_index (
  owner TEXT PRIMARY KEY,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL
) WITHOUT ROWID;

-- The update ids handled within PROCESSED_UPDATE_TTL_SECONDS: a redelivered update finds
-- its row and is answered 200 without running again. Expired rows are pruned by later writes.
CREATE TABLE processed_updates (
  update_id INTEGER PRIMARY KEY,
  processed_at INTEGER NOT NULL
);
CREATE INDEX processed_updates_by_time ON processed_updates (processed_at);

-- Never holds a row: a write inserts into it only when an entry's rev is no longer the one
-- the update read, and the CHECK then fails the statement and so the whole batch.
CREATE TABLE edgegram_conflicts (
  key TEXT,
  CONSTRAINT edgegram_conflict CHECK (key IS NULL)
);

-- Failed deliveries of updates not yet handled (MAX_UPDATE_ATTEMPTS): how many, and when the
-- first failed (ms). A count older than PROCESSED_UPDATE_TTL_SECONDS starts again.
CREATE TABLE failed_attempts (
  update_id INTEGER PRIMARY KEY,
  attempts INTEGER NOT NULL,
  first_failed_at INTEGER NOT NULL
);

-- Updates acknowledged without being handled (GET /admin/dead-letters): the letter as JSON.
-- The 500 with the highest ids are kept.
CREATE TABLE dead_letters (
  update_id INTEGER PRIMARY KEY,
  letter TEXT NOT NULL
);
