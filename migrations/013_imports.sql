-- Imports (internal/imports): FTS flows, IATI activities and OCDS processes
-- become organisations, grants, journal entries and procurement items through
-- the domain code; these tables keep where each of them came from.

-- An organisation is matched by its FTS organisation id as well as by its
-- IATI organisation identifier. Both are facts about the organisation, set
-- when it is registered (organisations are append-only).
ALTER TABLE organizations ADD COLUMN fts_org_id text NOT NULL DEFAULT ''
  CHECK (fts_org_id ~ '^([0-9]{1,12})?$');
CREATE UNIQUE INDEX organizations_fts_org_id ON organizations (fts_org_id) WHERE fts_org_id <> '';

-- One row per import that wrote something: who ran it, into what, and the
-- report it answered. It is written last, once the report is complete; the
-- rows that name it check it at commit (deferred).
CREATE TABLE import_runs (
  id           uuid PRIMARY KEY,
  source_kind  text NOT NULL CHECK (source_kind IN ('fts', 'iati', 'ocds')),
  -- The roadmap (FTS, IATI) or grant (OCDS) the records were imported into.
  scope_id     uuid NOT NULL,
  actor        text NOT NULL,
  actor_role   text NOT NULL,
  imported_at  timestamptz NOT NULL DEFAULT now(),
  report       jsonb NOT NULL
);

-- The files of each run, by content. The same file imported into the same
-- scope again writes nothing (the unique index says so under concurrency too).
CREATE TABLE import_files (
  run_id       uuid NOT NULL REFERENCES import_runs (id) DEFERRABLE INITIALLY DEFERRED,
  position     int NOT NULL,
  source_kind  text NOT NULL,
  scope_id     uuid NOT NULL,
  file_sha256  bytea NOT NULL CHECK (octet_length(file_sha256) = 32),
  file_name    text NOT NULL,
  PRIMARY KEY (run_id, position)
);
CREATE UNIQUE INDEX import_files_once ON import_files (source_kind, scope_id, file_sha256);

-- Provenance: one row per record written from a source (an organisation, a
-- grant, a journal entry, a procurement item), naming the source record and
-- its version. A newer version of a record adds rows (its correcting entries);
-- none is ever changed. content_sha256 is the hash of the record's canonical
-- content, so a re-import can tell an unchanged record from a changed one.
CREATE TABLE provenance (
  entity_type    text NOT NULL CHECK (entity_type IN ('organization', 'grant', 'transaction', 'procurement_item')),
  entity_id      uuid NOT NULL,
  run_id         uuid NOT NULL REFERENCES import_runs (id) DEFERRABLE INITIALLY DEFERRED,
  source_kind    text NOT NULL,
  scope_id       uuid NOT NULL,
  file_sha256    bytea NOT NULL CHECK (octet_length(file_sha256) = 32),
  record_id      text NOT NULL,
  record_version text NOT NULL,
  position       text NOT NULL,
  content_sha256 bytea NOT NULL CHECK (octet_length(content_sha256) = 32),
  -- The Tranche fields that were inferred rather than read from the source.
  inferred       text[] NOT NULL DEFAULT '{}',
  -- Source values kept verbatim where the stored value differs (rounded to
  -- the currency's minor units), by field name.
  source_values  jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (entity_type, entity_id)
);
CREATE INDEX provenance_record ON provenance (scope_id, source_kind, record_id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['import_runs', 'import_files', 'provenance'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION refuse_change()', t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', t || '_no_truncate', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT ON import_runs, import_files, provenance TO tranche_app;
