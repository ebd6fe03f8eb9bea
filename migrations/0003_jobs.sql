-- Jobs (src/jobs/): PTB's JobQueue kept in storage. D1 keeps them so that every backend
-- stores every key edgegram writes (the conformance suite checks it), but nothing runs them
-- here: jobs need a Durable Object's alarm, and scheduling one with PERSISTENCE=d1 is refused
-- (README, "Jobs"). data holds the job as JSON: {"id", "name", "callback", "schedule",
-- "due_ms", "next_run_ms", "chat_id", "user_id", "data", "enabled", "failures"}.
CREATE TABLE jobs (
  chat_id INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL,
  PRIMARY KEY (chat_id, job_id)
) WITHOUT ROWID;

-- The job index: one row per job at its next run ("<chat id>:<job id>" in job).
CREATE TABLE job_index (
  at_ms INTEGER NOT NULL,
  job TEXT NOT NULL,
  data TEXT NOT NULL,
  version INTEGER CHECK (version IS NULL OR json_valid(data)),
  updated_at INTEGER NOT NULL,
  rev INTEGER NOT NULL,
  PRIMARY KEY (at_ms, job)
) WITHOUT ROWID;
