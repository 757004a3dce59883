package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/auth"
	"github.com/tranche-ledger/tranche/internal/ledger"
	"github.com/tranche-ledger/tranche/internal/roadmap"
)

func TestBatchRecordIsAllOrNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	a := w.grant("USD", "A", "0")
	b := w.grant("EUR", "B", "0")
	admin := as(auth.Admin, "")
	count := func(sql string) (n int) {
		if err := w.db.Owner.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	entries := []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "COMMITMENT", Amount: amt("500.00", "USD"), ValueDate: day("2024-02-01")},
		{GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("200.00", "USD"), ValueDate: day("2024-02-02"), Reference: "A-1"},
		{GrantID: id(b.ID), Type: "COMMITMENT", Amount: amt("90.00", "EUR"), ValueDate: day("2024-02-01")},
	}
	got := try(w.l.BatchRecord(admin, entries, "batch-1")).must(t)
	if len(got) != 3 || got[1].Type != "DISBURSEMENT" {
		t.Fatalf("batch recorded %+v", got)
	}
	eq(t, "EUR commitment in USD", got[2].ReportingAmount, "100.00") // 90 / 0.90
	// One audit event per grant the batch touched.
	if n := count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch'`); n != 2 {
		t.Fatalf("%d batch audit events, want 2", n)
	}
	again := try(w.l.BatchRecord(admin, entries, "batch-1")).must(t)
	for i := range got {
		if again[i].ID != got[i].ID {
			t.Fatalf("replay returned other entries")
		}
		// Each entry names its batch, whose audit events carry the same id,
		// fresh from the batch and read back alike.
		if got[i].BatchID == "" || got[i].BatchID != got[0].BatchID || again[i].BatchID != got[i].BatchID {
			t.Fatalf("entry %d: batch id %q, replayed %q, first %q", i, got[i].BatchID, again[i].BatchID, got[0].BatchID)
		}
		if got[i].RecordedAt.IsZero() || !got[i].RecordedAt.Equal(again[i].RecordedAt) {
			t.Fatalf("entry %d: recorded at %v, read back %v", i, got[i].RecordedAt, again[i].RecordedAt)
		}
	}
	if n := count(`SELECT count(*) FROM audit_events WHERE entity_type = 'transaction_batch' AND entity_id = '` + got[0].BatchID + `'`); n != 2 {
		t.Fatalf("%d audit events carry the batch id, want 2", n)
	}
	if single := w.record(w.donor(b), b, "DISBURSEMENT", "1.00", "EUR", "2024-02-03", "B-0"); single.BatchID != "" || single.RecordedAt.IsZero() {
		t.Fatalf("an entry recorded alone: batch id %q, recorded at %v", single.BatchID, single.RecordedAt)
	}
	before := count(`SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events)`)

	// Entries are applied in order: the second breaks disbursed ≤ committed, so none is written.
	_, err := w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("100.00", "USD"), ValueDate: day("2024-03-01"), Reference: "A-2"},
		{GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("200.01", "USD"), ValueDate: day("2024-03-01"), Reference: "A-3"},
	}, "batch-2")
	if !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("over-disbursing batch: %v", err)
	}
	_, err = w.l.BatchRecord(admin, []ledger.EntryInput{entries[0], {GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("1.001", "USD"), ValueDate: day("2024-03-01")}}, "batch-3")
	var inv *apperr.InvalidError
	if !errors.As(err, &inv) || inv.Violations[0].Field != "[1].amount.amount" {
		t.Fatalf("bad second entry: %v", err)
	}
	if after := count(`SELECT (SELECT count(*) FROM transactions) + (SELECT count(*) FROM audit_events)`); after != before {
		t.Fatalf("refused batches wrote %d rows", after-before)
	}
	// A later batch may reverse an entry of an earlier one.
	withReversal := try(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("50.00", "USD"), ValueDate: day("2024-03-01"), Reference: "A-4"},
	}, "batch-4")).must(t)
	try(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "REVERSAL", ReversesID: id(withReversal[0].ID), ValueDate: day("2024-03-02")},
	}, "batch-5")).must(t)
	// An entry is reversed once: not again by a later batch, nor twice in one.
	a5 := withReversal[0].ID
	if _, err := w.l.BatchRecord(admin, []ledger.EntryInput{{GrantID: id(a.ID), Type: "REVERSAL", ReversesID: id(a5), ValueDate: day("2024-03-03")}}, "batch-6"); !errors.Is(err, apperr.ErrFailedPrecondition) {
		t.Fatalf("reversing a reversed entry in a batch: %v", err)
	}
	twice := try(w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "DISBURSEMENT", Amount: amt("5.00", "USD"), ValueDate: day("2024-03-01"), Reference: "A-5"}}, "batch-7")).must(t)
	if _, err := w.l.BatchRecord(admin, []ledger.EntryInput{
		{GrantID: id(a.ID), Type: "REVERSAL", ReversesID: id(twice[0].ID), ValueDate: day("2024-03-03")},
		{GrantID: id(a.ID), Type: "REVERSAL", ReversesID: id(twice[0].ID), ValueDate: day("2024-03-03")},
	}, "batch-8"); !errors.As(err, &inv) || inv.Violations[0].Field != "[1].reversesTransactionId" {
		// The request contradicts itself: refused before anything is read.
		t.Fatalf("reversing one entry twice in a batch: %v", err)
	}
	try(w.l.BatchRecord(admin, []ledger.EntryInput{{GrantID: id(a.ID), Type: "REVERSAL", ReversesID: id(twice[0].ID), ValueDate: day("2024-03-03")}}, "batch-9")).must(t)
	r := try(w.l.Reconcile(coord, id(a.ID), time.Time{})).must(t)
	eq(t, "A disbursed", r.Agreement.Disbursed, "200.00")
	checkReplay(t, w)
}

func TestRecordRetryAndReuseOfRequestID(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	g := w.grant("USD", "RETRY", "0")
	dn := w.donor(g)
	in := ledger.EntryInput{GrantID: id(g.ID), Type: "COMMITMENT", Amount: amt("100.00", "USD"), ValueDate: day("2024-02-01")}
	first := try(w.l.RecordTransaction(dn, in, "same")).must(t)
	again := try(w.l.RecordTransaction(dn, in, "same")).must(t)
	if again.ID != first.ID || !again.Amount.Equal(first.Amount) {
		t.Fatalf("retry returned %+v, want %+v", again, first)
	}
	in.Amount = amt("200.00", in.Amount.Currency)
	if _, err := w.l.RecordTransaction(dn, in, "same"); !errors.Is(err, apperr.ErrAlreadyExists) {
		t.Fatalf("same request id, other amount: %v", err)
	}
	r := try(w.l.Reconcile(coord, id(g.ID), time.Time{})).must(t)
	eq(t, "committed", r.Agreement.Committed, "100.00")
	checkReplay(t, w)
}

// What a create answers is what a read or a retry answers later.
func TestCreateAnswersWhatIsStored(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	in := ledger.GrantInput{RoadmapID: id(w.roadmap.ID), DonorOrgID: id(w.donors["USD"]), RecipientOrgID: id(w.impl), Reference: "ST-1",
		Title: "Stored", Currency: "USD", Pledged: amt("10.00", "USD"), StartDate: day("2024-01-01"), EndDate: day("2024-12-31")}
	donor := as(auth.Donor, w.donors["USD"])
	g := try(w.l.CreateGrant(donor, in, "st-1")).must(t)
	again := try(w.l.CreateGrant(donor, in, "st-1")).must(t)
	if g.CreatedAt.IsZero() || !g.CreatedAt.Equal(again.CreatedAt) {
		t.Errorf("created at %v, on retry %v", g.CreatedAt, again.CreatedAt)
	}
	m := try(w.roadmaps.CreateMilestone(coord, id(w.roadmap.ID), roadmap.MilestoneInput{Code: "M-9", Title: "Survey", ActivityType: "SURVEY",
		Region: "  AF-KAN ", TargetUnit: " m2 ", FundingRequirement: amt("1.00", "USD")}, "m-9")).must(t)
	if m.Region != "AF-KAN" || m.TargetUnit != "m2" {
		t.Errorf("milestone stored region %q, unit %q; want them trimmed as validated", m.Region, m.TargetUnit)
	}
}
