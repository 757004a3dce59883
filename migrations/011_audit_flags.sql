-- The review of a flag names every donor and recipient of the grants the
-- flag is about, in no particular order; a donor or an implementer lists
-- those naming it (internal/audit, List) through this index. Reviews are
-- few, so the branch sorts what it finds.
CREATE INDEX audit_events_flag_orgs ON audit_events USING gin (subject_orgs)
  WHERE seq IS NOT NULL AND entity_type = 'flag';
