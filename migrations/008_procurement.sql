-- Procurement a milestone depends on (internal/procurement). An item is
-- created once and never edited; its stages are an append-only history, and
-- the stage an item is in on a day is its latest stage entered on or before
-- that day (so detection can replay a past day).

CREATE TABLE procurement_items (
  id                     uuid PRIMARY KEY,
  grant_id               uuid NOT NULL REFERENCES grants (id),
  milestone_id           uuid NOT NULL REFERENCES milestones (id),
  description            text NOT NULL,
  category               text NOT NULL CHECK (category IN ('DETECTORS', 'PPE', 'VEHICLES', 'MECHANICAL',
                           'ANIMALS', 'SERVICES', 'OTHER')),
  critical               boolean NOT NULL DEFAULT false,
  estimated_cost         numeric NOT NULL CHECK (estimated_cost >= 0),
  currency               text NOT NULL,
  expected_delivery_date date,
  recorded_by            text NOT NULL,
  recorded_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX procurement_items_grant ON procurement_items (grant_id, id);
CREATE INDEX procurement_items_milestone ON procurement_items (milestone_id, id);

-- seq numbers an item's stages from 1 (REQUISITIONED). The domain checks that
-- stages only move forward and dates never go back against the latest stage it
-- read; the primary key makes a concurrent second advance from that same stage
-- fail instead of forking the history.
CREATE TABLE procurement_stages (
  item_id     uuid NOT NULL REFERENCES procurement_items (id),
  seq         integer NOT NULL CHECK (seq >= 1),
  stage       text NOT NULL CHECK (stage IN ('REQUISITIONED', 'TENDERED', 'EVALUATED', 'AWARDED', 'CONTRACTED',
                'DELIVERED', 'ACCEPTED', 'CANCELLED')),
  entered_on  date NOT NULL,
  note        text NOT NULL DEFAULT '',
  recorded_by text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (item_id, seq)
);
-- Detection reads the stage each item was in on a day.
CREATE INDEX procurement_stages_item_day ON procurement_stages (item_id, entered_on DESC, seq DESC);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['procurement_items', 'procurement_stages'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION refuse_change()', t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', t || '_no_truncate', t);
  END LOOP;
END
$$;
GRANT SELECT, INSERT ON procurement_items, procurement_stages TO tranche_app;
