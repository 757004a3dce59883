package demo

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/detect"
	"github.com/tranche-ledger/tranche/internal/fx"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/org"
	"github.com/tranche-ledger/tranche/internal/procurement"
	"github.com/tranche-ledger/tranche/internal/roadmap"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func operator() context.Context {
	ctx := auth.WithPrincipal(context.Background(), auth.OperatorPrincipal("demo test"))
	return audit.WithCall(ctx, audit.Call{Method: "cli:demo test"})
}

// Three seeds load into one database side by side; each programme's planted
// cases raise their flags, and nothing else is flagged (the background
// programme is clean, so what the demo shows is what was planted). Loading
// a programme again writes nothing.
func TestLoadPlantsEveryCaseAndNothingElse(t *testing.T) {
	db := testdb.New(t)
	ctx := operator()
	st := Stores{Orgs: org.New(db.App), Roadmaps: roadmap.New(db.App), Ledger: ledger.New(db.App), FX: fx.New(db.App),
		Procurement: procurement.New(db.App)}
	det := detect.New(db.App, detect.DefaultConfig())
	count := func() (n [3]int) {
		for i, table := range []string{"transactions", "audit_events", "procurement_stages"} {
			if err := db.Owner.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n[i]); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	for _, seed := range []int64{1, 7, 1001} { // 1001: seeds a thousand apart must not collide
		p := Generate(seed, Today())
		l, err := Load(ctx, st, p, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if _, err := det.Run(ctx, uuid.MustParse(l.Roadmap.ID), time.Time{}); err != nil {
			t.Fatal(err)
		}
		flags, _, err := det.List(ctx, detect.ListFilter{RoadmapID: uuid.MustParse(l.Roadmap.ID), Status: "OPEN", PageSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		planted := map[string]bool{} // grant and milestone ids the cases name
		for _, c := range p.Cases {
			var ok bool
			for _, f := range flags {
				if f.Kind != c.Kind {
					continue
				}
				hasGrants := true
				for _, ref := range c.Grants {
					planted[l.Grants[ref]] = true
					hasGrants = hasGrants && slices.Contains(f.GrantIDs, l.Grants[ref])
				}
				hasMilestone := c.Milestone == ""
				for _, s := range f.Subjects {
					hasMilestone = hasMilestone || (s.Type == "milestone" && s.ID == l.Milestones[c.Milestone])
				}
				ok = ok || (hasGrants && hasMilestone)
			}
			if c.Milestone != "" {
				planted[l.Milestones[c.Milestone]] = true
			}
			if !ok {
				t.Errorf("seed %d: planted case %q raised no open %s flag naming its grants and milestone", seed, c.Name, c.Kind)
			}
		}
		for _, f := range flags {
			mine := false
			for _, g := range f.GrantIDs {
				mine = mine || planted[g]
			}
			for _, s := range f.Subjects {
				mine = mine || planted[s.ID]
			}
			if !mine {
				t.Errorf("seed %d: a flag no case planted: %s %s", seed, f.Kind, f.Explanation)
			}
		}
		t.Logf("seed %d: %d grants, %d entries, %d open flags for %d planted cases", seed, len(l.Grants), l.Entries, len(flags), len(p.Cases))

		before := count()
		if _, err := Load(ctx, st, p, nil); err != nil {
			t.Fatalf("seed %d, loaded again: %v", seed, err)
		}
		if after := count(); after != before {
			t.Errorf("seed %d: loading again changed (transactions, audit events, stages) from %v to %v", seed, before, after)
		}
	}
}
