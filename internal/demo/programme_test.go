package demo

import (
	"reflect"
	"testing"
	"time"
)

var testDay = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// The same seed and day give the same programme; another seed another one.
func TestGenerateIsDeterministic(t *testing.T) {
	a, b := Generate(1, testDay), Generate(1, testDay)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two programmes of seed 1 differ")
	}
	c := Generate(2, testDay)
	if reflect.DeepEqual(a.Grants, c.Grants) {
		t.Fatal("seeds 1 and 2 gave the same grants")
	}
}

// The programme has the proportions the issue asks for, whatever the seed.
func TestGenerateProportions(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		p := Generate(seed, testDay)
		donors, impl := 0, 0
		for _, o := range p.Orgs {
			switch o.Kind {
			case "DONOR":
				donors++
			case "IMPLEMENTER":
				impl++
			}
		}
		curs := map[string]bool{}
		for _, g := range p.Grants {
			curs[g.Currency] = true
		}
		acts := map[string]bool{}
		for _, m := range p.Milestones {
			acts[m.Activity] = true
		}
		if n := len(p.Milestones); n < 10 || n > 20 {
			t.Errorf("seed %d: %d milestones", seed, n)
		}
		if donors < 8 || donors > 12 || impl < 5 || impl > 8 {
			t.Errorf("seed %d: %d donors, %d implementers", seed, donors, impl)
		}
		if n := len(p.Grants); n < 40 || n > 80 {
			t.Errorf("seed %d: %d grants", seed, n)
		}
		if len(curs) < 5 || !curs["JPY"] || !curs["KWD"] {
			t.Errorf("seed %d: currencies %v", seed, curs)
		}
		if len(acts) < 6 {
			t.Errorf("seed %d: activities %v", seed, acts)
		}
		if n := len(p.Entries); n < 300 {
			t.Errorf("seed %d: %d entries", seed, n)
		}
		if len(p.Cases) != 9 {
			t.Errorf("seed %d: %d planted cases", seed, len(p.Cases))
		}
		for _, e := range p.Entries {
			if e.Date.After(testDay) {
				t.Fatalf("seed %d: entry %s dated %s, after the day", seed, e.Reference, e.Date)
			}
		}
		t.Logf("seed %d: %d grants, %d entries, %d items, %d rates, currencies %d", seed, len(p.Grants), len(p.Entries), len(p.Items), len(p.Rates), len(curs))
	}
}
