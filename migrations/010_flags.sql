-- Detection (internal/detect): the runs of the engine and the flags they
-- raise. A run is a fact, appended once when it commits. A flag is the one
-- mutable record of a finding: the runs refresh its evidence and open or
-- resolve it, reviewers acknowledge, dismiss or reopen it. Every change of a
-- flag is also appended to flag_events (and recorded in the audit trail), so
-- no state a flag was ever in is lost.

CREATE TABLE detection_runs (
  id          uuid PRIMARY KEY,
  roadmap_id  uuid NOT NULL REFERENCES roadmaps (id),
  as_of       date NOT NULL,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor       text NOT NULL,          -- token id, or the operator's name for background runs
  actor_role  text NOT NULL,
  counts      jsonb NOT NULL          -- {"KIND": {"new": n, "reopened": n, "stillOpen": n, "resolved": n}, …}
);
CREATE INDEX detection_runs_roadmap ON detection_runs (roadmap_id, finished_at DESC);

CREATE TABLE flags (
  id                uuid PRIMARY KEY,
  roadmap_id        uuid NOT NULL REFERENCES roadmaps (id),
  kind              text NOT NULL CHECK (kind IN ('DUPLICATE_TRANSACTION', 'DUPLICATE_EXPENDITURE',
                      'OVERFUNDED_MILESTONE', 'OVERLAPPING_GRANTS', 'RECEIPT_MISMATCH', 'PROCUREMENT_STALLED',
                      'PROCUREMENT_LATE', 'MILESTONE_AT_RISK', 'IDLE_FUNDS')),
  fingerprint       text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  severity          text NOT NULL CHECK (severity IN ('HIGH', 'MEDIUM', 'LOW')),
  status            text NOT NULL CHECK (status IN ('OPEN', 'ACKNOWLEDGED', 'DISMISSED', 'RESOLVED')),
  subjects          jsonb NOT NULL,      -- [{"type": "grant", "id": "…"}, …] as the rule gave them
  -- Who may see the flag, derived by the run from the subjects: the grants
  -- named, or whose journal entries or procurement items are named; the
  -- donors and recipients of those grants plus any organisation named. A
  -- grant's donor and recipient never change, so these stay true.
  grant_ids         uuid[] NOT NULL DEFAULT '{}',
  donor_org_ids     uuid[] NOT NULL DEFAULT '{}',
  recipient_org_ids uuid[] NOT NULL DEFAULT '{}',
  evidence          jsonb NOT NULL,
  explanation       text NOT NULL,
  detected_at       timestamptz NOT NULL,  -- when a run first found it
  -- No last_seen_run: an unresolved flag was found by its roadmap's latest
  -- run (else that run would have resolved it), a resolved one last by the
  -- run before resolved_by_run; keeping it would rewrite every flag on every
  -- run.
  first_run         uuid NOT NULL REFERENCES detection_runs (id) DEFERRABLE INITIALLY DEFERRED,
  resolved_by_run   uuid REFERENCES detection_runs (id) DEFERRABLE INITIALLY DEFERRED,
  resolved_at       timestamptz,
  review_action     text CHECK (review_action IN ('ACKNOWLEDGE', 'DISMISS', 'REOPEN')),
  reviewed_by       text NOT NULL DEFAULT '',
  reviewed_at       timestamptz,
  review_note       text NOT NULL DEFAULT '',
  updated_at        timestamptz NOT NULL,
  UNIQUE (roadmap_id, fingerprint),
  CHECK ((status = 'RESOLVED') = (resolved_by_run IS NOT NULL))
);
-- The list's filters, each in id (creation) order for keyset paging.
CREATE INDEX flags_roadmap ON flags (roadmap_id, status, id);
CREATE INDEX flags_roadmap_kind ON flags (roadmap_id, kind, id);
CREATE INDEX flags_status ON flags (status, id);
CREATE INDEX flags_kind ON flags (kind, id);
-- grantId and organizationId filters, and what donors and implementers see.
CREATE INDEX flags_grants ON flags USING gin (grant_ids);
CREATE INDEX flags_donors ON flags USING gin (donor_org_ids);
CREATE INDEX flags_recipients ON flags USING gin (recipient_org_ids);

-- What happened to each flag, in order: OPENED, REOPENED (by a run),
-- UPDATED (a run found other evidence, severity or explanation), RESOLVED,
-- and the reviews ACKNOWLEDGE, DISMISS, REOPEN. Each row holds the flag's
-- status, severity, evidence and explanation after the event.
CREATE TABLE flag_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  flag_id     uuid NOT NULL REFERENCES flags (id),
  run_id      uuid REFERENCES detection_runs (id) DEFERRABLE INITIALLY DEFERRED,
  event       text NOT NULL CHECK (event IN ('OPENED', 'REOPENED', 'UPDATED', 'RESOLVED',
                'ACKNOWLEDGE', 'DISMISS', 'REOPEN')),
  status      text NOT NULL,
  severity    text NOT NULL,
  evidence    jsonb,
  explanation text,
  actor       text NOT NULL,
  note        text NOT NULL DEFAULT '',
  occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flag_events_flag ON flag_events (flag_id, id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['detection_runs', 'flag_events'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION refuse_change()', t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', t || '_no_truncate', t);
  END LOOP;
END
$$;
CREATE TRIGGER flags_no_delete BEFORE DELETE ON flags FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER flags_no_truncate BEFORE TRUNCATE ON flags FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

GRANT SELECT, INSERT ON detection_runs, flag_events, flags TO tranche_app;
-- A flag's identity (roadmap, kind, fingerprint) and its first finding never
-- change; the rest does (a run refreshes what the finding names now).
GRANT UPDATE (severity, status, subjects, grant_ids, donor_org_ids, recipient_org_ids, evidence, explanation,
              resolved_by_run, resolved_at, review_action, reviewed_by, reviewed_at, review_note,
              updated_at) ON flags TO tranche_app;
