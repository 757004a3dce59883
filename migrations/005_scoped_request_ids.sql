-- Request ids are unique per caller (its organisation, or its token for
-- roles bound to none), not per method across all callers: one donor's id
-- must neither block nor reveal another's. Keys recorded before carry the
-- empty scope and stay as they were; they are not matched again, so a retry
-- sent across this upgrade is not recognised as one (no deployment predates
-- it; one that did would have to drain retries before upgrading).
ALTER TABLE idempotency_keys ADD COLUMN scope text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, method, request_id);

-- The answer of a request whose resource changes afterwards (allocations,
-- milestone status and progress), so that a retry gets the original answer
-- rather than today's state. Append-only like the keys.
CREATE TABLE idempotency_answers (
  scope      text NOT NULL,
  method     text NOT NULL,
  request_id text NOT NULL,
  answer     jsonb NOT NULL,
  PRIMARY KEY (scope, method, request_id)
);
GRANT SELECT, INSERT ON idempotency_answers TO tranche_app;
CREATE TRIGGER idempotency_answers_append_only BEFORE UPDATE OR DELETE ON idempotency_answers
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER idempotency_answers_no_truncate BEFORE TRUNCATE ON idempotency_answers
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
