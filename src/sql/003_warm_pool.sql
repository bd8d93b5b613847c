-- 003_warm_pool.sql: warm pools (docs/architecture.md, "Warm pools").
-- A pool container is an ordinary container row whose account_kind is 'pool'
-- (account_id = its own id, so the unique live key never sees two alike) until
-- a player's start claims it: then the row and its flag row take the
-- claiming account, in the admission transaction. Idempotent, like 001.

ALTER TABLE container_instances MODIFY COLUMN account_kind ENUM('team','user','pool') NOT NULL;

ALTER TABLE container_flags MODIFY COLUMN account_kind ENUM('team','user','pool') NOT NULL;

-- What the container was started with (16 hex: image, ports, flag template,
-- limits, ...): a claim takes only a container whose spec matches the
-- challenge's current one. Kept after the claim: non-NULL = came from the pool.
ALTER TABLE container_instances ADD COLUMN IF NOT EXISTS pool_spec CHAR(16) NULL;

-- When a player's start claimed it from the pool (NULL: never pooled, or not claimed).
ALTER TABLE container_instances ADD COLUMN IF NOT EXISTS claimed_at BIGINT NULL;

-- Claims and the reaper's fill look up live pool rows by challenge.
ALTER TABLE container_instances ADD INDEX IF NOT EXISTS container_instances_pool (account_kind, live, challenge_id);

-- The lock row the reaper's fill takes, so the pool caps hold across hosts.
INSERT IGNORE INTO container_locks (name) VALUES ('pool');
