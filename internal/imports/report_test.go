package imports

import "testing"

// A retried attempt starts from the report as it was before: what the
// failed attempt appended to any list does not carry over.
func TestReportCloneKeepsListsApart(t *testing.T) {
	base := Report{Notes: make([]string, 0, 8), Rounded: make([]Rounded, 0, 8), Variances: make([]Variance, 0, 8),
		Skipped: make([]Problem, 0, 8), NotCounted: make([]Note, 0, 8)}
	attempt := base.clone()
	attempt.Notes = append(attempt.Notes, "n")
	attempt.Rounded = append(attempt.Rounded, Rounded{Record: "flow 1"})
	attempt.Variances = append(attempt.Variances, Variance{Record: "flow 1"})
	attempt.Skipped = append(attempt.Skipped, Problem{Record: "flow 1"})
	attempt.NotCounted = append(attempt.NotCounted, Note{Record: "flow 1"})
	again := base.clone()
	if len(again.Notes)+len(again.Rounded)+len(again.Variances)+len(again.Skipped)+len(again.NotCounted) != 0 {
		t.Fatalf("a second attempt sees the first's lists: %+v", again)
	}
	// Appending within spare capacity must not write into the base's array either.
	if base.Notes[:1:1][0] != "" && cap(base.Notes) > 0 {
		t.Fatalf("the base's array was written: %q", base.Notes[:1])
	}
}
