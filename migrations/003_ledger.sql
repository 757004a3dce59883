-- The fiduciary ledger: roadmaps, milestones, grants, the append-only journal,
-- allocations and FX rates. Money is NUMERIC; never a float.

CREATE TABLE roadmaps (
  id                 uuid PRIMARY KEY,
  country            text NOT NULL,
  title              text NOT NULL,
  start_date         date NOT NULL,
  end_date           date NOT NULL,
  reporting_currency text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (end_date >= start_date)
);

CREATE TABLE milestones (
  id                  uuid PRIMARY KEY,
  roadmap_id          uuid NOT NULL REFERENCES roadmaps (id),
  code                text NOT NULL,
  title               text NOT NULL,
  activity_type       text NOT NULL CHECK (activity_type IN ('SURVEY', 'CLEARANCE', 'EORE', 'VICTIM_ASSISTANCE',
                        'CAPACITY_BUILDING', 'STOCKPILE_DESTRUCTION', 'COORDINATION')),
  region              text NOT NULL DEFAULT '',
  target_quantity     numeric NOT NULL DEFAULT 0 CHECK (target_quantity >= 0),
  target_unit         text NOT NULL DEFAULT '',
  due_date            date,
  funding_requirement numeric NOT NULL CHECK (funding_requirement >= 0),
  responsible_org_id  uuid REFERENCES organizations (id),
  status              text NOT NULL DEFAULT 'PLANNED',
  created_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (roadmap_id, code)
);

CREATE TABLE milestone_progress (
  id                uuid PRIMARY KEY,
  milestone_id      uuid NOT NULL REFERENCES milestones (id),
  achieved_quantity numeric NOT NULL CHECK (achieved_quantity >= 0),
  as_of             date NOT NULL,
  note              text NOT NULL DEFAULT '',
  recorded_by       text NOT NULL,
  recorded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX milestone_progress_milestone ON milestone_progress (milestone_id, as_of, recorded_at);

CREATE TABLE milestone_status_history (
  id           uuid PRIMARY KEY,
  milestone_id uuid NOT NULL REFERENCES milestones (id),
  status       text NOT NULL,
  note         text NOT NULL DEFAULT '',
  recorded_by  text NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX milestone_status_history_milestone ON milestone_status_history (milestone_id, recorded_at);

CREATE TABLE grants (
  id               uuid PRIMARY KEY,
  roadmap_id       uuid NOT NULL REFERENCES roadmaps (id),
  donor_org_id     uuid NOT NULL REFERENCES organizations (id),
  recipient_org_id uuid NOT NULL REFERENCES organizations (id),
  reference        text NOT NULL,
  title            text NOT NULL,
  currency         text NOT NULL,
  start_date       date NOT NULL,
  end_date         date NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (donor_org_id, reference),
  CHECK (end_date >= start_date)
);
CREATE INDEX grants_roadmap ON grants (roadmap_id, id);
CREATE INDEX grants_recipient ON grants (recipient_org_id, id);

-- Running totals per grant, in agreement currency (carrying the invariants)
-- and in reporting currency: a cache of the journal, kept in the same
-- transaction as each entry, whose row lock serialises the writers of one
-- grant. Tests replay the journal against it.
CREATE TABLE grant_balances (
  grant_id           uuid PRIMARY KEY REFERENCES grants (id),
  pledged            numeric NOT NULL DEFAULT 0,
  committed          numeric NOT NULL DEFAULT 0,
  disbursed          numeric NOT NULL DEFAULT 0,
  received           numeric NOT NULL DEFAULT 0,
  spent              numeric NOT NULL DEFAULT 0,
  allocated          numeric NOT NULL DEFAULT 0,
  allocation_version integer NOT NULL DEFAULT 0,
  pledged_reporting   numeric NOT NULL DEFAULT 0,
  committed_reporting numeric NOT NULL DEFAULT 0,
  disbursed_reporting numeric NOT NULL DEFAULT 0,
  received_reporting  numeric NOT NULL DEFAULT 0,
  spent_reporting     numeric NOT NULL DEFAULT 0,
  CHECK (disbursed <= committed),
  CHECK (allocated <= committed),
  CHECK (committed >= 0 AND pledged >= 0)
);

-- Every set of allocations ever made; the current one is the grant's
-- allocation_version. Converted to reporting currency when set.
CREATE TABLE allocations (
  grant_id         uuid NOT NULL REFERENCES grants (id),
  version          integer NOT NULL,
  milestone_id     uuid NOT NULL REFERENCES milestones (id),
  amount           numeric NOT NULL CHECK (amount > 0),
  reporting_amount numeric NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (grant_id, version, milestone_id)
);
CREATE INDEX allocations_milestone ON allocations (milestone_id);

CREATE TABLE transactions (
  id               uuid PRIMARY KEY,
  grant_id         uuid NOT NULL REFERENCES grants (id),
  type             text NOT NULL CHECK (type IN ('PLEDGE', 'COMMITMENT', 'DISBURSEMENT', 'RECEIPT', 'EXPENDITURE', 'REVERSAL')),
  -- the balance the entry moves: its own type, or for a REVERSAL the reversed entry's
  bucket           text NOT NULL CHECK (bucket IN ('PLEDGE', 'COMMITMENT', 'DISBURSEMENT', 'RECEIPT', 'EXPENDITURE')),
  amount           numeric NOT NULL,
  currency         text NOT NULL,
  agreement_amount numeric NOT NULL,  -- signed effect on the bucket, rounded
  reporting_amount numeric NOT NULL,
  agreement_rate   numeric NOT NULL,  -- units of currency per agreement-currency unit used
  reporting_rate   numeric NOT NULL,  -- units of currency per reporting-currency unit used
  fx_rate          numeric,           -- as given with the entry
  value_date       date NOT NULL,
  reference        text NOT NULL DEFAULT '',
  milestone_id     uuid REFERENCES milestones (id),
  reverses_id      uuid UNIQUE REFERENCES transactions (id),
  note             text NOT NULL DEFAULT '',
  recorded_by      text NOT NULL,
  recorded_role    text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  batch_id         uuid,
  CHECK ((type = 'REVERSAL') = (reverses_id IS NOT NULL)),
  CHECK (type = 'REVERSAL' OR type = bucket)
);
CREATE INDEX transactions_grant ON transactions (grant_id, recorded_at, id);
CREATE INDEX transactions_milestone ON transactions (milestone_id) WHERE milestone_id IS NOT NULL;
CREATE INDEX transactions_batch ON transactions (batch_id) WHERE batch_id IS NOT NULL;
-- Reconciliation reads a grant's money flows; expenditures usually outnumber them.
CREATE INDEX transactions_flows ON transactions (grant_id, id) WHERE bucket IN ('DISBURSEMENT', 'RECEIPT');

CREATE TABLE fx_rates (
  currency       text NOT NULL,
  quote_currency text NOT NULL,
  date           date NOT NULL,
  rate           numeric NOT NULL CHECK (rate > 0),
  source         text NOT NULL DEFAULT '',
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (currency, quote_currency, date),
  CHECK (currency <> quote_currency)
);

-- History is append-only for everyone; the application role may only insert.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['transactions', 'allocations', 'fx_rates', 'milestone_progress',
                           'milestone_status_history', 'grants', 'roadmaps'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION refuse_change()', t || '_append_only', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()', t || '_no_truncate', t);
  END LOOP;
END
$$;
CREATE TRIGGER organizations_append_only BEFORE UPDATE OR DELETE ON organizations
  FOR EACH ROW EXECUTE FUNCTION refuse_change();

GRANT SELECT, INSERT ON roadmaps, milestones, milestone_progress, milestone_status_history,
  grants, allocations, transactions, fx_rates TO tranche_app;
GRANT UPDATE (status) ON milestones TO tranche_app;
GRANT SELECT, INSERT, UPDATE ON grant_balances TO tranche_app;
