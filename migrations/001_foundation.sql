-- Foundation: organisations, API tokens, idempotency keys.
--
-- The service runs as a member of tranche_app, which owns nothing: it reads and
-- appends, and updates only what must change (a token's revocation).

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tranche_app') THEN
    CREATE ROLE tranche_app NOLOGIN;
  END IF;
END
$$;

GRANT SELECT ON schema_version TO tranche_app;

CREATE TABLE organizations (
  id          uuid PRIMARY KEY,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
  kind        text NOT NULL CHECK (kind IN ('DONOR', 'IMPLEMENTER', 'NATIONAL_AUTHORITY',
                                            'COORDINATOR', 'POOLED_FUND', 'AUDITOR')),
  iati_ref    text NOT NULL DEFAULT '',
  country     text NOT NULL DEFAULT '' CHECK (country ~ '^([A-Z]{3})?$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organizations_kind ON organizations (kind, id);
CREATE UNIQUE INDEX organizations_iati_ref ON organizations (iati_ref) WHERE iati_ref <> '';

CREATE TABLE api_tokens (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  role        text NOT NULL CHECK (role IN ('admin', 'coordinator', 'donor', 'implementer', 'auditor')),
  org_id      uuid REFERENCES organizations (id),
  secret_hash bytea NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  CHECK ((role IN ('donor', 'implementer')) = (org_id IS NOT NULL))
);

-- One row per (method, requestId) ever accepted: AIP-155 idempotency.
CREATE TABLE idempotency_keys (
  method         text NOT NULL,
  request_id     text NOT NULL,
  payload_sha256 bytea NOT NULL,
  entity_id      text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (method, request_id)
);

GRANT SELECT, INSERT ON organizations, idempotency_keys TO tranche_app;
GRANT SELECT, INSERT ON api_tokens TO tranche_app;
GRANT UPDATE (revoked_at) ON api_tokens TO tranche_app;
