-- Subscribers (injectors), their tokens and webhooks; per-subscriber acknowledgements.

-- The token's `jti`. Only the latest token of a live subscriber is accepted.
ALTER TABLE subscribers ADD COLUMN token_id uuid;
ALTER TABLE subscribers ADD COLUMN token_expires_at timestamptz;
-- Remote subscribers get events by webhook; the signing secret is sealed like a value.
ALTER TABLE subscribers ADD COLUMN webhook_url text;
ALTER TABLE subscribers ADD COLUMN webhook_key_id text;
ALTER TABLE subscribers ADD COLUMN webhook_iv bytea;
ALTER TABLE subscribers ADD COLUMN webhook_ciphertext bytea;
ALTER TABLE subscribers ADD COLUMN webhook_tag bytea;
-- Last authenticated contact (event stream, fetch, ack). A subscriber counts towards
-- propagation only while it is live: not revoked and seen recently.
ALTER TABLE subscribers ADD COLUMN last_seen_at timestamptz;
CREATE UNIQUE INDEX subscribers_name_live ON subscribers (name) WHERE revoked_at IS NULL;

ALTER TABLE deliveries ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE deliveries ADD COLUMN last_attempt_at timestamptz;
CREATE INDEX deliveries_unacked ON deliveries (rotation_id) WHERE acked_at IS NULL;
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id) WHERE acked_at IS NULL;

-- The newest version of each secret a subscriber has acknowledged holding.
CREATE TABLE subscriber_acks (
  subscriber_id uuid NOT NULL REFERENCES subscribers (id),
  secret_id     bigint NOT NULL REFERENCES secrets (id),
  version       integer NOT NULL,
  acked_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subscriber_id, secret_id)
);

CREATE INDEX rotations_unpropagated ON rotations (activated_at) WHERE propagated_at IS NULL AND activated_at IS NOT NULL;
