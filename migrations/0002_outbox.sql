-- The outbox (src/outbox.rs): the Bot API calls an update queued, written in the same batch as
-- its data changes and its processed_updates row, deleted once every call is sent or failed
-- for good. A row that stays names a call Telegram has not accepted yet:
--   SELECT chat_id, update_id, json_extract(data, '$.calls') FROM outbox
-- data holds {"update_id", "chat", "calls": [{"method", "params"}], "done" (calls done with),
-- "attempts" (transient failures of the next call), "next_try_ms", "update"}.
CREATE TABLE outbox (
  chat_id INTEGER NOT NULL,
  update_id INTEGER NOT NULL,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL,
  PRIMARY KEY (chat_id, update_id)
) WITHOUT ROWID;
