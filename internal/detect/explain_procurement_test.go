package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tranche-ledger/tranche/internal/testdb"
)

// procPlanScan is one scan of an executed plan.
type procPlanScan struct {
	node, relation, index string
	loops                 int
}

func (p procPlanScan) String() string {
	return fmt.Sprintf("%s on %s%s ×%d", p.node, p.relation, map[bool]string{true: " using " + p.index}[p.index != ""], p.loops)
}

// analyzedScans runs sql under EXPLAIN ANALYZE and returns its scans.
func analyzedScans(t *testing.T, db *testdb.DB, sql string, args []any) []procPlanScan {
	t.Helper()
	type node struct {
		NodeType     string `json:"Node Type"`
		RelationName string `json:"Relation Name"`
		IndexName    string `json:"Index Name"`
		Loops        int    `json:"Actual Loops"`
		Plans        []node `json:"Plans"`
	}
	var raw []byte
	if err := db.App.QueryRow(context.Background(), "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("explaining %s: %v", sql, err)
	}
	var doc []struct{ Plan node }
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	var out []procPlanScan
	var walk func(n node)
	walk = func(n node) {
		if strings.Contains(n.NodeType, "Scan") && n.RelationName != "" || n.IndexName != "" {
			out = append(out, procPlanScan{n.NodeType, n.RelationName, n.IndexName, n.Loops})
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	return out
}

// Each procurement rule is one statement whose plan, on a programme of
// 30 000 entries (3 000 grants, about 1 100 items), reads the stage history
// once (one ordered pass, or one index probe per item for the few items of
// milestones due), never a sequential scan of it per item, and scans no
// table that grows with the programme once per row of another.
func TestProcurementRulePlans(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	res := generate(t, db, 30_000, 3, true)
	ctx := context.Background()
	tr := &testdb.Tracer{}
	pool := testdb.TracedPool(t, db, tr)
	s, err := loadScope(ctx, pool, res.Roadmap, genAsOf, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	growing := []string{"procurement_items", "procurement_stages", "grants", "grant_balances", "allocations", "transactions", "milestones"}
	markers := map[string]string{ProcurementStalled: "lim(stage, days)", ProcurementLate: "i.expected_delivery_date < $2", MilestoneAtRisk: "WITH due AS"}
	for _, r := range procurementRules {
		var found int
		sql, args := tr.Capture(t, func() error {
			fs, err := r.find(ctx, pool, s)
			found = len(fs)
			return err
		}, markers[r.kind])
		scans := analyzedScans(t, db, sql, args)
		t.Logf("%s (%d findings): %v", r.kind, found, scans)
		if found == 0 {
			t.Errorf("%s found nothing: the plan was not exercised", r.kind)
		}
		probed := false
		for _, sc := range scans {
			if sc.relation == "procurement_stages" {
				if sc.index != "procurement_stages_item_day" && sc.loops > 1 {
					t.Errorf("%s scans the stage history once per item: %v", r.kind, sc)
				}
				probed = true
			}
			if sc.node == "Seq Scan" && sc.loops > 1 && slices.Contains(growing, sc.relation) {
				t.Errorf("%s scans %s once per row of another table: %v", r.kind, sc.relation, sc)
			}
		}
		if !probed {
			t.Errorf("%s never reads the stages: %v", r.kind, scans)
		}
	}
}
