-- Emergency webhook idempotency (issue 4). One row per verified `webhook-id`: the first
-- delivery inserts it and records its rotations and its answer in the same transaction;
-- a repeat (even a concurrent one, which waits on the primary key until the first
-- commits) finds the row and returns the stored answer, starting nothing new.
CREATE TABLE webhook_deliveries (
  webhook_id      text PRIMARY KEY,
  -- sha256 of the raw body: a reused id with a different body is refused, not replayed.
  body_sha256     text NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  response_status integer NOT NULL,
  -- The answer exactly as sent (JSON text, so repeats are byte-identical): rotation ids
  -- and secret names, never a value.
  response_body   text NOT NULL
);
-- Rows outlive the 5-minute replay window by a wide margin, then are pruned.
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
