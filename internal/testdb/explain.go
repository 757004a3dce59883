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

// Explain returns the scans of sql's plan with args bound: "index:NAME" for
// an index (plain, index-only or bitmap) scan, "seq:TABLE" for a sequential one.
func Explain(t testing.TB, pool *pgxpool.Pool, sql string, args []any) []string {
	t.Helper()
	var doc []struct{ Plan planNode }
	var raw []byte
	if err := pool.QueryRow(context.Background(), "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		t.Fatalf("explaining %s: %v", sql, err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	var scans []string
	var walk func(n planNode)
	walk = func(n planNode) {
		switch {
		case n.IndexName != "":
			scans = append(scans, "index:"+n.IndexName)
		case n.NodeType == "Seq Scan":
			scans = append(scans, "seq:"+n.RelationName)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	return scans
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	IndexName    string     `json:"Index Name"`
	RelationName string     `json:"Relation Name"`
	Plans        []planNode `json:"Plans"`
}
