package detect

import (
	"slices"
	"testing"
)

// moneyCase is one situation for one rule: the journal a setup builds, the
// day (and thresholds) the rule runs on, and the keys it must find (none:
// a near miss).
type moneyCase struct {
	name  string
	setup func(f *moneyFixture)
	asOf  string
	cfg   func(*Config)
	want  func(f *moneyFixture) []string
	check func(t *testing.T, f *moneyFixture, fs []finding) // optional: severity, evidence
}

func runMoneyCases(t *testing.T, kind string, cases []moneyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newMoneyFixture(t)
			c.setup(f)
			fs := f.run(kind, c.asOf, c.cfg)
			var want []string
			if c.want != nil {
				want = c.want(f)
			}
			slices.Sort(want)
			if got := keys(fs); !slices.Equal(got, want) {
				t.Fatalf("%s keys\n got %v\nwant %v\n(labels %v)", kind, got, want, f)
			}
			if c.check != nil {
				c.check(t, f, fs)
			}
			// A rerun finds the same findings.
			if again := f.run(kind, c.asOf, c.cfg); !slices.Equal(fingerprints(again), fingerprints(fs)) {
				t.Errorf("rerun: fingerprints %v, then %v", fingerprints(fs), fingerprints(again))
			}
		})
	}
}

func fingerprints(fs []finding) []string {
	out := make([]string, len(fs))
	for i, x := range fs {
		out[i] = x.fingerprint()
	}
	slices.Sort(out)
	return out
}

func keysOf(prefix string, labels ...string) func(f *moneyFixture) []string {
	return func(f *moneyFixture) []string { return []string{f.idsKey(prefix, labels...)} }
}

// twoDonors is an implementer, donors A and B, and USD grants gA, gB from
// each to the implementer for 2024–2025.
func twoDonors(f *moneyFixture) {
	f.parties("A", "B")
	f.grant("gA", "A", "impl", "USD", "2024-01-01", "2025-12-31")
	f.grant("gB", "B", "impl", "USD", "2024-01-01", "2025-12-31")
}

func disb(amount, day, ref string) tx {
	return tx{Type: "DISBURSEMENT", Amount: amount, Day: day, Ref: ref}
}

func TestDuplicateTransaction(t *testing.T) {
	t.Parallel()
	runMoneyCases(t, DuplicateTransaction, []moneyCase{
		{name: "same amount seven days apart", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", ""))
				f.entry("d2", "gA", disb("250000.00", "2024-03-08", ""))
			},
			want: keysOf("", "d1", "d2"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != High {
					t.Errorf("severity %s, want HIGH for disbursements", fs[0].Severity)
				}
				if got := fs[0].Evidence["matchedBy"]; !slices.Equal(got.([]string), []string{"amount"}) {
					t.Errorf("matchedBy %v", got)
				}
			}},
		{name: "eight days apart is not a duplicate", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", ""))
				f.entry("d2", "gA", disb("250000.00", "2024-03-09", ""))
			}},
		{name: "equal amounts from different donors on one day", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", ""))
				f.entry("d2", "gB", disb("250000.00", "2024-03-01", ""))
			}},
		{name: "across two grants of one donor to one recipient", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.grant("gA2", "A", "impl", "USD", "2024-06-01", "2025-12-31")
				f.entry("d1", "gA", disb("99000.00", "2024-07-01", "TR-1"))
				f.entry("d2", "gA2", disb("99000.00", "2024-07-03", ""))
			},
			want: keysOf("", "d1", "d2")},
		{name: "pledges of two grants of one pair are two agreements", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.grant("gA2", "A", "impl", "USD", "2024-01-01", "2025-12-31")
				f.entry("p1", "gA", tx{Type: "PLEDGE", Amount: "1000000.00", Day: "2024-01-01"})
				f.entry("p2", "gA2", tx{Type: "PLEDGE", Amount: "1000000.00", Day: "2024-01-01"})
			}},
		{name: "converted from another currency within the tolerance", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				f.parties("A")
				f.grant("gE", "A", "impl", "EUR", "2024-01-01", "2025-12-31")
				f.entry("d1", "gE", tx{Type: "DISBURSEMENT", Amount: "1000000.00", Reporting: "1086956.52", Day: "2024-05-02"})
				// the same payment entered in USD, converted at another day's rate
				f.entry("d2", "gE", tx{Type: "DISBURSEMENT", Amount: "1090000.00", Currency: "USD", Agreement: "1005000.00",
					Reporting: "1090000.00", Day: "2024-05-06"})
			},
			want: keysOf("", "d1", "d2"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				es := fs[0].Evidence["entries"].([]map[string]any)
				if got := es[1]["amount"].(map[string]string); got["currency"] != "USD" || got["amount"] != "1090000.00" {
					t.Errorf("entered amount %v", got)
				}
				if got := es[1]["agreementAmount"].(map[string]string); got["currency"] != "EUR" || got["amount"] != "1005000.00" {
					t.Errorf("agreement amount %v", got)
				}
			}},
		{name: "one unit beyond the amount tolerance", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				f.parties("A")
				f.grant("gE", "A", "impl", "EUR", "2024-01-01", "2025-12-31")
				f.entry("d1", "gE", tx{Type: "DISBURSEMENT", Amount: "1000000.00", Day: "2024-05-02"})
				// 0.5% of 1005025.13 is 5025.12575: 5025.13 apart is over
				f.entry("d2", "gE", tx{Type: "DISBURSEMENT", Amount: "1090000.00", Currency: "USD", Agreement: "1005025.13",
					Reporting: "1090000.00", Day: "2024-05-06"})
			}},
		{name: "a reversal and its original, and the corrected entry", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", "TR-9"))
				f.reverse("r1", "d1", "2024-03-02")
				f.entry("d2", "gA", disb("250000.00", "2024-03-02", "TR-9"))
			}},
		{name: "a reversal dated after the as-of day does not yet cancel", asOf: "2024-03-05",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", ""))
				f.entry("d2", "gA", disb("250000.00", "2024-03-02", ""))
				f.reverse("r2", "d2", "2024-03-10")
			},
			want: keysOf("", "d1", "d2")},
		{name: "instalments with distinct references", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("i1", "gA", disb("50000.00", "2024-01-05", "INST-2024-01"))
				f.entry("i2", "gA", disb("50000.00", "2024-01-12", "INST-2024-02"))
				f.entry("i3", "gA", disb("50000.00", "2024-01-19", "INST-2024-03"))
			}},
		{name: "one reference written with other case and punctuation", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("120000.00", "2024-02-01", "DE-2024/0017"))
				f.entry("d2", "gA", disb("80000.00", "2024-05-01", "de 2024 0017"))
			},
			want: keysOf("", "d1", "d2"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if got := fs[0].Evidence["matchedBy"]; !slices.Equal(got.([]string), []string{"reference"}) {
					t.Errorf("matchedBy %v", got)
				}
			}},
		{name: "one reference 91 days apart", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("120000.00", "2024-02-01", "DE-2024/0017"))
				f.entry("d2", "gA", disb("80000.00", "2024-05-02", "de 2024 0017"))
			}},
		{name: "a disbursement and its receipt are two types", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("60000.00", "2024-02-01", "TR-1"))
				f.entry("r1", "gA", tx{Type: "RECEIPT", Amount: "60000.00", Day: "2024-02-01", Ref: "TR-1"})
				f.entry("e1", "gA", tx{Type: "EXPENDITURE", Amount: "60000.00", Day: "2024-02-01", Ref: "TR-1"})
			}},
		{name: "receipts citing one reference are partial receipts", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", tx{Type: "RECEIPT", Amount: "60000.00", Day: "2024-02-01", Ref: "TR-1"})
				f.entry("r2", "gA", tx{Type: "RECEIPT", Amount: "40000.00", Day: "2024-02-09", Ref: "TR-1"})
			}},
		{name: "three copies are one finding", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", tx{Type: "EXPENDITURE", Amount: "4300.00", Day: "2024-04-01", Ref: "INV-77"})
				f.entry("e2", "gA", tx{Type: "EXPENDITURE", Amount: "4300.00", Day: "2024-04-02", Ref: "inv 77"})
				f.entry("e3", "gA", tx{Type: "EXPENDITURE", Amount: "4300.00", Day: "2024-04-03", Ref: "INV77"})
				f.entry("other", "gA", tx{Type: "EXPENDITURE", Amount: "4300.00", Day: "2024-04-02", Ref: "INV-78"})
			},
			want: keysOf("", "e1", "e2", "e3")},
		{name: "receipts: an instalment between two copies does not hide them", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("1000.00", "2024-03-01", "PAY-1"))
				f.entry("r2", "gA", rcpt("1000.00", "2024-03-02", "PAY-2"))
				f.entry("r3", "gA", rcpt("1000.00", "2024-03-03", "PAY-1"))
			},
			want: keysOf("", "r1", "r3")},
		{name: "disbursements: a close amount between two copies does not hide them", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("99600.00", "2024-03-01", ""))
				f.entry("d2", "gA", disb("100147.80", "2024-03-02", ""))
				f.entry("d3", "gA", disb("99600.00", "2024-03-03", ""))
			},
			want: keysOf("", "d1", "d3")},
		{name: "two unrelated entries between two copies do not hide them", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("1000.00", "2024-03-01", "PAY-1"))
				f.entry("r2", "gA", rcpt("1000.00", "2024-03-02", "PAY-2"))
				f.entry("r3", "gA", rcpt("1000.00", "2024-03-02", "PAY-3"))
				f.entry("r4", "gA", rcpt("1000.00", "2024-03-03", "PAY-1"))
			},
			want: keysOf("", "r1", "r4")},
		{name: "references of non-Latin letters only are references", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("99600.00", "2024-03-01", "Платіж"))
				f.entry("d2", "gA", disb("99600.00", "2024-03-02", "Рахунок"))
			}},
		{name: "as of a day before the copy, nothing", asOf: "2024-03-07",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("250000.00", "2024-03-01", ""))
				f.entry("d2", "gA", disb("250000.00", "2024-03-08", ""))
			}},
	})
}

func exp(amount, day, ref string) tx {
	return tx{Type: "EXPENDITURE", Amount: amount, Day: day, Ref: ref}
}

func TestDuplicateExpenditure(t *testing.T) {
	t.Parallel()
	runMoneyCases(t, DuplicateExpenditure, []moneyCase{
		{name: "one invoice against two donors' grants", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "INV-2024/001"))
				f.entry("e2", "gB", exp("18000.00", "2024-06-01", "inv 2024 001"))
				f.entry("e3", "gB", exp("500.00", "2024-06-01", "INV-2024/002"))
			},
			want: keysOf("", "e1", "e2"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != High || fs[0].Evidence["normalizedReference"] != "inv2024001" {
					t.Errorf("finding %+v", fs[0])
				}
			}},
		{name: "two Cyrillic documents with one number on two grants", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "Рахунок-17"))
				f.entry("e2", "gB", exp("18000.00", "2024-04-01", "Акт-17"))
			}},
		{name: "one Cyrillic document with punctuation noise on two grants", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "РАХ-17/А"))
				f.entry("e2", "gB", exp("18000.00", "2024-06-01", "РАХ 17 А"))
			},
			want: keysOf("", "e1", "e2")},
		{name: "the same number at two different recipients", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.org("impl2", "IMPLEMENTER")
				f.grant("gC", "B", "impl2", "USD", "2024-01-01", "2025-12-31")
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "INV-1"))
				f.entry("e2", "gC", exp("18000.00", "2024-04-01", "INV-1"))
			}},
		{name: "twice in one grant is a duplicate transaction, not double dipping", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "INV-1"))
				f.entry("e2", "gA", exp("18000.00", "2024-04-01", "INV-1"))
			}},
		{name: "the second claim reversed", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "INV-1"))
				f.entry("e2", "gB", exp("18000.00", "2024-04-01", "INV-1"))
				f.reverse("r2", "e2", "2024-04-20")
			}},
		{name: "as of a day before the second claim", asOf: "2024-04-19",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("e1", "gA", exp("18000.00", "2024-04-01", "INV-1"))
				f.entry("e2", "gB", exp("18000.00", "2024-04-20", "INV-1"))
			}},
	})
}

func TestOverfundedMilestone(t *testing.T) {
	t.Parallel()
	withMilestone := func(f *moneyFixture) {
		twoDonors(f)
		f.milestone("M1", "AF-HEL", "CLEARANCE", "1000000.00")
	}
	runMoneyCases(t, OverfundedMilestone, []moneyCase{
		{name: "two donors allocate one cent over the requirement", asOf: "2026-11-30",
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.01", "400000.01"})
			},
			want: keysOf("", "M1"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				x := fs[0]
				if x.Severity != High || x.Evidence["excess"].(map[string]string)["amount"] != "0.01" {
					t.Errorf("finding %+v", x)
				}
				if n := len(x.Evidence["donors"].([]map[string]any)); n != 2 {
					t.Errorf("%d donor shares, want 2", n)
				}
			}},
		{name: "exactly the requirement", asOf: "2026-11-30",
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
		{name: "within the tolerance", asOf: "2026-11-30", cfg: func(c *Config) { c.OverfundedTolerance = dec("0.10") },
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "1100000.00", "1100000.00"})
			}},
		{name: "one donor beyond the tolerance", asOf: "2026-11-30", cfg: func(c *Config) { c.OverfundedTolerance = dec("0.10") },
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "1100000.01", "1100000.01"})
			},
			want: keysOf("", "M1"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != Medium {
					t.Errorf("severity %s, want MEDIUM for one donor", fs[0].Severity)
				}
			}},
		{name: "replaced allocations count, not the earlier set", asOf: "2026-11-30",
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "900000.00", "900000.00"})
				f.allocate("gA", 2, "2024-03-01", [3]string{"M1", "500000.00", "500000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
		{name: "a past day sees the set in force then", asOf: "2024-02-15",
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "900000.00", "900000.00"})
				f.allocate("gA", 2, "2024-03-01", [3]string{"M1", "500000.00", "500000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			},
			want: keysOf("", "M1")},
		{name: "a past day before any allocation", asOf: "2024-01-31",
			setup: func(f *moneyFixture) {
				withMilestone(f)
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "900000.00", "900000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
	})
}

func TestOverlappingGrants(t *testing.T) {
	t.Parallel()
	runMoneyCases(t, OverlappingGrants, []moneyCase{
		{name: "two donors allocate to one milestone of one recipient", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			},
			want: func(f *moneyFixture) []string { return []string{f.idsKey("milestone:"+f.id("M1"), "gA", "gB")} },
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				gs := fs[0].Evidence["grants"].([]map[string]any)
				if fs[0].Severity != Medium || len(gs) != 2 {
					t.Fatalf("finding %+v", fs[0])
				}
				var amounts []string
				for _, g := range gs {
					amounts = append(amounts, g["allocated"].(map[string]string)["amount"]+" "+g["allocatedReporting"].(map[string]string)["currency"])
				}
				slices.Sort(amounts)
				if !slices.Equal(amounts, []string{"400000.00 USD", "600000.00 USD"}) {
					t.Errorf("allocations in evidence %v", amounts)
				}
			}},
		{name: "through entries tagged with the milestone", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.entry("d1", "gB", tx{Type: "DISBURSEMENT", Amount: "100000.00", Day: "2024-05-01", Milestone: "M1"})
			},
			want: func(f *moneyFixture) []string { return []string{f.idsKey("milestone:"+f.id("M1"), "gA", "gB")} }},
		{name: "one grant ended the day before", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				f.parties("A", "B")
				f.grant("gA", "A", "impl", "USD", "2024-01-01", "2025-12-31")
				f.grant("gB", "B", "impl", "USD", "2024-01-01", "2025-06-29")
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
		{name: "two grants of one donor", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.grant("gA2", "A", "impl", "USD", "2024-01-01", "2025-12-31")
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gA2", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
		{name: "two donors, two recipients", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				f.parties("A", "B")
				f.org("impl2", "IMPLEMENTER")
				f.grant("gA", "A", "impl", "USD", "2024-01-01", "2025-12-31")
				f.grant("gB", "B", "impl2", "USD", "2024-01-01", "2025-12-31")
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
		{name: "one region and activity, two milestones", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.milestone("M2", "AF-HEL", "CLEARANCE", "3000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M2", "400000.00", "400000.00"})
			},
			want: func(f *moneyFixture) []string {
				return []string{f.idsKey("area:"+f.id("impl")+"/AF-HEL/CLEARANCE", "gA", "gB")}
			},
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != Low || fs[0].Evidence["region"] != "AF-HEL" {
					t.Errorf("finding %+v", fs[0])
				}
			}},
		{name: "one region, different activities", asOf: "2025-06-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.milestone("M2", "AF-HEL", "EORE", "3000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-02-01", [3]string{"M2", "400000.00", "400000.00"})
			}},
		{name: "a past day before the second allocation", asOf: "2024-02-15",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.milestone("M1", "AF-HEL", "CLEARANCE", "5000000.00")
				f.allocate("gA", 1, "2024-02-01", [3]string{"M1", "600000.00", "600000.00"})
				f.allocate("gB", 1, "2024-03-01", [3]string{"M1", "400000.00", "400000.00"})
			}},
	})
}

func rcpt(amount, day, ref string) tx { return tx{Type: "RECEIPT", Amount: amount, Day: day, Ref: ref} }

func TestReceiptMismatch(t *testing.T) {
	t.Parallel()
	runMoneyCases(t, ReceiptMismatch, []moneyCase{
		{name: "no receipt 30 days after the disbursement", asOf: "2024-03-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
			},
			want: keysOf("missing", "d1"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != High || fs[0].Evidence["daysWithoutReceipt"] != 30 {
					t.Errorf("finding %+v", fs[0])
				}
			}},
		{name: "no receipt 29 days after", asOf: "2024-03-30",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
			}},
		{name: "received in full", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-05", "TR-1"))
			}},
		{name: "received in two parts", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("60000.00", "2024-03-05", "TR-1"))
				f.entry("r2", "gA", rcpt("40000.00", "2024-03-09", "TR-1"))
			}},
		{name: "received at exactly the tolerance", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("98000.00", "2024-03-05", "TR-1"))
			}},
		{name: "received one cent beyond the tolerance", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("97999.99", "2024-03-05", "TR-1"))
			},
			want: keysOf("variance", "d1"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Evidence["differenceReporting"].(map[string]string)["amount"] != "-2000.01" {
					t.Errorf("evidence %v", fs[0].Evidence)
				}
			}},
		{name: "a receipt in another currency compares in reporting currency", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", tx{Type: "RECEIPT", Amount: "91000.00", Currency: "EUR", Agreement: "99000.00", Reporting: "99000.00",
					Day: "2024-03-05", Ref: "TR-1"})
			}},
		{name: "a receipt without a disbursement, and one citing another reference", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-05", "TR 1"))
			},
			want: func(f *moneyFixture) []string {
				return []string{f.idsKey("missing", "d1"), f.idsKey("orphan", "r1")}
			}},
		{name: "a receipt whose disbursement is in another grant", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-05", "TR-1"))
				f.entry("r2", "gB", rcpt("100000.00", "2024-03-05", "TR-1"))
			},
			want: keysOf("orphan", "r2")},
		{name: "a reversed disbursement needs no receipt", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.reverse("x1", "d1", "2024-03-03")
			}},
		{name: "a second disbursement under one reference misses its receipt", asOf: "2024-12-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("d2", "gA", disb("50000.00", "2024-04-01", "TR-1"))
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-05", "TR-1"))
			},
			want: keysOf("missing", "d2")},
		{name: "a past day before the receipt", asOf: "2024-04-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("d1", "gA", disb("100000.00", "2024-03-01", "TR-1"))
				f.entry("r1", "gA", rcpt("100000.00", "2024-04-02", "TR-1"))
			},
			want: keysOf("missing", "d1")},
	})
}

func TestIdleFunds(t *testing.T) {
	t.Parallel()
	runMoneyCases(t, IdleFunds, []moneyCase{
		{name: "received six months ago, 80% unspent", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e1", "gA", exp("20000.00", "2024-08-01", "INV-1"))
			},
			want: keysOf("", "gA"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != Medium || fs[0].Evidence["unspentShare"] != "0.8" {
					t.Errorf("finding %+v", fs[0])
				}
			}},
		{name: "one cent more spent", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e1", "gA", exp("20000.01", "2024-08-01", "INV-1"))
			}},
		{name: "received a day less than six months ago", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-02", "TR-1"))
			}},
		{name: "nothing spent", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("r2", "gB", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e2", "gB", exp("90000.00", "2024-04-01", "INV-1"))
			},
			want: keysOf("", "gA"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Severity != High {
					t.Errorf("severity %s, want HIGH when nothing is spent", fs[0].Severity)
				}
			}},
		{name: "a reversed expenditure is not spending", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e1", "gA", exp("90000.00", "2024-04-01", "INV-1"))
				f.reverse("x1", "e1", "2024-05-01")
			},
			want: keysOf("", "gA")},
		{name: "spending after the as-of day does not count", asOf: "2024-09-01",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e1", "gA", exp("90000.00", "2024-09-02", "INV-1"))
			},
			want: keysOf("", "gA")},
		{name: "the same grant a day later, after that spending", asOf: "2024-09-02",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2024-03-01", "TR-1"))
				f.entry("e1", "gA", exp("90000.00", "2024-09-02", "INV-1"))
			}},
		{name: "at a month end, six months back clamps to February's last day", asOf: "2025-08-31",
			setup: func(f *moneyFixture) {
				twoDonors(f)
				f.entry("r1", "gA", rcpt("100000.00", "2025-02-28", "TR-1"))
				f.entry("r2", "gB", rcpt("100000.00", "2025-03-01", "TR-2"))
			},
			want: keysOf("", "gA"),
			check: func(t *testing.T, f *moneyFixture, fs []finding) {
				if fs[0].Evidence["receivedBy"] != "2025-02-28" {
					t.Errorf("receivedBy %v, want 2025-02-28", fs[0].Evidence["receivedBy"])
				}
			}},
	})
}

// TestDuplicatesOnHotKeys: many equal amounts of one pair on one day stay
// linear. 2 000 expenditures of one amount with distinct invoice numbers
// are not duplicates; 2 000 equal disbursements without references are one
// group (not 2 million pairs), and the same 2 000 invoice numbers claimed
// again on another donor's grant are 2 000 double-dipping groups of two.
func TestDuplicatesOnHotKeys(t *testing.T) {
	t.Parallel()
	f := newMoneyFixture(t)
	twoDonors(f)
	f.exec(`INSERT INTO transactions (id, grant_id, type, bucket, amount, currency, agreement_amount, reporting_amount,
		agreement_rate, reporting_rate, value_date, reference, recorded_by, recorded_role)
		SELECT gen_random_uuid(), g, t, t, 500, 'USD', 500, 500, 1, 1, '2024-05-01', ref, 'test', 'admin'
		FROM generate_series(1, 2000) i,
		LATERAL (VALUES ($1::uuid, 'EXPENDITURE', 'PAYSLIP-' || i), ($1::uuid, 'DISBURSEMENT', ''),
		                ($2::uuid, 'EXPENDITURE', 'payslip ' || i)) v(g, t, ref)`, f.id("gA"), f.id("gB"))
	fs := f.run(DuplicateTransaction, "2024-12-31", nil)
	if len(fs) != 1 || len(fs[0].Evidence["entries"].([]map[string]any)) != 2000 || fs[0].Evidence["type"] != "DISBURSEMENT" {
		t.Errorf("DUPLICATE_TRANSACTION found %d findings, want one group of the 2 000 disbursements", len(fs))
	}
	if fs := f.run(DuplicateExpenditure, "2024-12-31", nil); len(fs) != 2000 {
		t.Errorf("DUPLICATE_EXPENDITURE found %d groups, want 2 000", len(fs))
	}
}
