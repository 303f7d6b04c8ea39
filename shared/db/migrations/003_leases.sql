-- Dynamic credential leases (postgres-dynamic): one login role per lease at the target.
-- The lease password is returned once and never stored; a row holds only who and until when.
CREATE TABLE leases (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  secret_id      bigint NOT NULL REFERENCES secrets (id),
  -- The secret version (lease epoch) the lease was issued under; revoking it ends the lease.
  version        integer NOT NULL,
  username       text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  -- Renewals never extend a lease beyond this (the provider's maxTtl from creation).
  max_expires_at timestamptz NOT NULL,
  renewed_at     timestamptz,
  revoked_at     timestamptz,
  -- 'revoked' (asked for), 'expired' (reaped), 'version revoked', 'create failed'
  revoke_reason  text,
  last_error     text
);
CREATE UNIQUE INDEX leases_username ON leases (username);
-- The reaper's work list: live leases by expiry.
CREATE INDEX leases_live_by_expiry ON leases (expires_at) WHERE revoked_at IS NULL;
CREATE INDEX leases_by_secret ON leases (secret_id, version) WHERE revoked_at IS NULL;
