package detect

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRunWrites measures what the engine adds to the rules: writing
// the findings of one run as flags (derive visibility, upsert, history,
// audit), for 20 000 findings each naming two of 2 000 grants. It prints
// seconds for a first run (every flag new), a rerun finding the same, a
// rerun with every evidence changed, and a run finding half (the rest
// resolved).
//
//	go test -run '^$' -bench RunWrites -benchtime 1x ./internal/detect/
func BenchmarkRunWrites(b *testing.B) {
	for range b.N {
		w := newWorld(&testing.T{})
		ctx := context.Background()
		if _, err := w.db.Owner.Exec(ctx, `INSERT INTO grants (id, roadmap_id, donor_org_id, recipient_org_id, reference, title, currency, start_date, end_date)
			SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, $1, $2, $3, 'B-' || i, 'grant', 'USD', '2024-01-01', '2025-12-31'
			FROM generate_series(1, 2000) i`, w.roadmap, w.donor1, w.ngo1); err != nil {
			b.Fatal(err)
		}
		grant := func(i int) Subject {
			return Subject{Type: SubjectGrant, ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", 1+i%2000)}
		}
		const n = 20000
		findings := func(evidence, count int) []finding {
			out := make([]finding, count)
			for i := range out {
				out[i] = f(fmt.Sprint("k", i), evidence, grant(i), grant(i+1))
			}
			return out
		}
		step := func(name string, fs []finding) {
			w.r.set(fs...)
			start := time.Now()
			r, err := w.s.Run(coord, w.roadmap, time.Time{})
			if err != nil {
				b.Fatal(err)
			}
			c := counts(r, DuplicateTransaction)
			b.Logf("%-28s %6.2f s  new %d reopened %d stillOpen %d resolved %d", name, time.Since(start).Seconds(),
				c.New, c.Reopened, c.StillOpen, c.Resolved)
		}
		step("first run, all new", findings(1, n))
		step("rerun, unchanged", findings(1, n))
		step("rerun, evidence changed", findings(2, n))
		step("half gone", findings(2, n/2))
		step("all back", findings(2, n))
	}
}
