package testdb

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tracer records the statements a pool runs, so a test can EXPLAIN exactly
// what the code sends.
type Tracer struct {
	mu      sync.Mutex
	queries []traced
}

type traced struct {
	sql  string
	args []any
}

func (tr *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = append(tr.queries, traced{d.SQL, d.Args})
	return ctx
}

func (tr *Tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Capture runs fn and returns the one statement it ran containing marker.
func (tr *Tracer) Capture(t testing.TB, fn func() error, marker string) (string, []any) {
	t.Helper()
	var found []Statement
	for _, st := range tr.CaptureAll(t, fn) {
		if strings.Contains(st.SQL, marker) {
			found = append(found, st)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d statements contain %q, want 1", len(found), marker)
	}
	return found[0].SQL, found[0].Args
}

// Statement is one statement a traced pool ran, with its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// CaptureAll runs fn and returns every statement it ran, in order.
func (tr *Tracer) CaptureAll(t testing.TB, fn func() error) []Statement {
	t.Helper()
	tr.mu.Lock()
	tr.queries = nil
	tr.mu.Unlock()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]Statement, len(tr.queries))
	for i, q := range tr.queries {
		out[i] = Statement{q.sql, q.args}
	}
	return out
}

// TracedPool is a pool on db as the service connects (decimals registered)
// whose statements tr records.
func TracedPool(t testing.TB, db *DB, tr *Tracer) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = tr
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { pgxdecimal.Register(c.TypeMap()); return nil }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Plan is one node of a statement's plan as EXPLAIN (FORMAT JSON) gives it.
type Plan struct {
	NodeType     string `json:"Node Type"`
	RelationName string `json:"Relation Name"`
	IndexName    string `json:"Index Name"`
	ParentRel    string `json:"Parent Relationship"`
	Plans        []Plan `json:"Plans"`
}

// ExplainPlan returns the plan of sql with args bound, without running it.
func ExplainPlan(t testing.TB, pool *pgxpool.Pool, sql string, args []any) Plan {
	t.Helper()
	var raw []byte
	if err := pool.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("explaining %s: %v", sql, err)
	}
	var doc []struct{ Plan Plan }
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	return doc[0].Plan
}

// Walk visits every node of the plan, telling whether it runs once per row
// of something else: the inner side of a nested loop, or a subplan.
func (n Plan) Walk(visit func(n Plan, repeated bool)) { n.walk(false, visit) }

func (n Plan) walk(repeated bool, visit func(Plan, bool)) {
	visit(n, repeated)
	for i, c := range n.Plans {
		c.walk(repeated || c.ParentRel == "SubPlan" || (n.NodeType == "Nested Loop" && i == 1), visit)
	}
}

// PlanText is the plan of sql as EXPLAIN prints it, for failure messages.
func PlanText(t testing.TB, pool *pgxpool.Pool, sql string, args []any) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "EXPLAIN "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// Explain returns the scans of sql's plan with args bound: "index:NAME" for
// an index (plain, index-only or bitmap) scan, "seq:TABLE" for a sequential one.
func Explain(t testing.TB, pool *pgxpool.Pool, sql string, args []any) []string {
	t.Helper()
	var scans []string
	ExplainPlan(t, pool, sql, args).Walk(func(n Plan, _ bool) {
		switch {
		case n.IndexName != "":
			scans = append(scans, "index:"+n.IndexName)
		case n.NodeType == "Seq Scan":
			scans = append(scans, "seq:"+n.RelationName)
		}
	})
	return scans
}
