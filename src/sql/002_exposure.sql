-- 002_exposure.sql: each container's route, the random name it is reached
-- under through nginx (NAME.route_domain over HTTP, and over TLS by SNI).
-- See docs/exposure.md and docs/schema.md. Idempotent, like every migration.

ALTER TABLE container_instances ADD COLUMN IF NOT EXISTS route VARCHAR(32) NULL;

-- Names are random (100 bits); the unique key turns a collision into a
-- failed insert rather than two containers behind one name.
CREATE UNIQUE INDEX IF NOT EXISTS container_instances_route ON container_instances (route);
