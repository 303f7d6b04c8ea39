-- rekey schema, version 1. PostgreSQL is the source of truth; Redis holds only work in flight.

CREATE TABLE secrets (
  id                 bigserial PRIMARY KEY,
  name               text NOT NULL,
  provider           text NOT NULL,
  -- Non-secret provider settings (lengths, role names, env var references). Never a value.
  config             jsonb NOT NULL DEFAULT '{}',
  -- {interval?: "15m", cron?: "0 * * * *", jitterMs, graceMs}
  policy             jsonb NOT NULL DEFAULT '{}',
  next_rotation_at   timestamptz,
  latest_version     integer NOT NULL DEFAULT 0,
  current_version    integer,
  -- The rotation that holds this secret's rotation lock, and its fence token. Every step
  -- write checks both, so a worker that lost the lock (crash, partition) changes nothing.
  active_rotation_id uuid,
  fence              bigint NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  deleted_at         timestamptz
);
CREATE UNIQUE INDEX secrets_name_live ON secrets (name) WHERE deleted_at IS NULL;
CREATE INDEX secrets_due ON secrets (next_rotation_at) WHERE deleted_at IS NULL AND next_rotation_at IS NOT NULL;

CREATE TABLE secret_versions (
  secret_id    bigint NOT NULL REFERENCES secrets (id),
  version      integer NOT NULL,
  state        text NOT NULL CHECK (state IN ('pending', 'current', 'previous', 'revoked')),
  -- AES-256-GCM under the master key identified by key_id; null once crypto-shredded.
  key_id       text,
  iv           bytea,
  ciphertext   bytea,
  tag          bytea,
  -- Public, non-secret material: a JWK public key and kid, the role a password belongs to.
  public       jsonb NOT NULL DEFAULT '{}',
  rotation_id  uuid,
  created_at   timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  revoked_at   timestamptz,
  PRIMARY KEY (secret_id, version)
);
-- Invariant 1: at most one current version per secret, enforced by the database itself.
CREATE UNIQUE INDEX secret_versions_one_current ON secret_versions (secret_id) WHERE state = 'current';

CREATE TABLE rotations (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  secret_id        bigint NOT NULL REFERENCES secrets (id),
  trigger          text NOT NULL CHECK (trigger IN ('initial', 'schedule', 'manual', 'emergency', 'webhook')),
  reason           text,
  emergency        boolean NOT NULL DEFAULT false,
  status           text NOT NULL CHECK (status IN
                     ('queued', 'minting', 'setting', 'testing', 'activating', 'notifying', 'revoking', 'completed', 'failed')),
  failed_step      text,
  error            text,
  attempts         integer NOT NULL DEFAULT 0,
  fence            bigint,
  from_version     integer,
  to_version       integer,
  triggered_at     timestamptz NOT NULL DEFAULT now(),
  queued_at        timestamptz NOT NULL DEFAULT now(),
  minting_at       timestamptz,
  setting_at       timestamptz,
  testing_at       timestamptz,
  activating_at    timestamptz,
  activated_at     timestamptz,
  notifying_at     timestamptz,
  revoking_at      timestamptz,
  revoke_after     timestamptz,
  revoked_at       timestamptz,
  propagated_at    timestamptz,
  completed_at     timestamptz,
  failed_at        timestamptz,
  time_to_revoke_ms integer,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Requests that arrive while a rotation of the same secret is still queued coalesce into it.
CREATE UNIQUE INDEX rotations_one_queued ON rotations (secret_id) WHERE status = 'queued';
CREATE INDEX rotations_unfinished ON rotations (updated_at) WHERE status NOT IN ('completed', 'failed');
CREATE INDEX rotations_by_secret ON rotations (secret_id, triggered_at DESC);

-- Transactional outbox: a rotation's state change and its event commit together; the
-- notifier signs and publishes unpublished rows, and the reconciler re-enqueues any it missed.
CREATE TABLE events (
  id           text PRIMARY KEY,
  type         text NOT NULL,
  rotation_id  uuid NOT NULL REFERENCES rotations (id),
  secret_id    bigint NOT NULL REFERENCES secrets (id),
  -- CloudEvent `data`: ids and versions, never a value.
  data         jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  -- The signed CloudEvent as published (compact JWS), set by the notifier.
  jws          text,
  published_at timestamptz,
  stream_id    text
);
CREATE INDEX events_unpublished ON events (created_at) WHERE published_at IS NULL;

-- rekey's own signing keys (events, subscriber tokens), served in /v1/jwks.
CREATE TABLE system_keys (
  kid        text PRIMARY KEY,
  alg        text NOT NULL,
  public_jwk jsonb NOT NULL,
  key_id     text NOT NULL,
  iv         bytea NOT NULL,
  ciphertext bytea NOT NULL,
  tag        bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz
);

CREATE TABLE subscribers (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name       text NOT NULL,
  -- Secret names and prefixes (ending in '/') this subscriber may read.
  scope      text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);

CREATE TABLE deliveries (
  rotation_id   uuid NOT NULL REFERENCES rotations (id),
  subscriber_id uuid NOT NULL REFERENCES subscribers (id),
  channel       text NOT NULL,
  attempts      integer NOT NULL DEFAULT 0,
  delivered_at  timestamptz,
  acked_version integer,
  acked_at      timestamptz,
  last_error    text,
  PRIMARY KEY (rotation_id, subscriber_id)
);

-- Append-only, hash-chained: each row's hash covers the previous row's hash.
CREATE TABLE audit_events (
  id        bigserial PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  actor     text NOT NULL,
  action    text NOT NULL,
  target    text,
  outcome   text NOT NULL,
  details   jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash      text NOT NULL
);
