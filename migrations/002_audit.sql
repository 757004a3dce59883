-- Audit trail: one event per accepted mutation, sealed into a hash chain after
-- commit (see internal/audit's package doc for the design and its bound).

-- refuse_change is the trigger behind every append-only table.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE audit_events (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at    timestamptz NOT NULL DEFAULT now(),
  actor_token_id text NOT NULL,
  actor_name     text NOT NULL,
  actor_role     text NOT NULL,
  actor_org_id   text NOT NULL,
  method         text NOT NULL,
  entity_type    text NOT NULL,
  entity_id      text NOT NULL,
  request_id     text NOT NULL,
  subject_orgs   text[] NOT NULL DEFAULT '{}',
  change         text NOT NULL,          -- canonical JSON, byte for byte as hashed
  seq            bigint UNIQUE,          -- chain position, set once when sealed
  prev_hash      bytea,
  hash           bytea,
  CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL))
);
CREATE INDEX audit_events_unsealed ON audit_events (id) WHERE seq IS NULL;
CREATE INDEX audit_events_entity ON audit_events (entity_type, entity_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_token_id, id);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

-- Rows are never updated or deleted, except that an unsealed event's chain
-- fields are filled in once.
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
     AND (NEW.id, NEW.occurred_at, NEW.actor_token_id, NEW.actor_name, NEW.actor_role,
          NEW.actor_org_id, NEW.method, NEW.entity_type, NEW.entity_id, NEW.request_id,
          NEW.subject_orgs, NEW.change)
         IS NOT DISTINCT FROM
         (OLD.id, OLD.occurred_at, OLD.actor_token_id, OLD.actor_name, OLD.actor_role,
          OLD.actor_org_id, OLD.method, OLD.entity_type, OLD.entity_id, OLD.request_id,
          OLD.subject_orgs, OLD.change) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION '% on audit_events refused: the audit trail is append-only', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- audit_seal is the only way the application role writes chain fields. It
-- checks the new positions continue the chain without a gap.
CREATE FUNCTION audit_seal(p_ids bigint[], p_seqs bigint[], p_prev bytea[], p_hashes bytea[])
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  head bigint;
  n integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7346001);
  SELECT coalesce(max(seq), 0) INTO head FROM audit_events;
  IF p_seqs[1] <> head + 1 THEN
    RAISE EXCEPTION 'audit_seal: chain continues at %, got %', head + 1, p_seqs[1];
  END IF;
  UPDATE audit_events e SET seq = x.seq, prev_hash = x.prev, hash = x.hash
    FROM unnest(p_ids, p_seqs, p_prev, p_hashes) AS x(id, seq, prev, hash)
   WHERE e.id = x.id AND e.seq IS NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n <> cardinality(p_ids) THEN
    RAISE EXCEPTION 'audit_seal: % of % events were sealable', n, cardinality(p_ids);
  END IF;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION audit_seal(bigint[], bigint[], bytea[], bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_seal(bigint[], bigint[], bytea[], bytea[]) TO tranche_app;

GRANT SELECT, INSERT ON audit_events TO tranche_app;

-- Tokens and idempotency keys are history too.
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON idempotency_keys
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER idempotency_keys_no_truncate BEFORE TRUNCATE ON idempotency_keys
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
