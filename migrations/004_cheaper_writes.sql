-- Cheaper journal writes (see internal/ledger, RecordTransaction): a single
-- entry is one statement, converted with FX rates cached in the service, and
-- sealing the audit trail no longer calls a PL/pgSQL guard per event.

-- fx_rates.seq orders rates by insertion. Writers of rates serialise (the
-- statement trigger below), so seq order is commit order: a reader that has
-- seen max(seq) = n has seen every rate with seq <= n, and a cache of the
-- table is current exactly when its max(seq) still is the table's.
ALTER TABLE fx_rates ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX fx_rates_seq ON fx_rates (seq);

CREATE FUNCTION fx_rates_serialise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7346002);
  RETURN NULL;
END
$$;
CREATE TRIGGER fx_rates_serialise BEFORE INSERT ON fx_rates
  FOR EACH STATEMENT EXECUTE FUNCTION fx_rates_serialise();

-- Sealing updates every event once. The guard used to run for each of those
-- updates (a PL/pgSQL call per row); now a WHEN clause, evaluated inline,
-- calls it only for an update that is not a one-time sealing, and the guard
-- refuses that. Deletes still always reach it.
DROP TRIGGER audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events FOR EACH ROW
  WHEN (OLD.seq IS NOT NULL OR NEW.seq IS NULL
        OR (NEW.id, NEW.occurred_at, NEW.actor_token_id, NEW.actor_name, NEW.actor_role,
            NEW.actor_org_id, NEW.method, NEW.entity_type, NEW.entity_id, NEW.request_id,
            NEW.subject_orgs, NEW.change)
           IS DISTINCT FROM
           (OLD.id, OLD.occurred_at, OLD.actor_token_id, OLD.actor_name, OLD.actor_role,
            OLD.actor_org_id, OLD.method, OLD.entity_type, OLD.entity_id, OLD.request_id,
            OLD.subject_orgs, OLD.change))
  EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_guard();

-- Nearly no entry reverses another: index only those that do (one index
-- insertion less per entry), still at most one reversal per entry.
ALTER TABLE transactions DROP CONSTRAINT transactions_reverses_id_key;
CREATE UNIQUE INDEX transactions_reverses_id_key ON transactions (reverses_id) WHERE reverses_id IS NOT NULL;

-- Every audit event paid for two indexes that only the listing's actor and
-- time filters used (an earlier edit of 002 dropped them for new databases
-- only; this drops them everywhere).
DROP INDEX IF EXISTS audit_events_actor;
DROP INDEX IF EXISTS audit_events_time;
