-- 001_initial.sql: ctfd-containers' own tables, beside CTFd's in CTFd's database.
-- Every statement is idempotent (DDL commits implicitly in MariaDB); statements
-- end with a semicolon at the end of a line. See docs/schema.md.

CREATE TABLE IF NOT EXISTS container_schema (
    id TINYINT NOT NULL PRIMARY KEY,
    version INT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per account that ever acted: the row lock that serialises an
-- account's starts, and its cooldown clock.
CREATE TABLE IF NOT EXISTS container_accounts (
    account_kind ENUM('team','user') NOT NULL,
    account_id INT NOT NULL,
    last_action_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_kind, account_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Named lock rows (capacity: the global admission lock).
CREATE TABLE IF NOT EXISTS container_locks (
    name VARCHAR(32) NOT NULL PRIMARY KEY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO container_locks (name) VALUES ('capacity');

-- One row per container, live or ended. `live` is 1 while the container holds
-- a slot and NULL afterwards, so the unique key allows one live container per
-- account and challenge and any number of ended ones.
CREATE TABLE IF NOT EXISTS container_instances (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account_kind ENUM('team','user') NOT NULL,
    account_id INT NOT NULL,
    user_id INT NOT NULL,
    challenge_id INT NOT NULL,
    backend VARCHAR(16) NOT NULL,
    name VARCHAR(64) NOT NULL,
    engine_id VARCHAR(128) NULL,
    image VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    live TINYINT NULL,
    host VARCHAR(255) NOT NULL DEFAULT '',
    ports VARCHAR(1024) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    started_at BIGINT NULL,
    deadline BIGINT NOT NULL,
    renewals INT NOT NULL DEFAULT 0,
    ended_at BIGINT NULL,
    end_reason VARCHAR(255) NULL,
    UNIQUE KEY container_instances_live (account_kind, account_id, challenge_id, live),
    KEY container_instances_state (state, deadline),
    KEY container_instances_challenge (challenge_id, live),
    KEY container_instances_live_deadline (live, deadline)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Host ports in use: the primary key makes "one owner per host port" hold
-- across every worker and every host sharing the database.
CREATE TABLE IF NOT EXISTS container_ports (
    host_port INT NOT NULL PRIMARY KEY,
    instance_id BIGINT NOT NULL,
    KEY container_ports_instance (instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Flags: AES-256-GCM ciphertext (+ tag) under key key_id with its nonce, and
-- the HMAC-SHA256 digest the plugin looks submissions up by. Retired, never
-- deleted, when the container ends.
CREATE TABLE IF NOT EXISTS container_flags (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    instance_id BIGINT NOT NULL,
    account_kind ENUM('team','user') NOT NULL,
    account_id INT NOT NULL,
    challenge_id INT NOT NULL,
    key_id CHAR(16) NOT NULL,
    nonce BINARY(12) NOT NULL,
    ciphertext VARBINARY(512) NOT NULL,
    digest BINARY(32) NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT NULL,
    UNIQUE KEY container_flags_digest (digest),
    UNIQUE KEY container_flags_instance (instance_id),
    KEY container_flags_challenge (challenge_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Audit trail: admin actions, flag reveals, flag sharing (written by the plugin).
CREATE TABLE IF NOT EXISTS container_events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    actor_user_id INT NULL,
    instance_id BIGINT NULL,
    account_kind ENUM('team','user') NULL,
    account_id INT NULL,
    challenge_id INT NULL,
    detail VARCHAR(1024) NOT NULL DEFAULT '',
    KEY container_events_at (at),
    KEY container_events_kind (kind, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Small key/value status the reaper writes (last reconcile report).
CREATE TABLE IF NOT EXISTS container_status (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
