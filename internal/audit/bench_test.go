package audit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tranche-ledger/tranche/internal/audit"
	"github.com/tranche-ledger/tranche/internal/postgres"
	"github.com/tranche-ledger/tranche/internal/testdb"
)

// BenchmarkAuditTrailOverhead measures what the audit trail costs a
// mutation: 8 concurrent clients create organisations (idempotency key and
// row, pipelined in one transaction) with and without the audit event, the sealer
// running as in a server, in one run on one database. It prints both rates and
// their ratio; the target is a ratio of at least 0.7.
//
//	go test -run '^$' -bench AuditTrailOverhead -benchtime 1x ./internal/audit/
func BenchmarkAuditTrailOverhead(b *testing.B) {
	db := testdb.New(b)
	const clients, perClient = 8, 1000
	phase := 0
	run := func(withTrail bool) float64 {
		phase++
		ctx, cancel := context.WithCancel(coordinator())
		defer cancel()
		if withTrail {
			s := audit.NewSealer(db.App)
			go s.Run(ctx)
		}
		return testdb.Rate(b, clients, perClient, func(c, i int) error {
			return mutation(ctx, db.App, fmt.Sprintf("%d-%d-%d", phase, c, i), withTrail)
		})
	}
	for b.Loop() {
		run(false) // warm-up: connections, caches, statement preparation
		without := run(false)
		with := run(true)
		b.ReportMetric(without, "mutations/s_without_trail")
		b.ReportMetric(with, "mutations/s_with_trail")
		b.ReportMetric(with/without, "ratio")
		b.Logf("8 clients: %.0f mutations/s without the audit trail, %.0f with it: ratio %.2f", without, with, with/without)
	}
}

// mutation writes like the ledger does: every statement after the
// transaction starts goes out in one pipelined batch.
func mutation(ctx context.Context, pool *pgxpool.Pool, rid string, withTrail bool) error {
	id := uuid.Must(uuid.NewV7()).String()
	return postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO idempotency_keys (method, request_id, payload_sha256, entity_id) VALUES ('bench', $1, '\x00', $2)`, rid, id)
		b.Queue(`INSERT INTO organizations (id, name, kind) VALUES ($1, $2, 'DONOR')`, id, rid)
		if withTrail {
			if err := audit.Queue(ctx, b, audit.Entry{EntityType: "organization", EntityID: id, Change: map[string]string{"id": id, "name": rid}}); err != nil {
				return err
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
}
