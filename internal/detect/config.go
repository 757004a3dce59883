package detect

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// Config holds the thresholds of the rules. DefaultConfig gives the
// documented defaults; a deployment overrides any of them with a JSON file
// of the same field names (LoadConfig). The package doc and the README list
// them.
type Config struct {
	// DUPLICATE_TRANSACTION: two entries of one grant (or of one donor to
	// one recipient) of the same type whose amounts agree within
	// DuplicateAmountTolerance (a share of the larger, in agreement
	// currency) and whose value dates are at most DuplicateWindowDays apart;
	// or whose normalised payment references are equal and value dates at
	// most DuplicateReferenceWindowDays apart.
	DuplicateWindowDays          int             `json:"duplicateWindowDays"`
	DuplicateAmountTolerance     decimal.Decimal `json:"duplicateAmountTolerance"`
	DuplicateReferenceWindowDays int             `json:"duplicateReferenceWindowDays"`
	// RECEIPT_MISMATCH: a disbursement with no receipt ReceiptWindowDays
	// after its value date; a receipt with no disbursement; a matched pair
	// whose reporting-currency amounts differ by more than ReceiptTolerance
	// (a share of the disbursement).
	ReceiptWindowDays int             `json:"receiptWindowDays"`
	ReceiptTolerance  decimal.Decimal `json:"receiptTolerance"`
	// OVERFUNDED_MILESTONE: allocations to a milestone above its funding
	// requirement by more than OverfundedTolerance (a share of the
	// requirement).
	OverfundedTolerance decimal.Decimal `json:"overfundedTolerance"`
	// PROCUREMENT_STALLED: days an item may stay in each open stage.
	StageDwellDays map[string]int `json:"stageDwellDays"`
	// MILESTONE_AT_RISK: a milestone due within AtRiskDays (or overdue and
	// not completed) with undelivered critical procurement or a funding gap
	// above AtRiskGapShare of its requirement.
	AtRiskDays     int             `json:"atRiskDays"`
	AtRiskGapShare decimal.Decimal `json:"atRiskGapShare"`
	// IDLE_FUNDS: money received at least IdleMonths ago of which at least
	// IdleShare is still unspent.
	IdleMonths int             `json:"idleMonths"`
	IdleShare  decimal.Decimal `json:"idleShare"`
}

// OpenStages are the procurement stages an item can stall in, in order.
var OpenStages = []string{"REQUISITIONED", "TENDERED", "EVALUATED", "AWARDED", "CONTRACTED", "DELIVERED"}

// DefaultConfig is the thresholds a deployment gets unless it says otherwise.
func DefaultConfig() Config {
	return Config{
		DuplicateWindowDays:          7,
		DuplicateAmountTolerance:     decimal.RequireFromString("0.005"),
		DuplicateReferenceWindowDays: 90,
		ReceiptWindowDays:            30,
		ReceiptTolerance:             decimal.RequireFromString("0.02"),
		OverfundedTolerance:          decimal.Zero,
		StageDwellDays: map[string]int{
			"REQUISITIONED": 30, "TENDERED": 60, "EVALUATED": 30,
			"AWARDED": 30, "CONTRACTED": 120, "DELIVERED": 30,
		},
		AtRiskDays:     90,
		AtRiskGapShare: decimal.RequireFromString("0.10"),
		IdleMonths:     6,
		IdleShare:      decimal.RequireFromString("0.80"),
	}
}

// LoadConfig reads thresholds as JSON over the defaults: fields left out
// keep their default, unknown fields are refused, and the result is
// verified. A stageDwellDays object replaces only the stages it names.
func LoadConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	dwell := c.StageDwellDays
	c.StageDwellDays = nil
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("reading detection thresholds: %w", err)
	}
	for k, v := range c.StageDwellDays {
		dwell[k] = v
	}
	for k := range c.StageDwellDays {
		if !slices.Contains(OpenStages, k) {
			return Config{}, apperr.Invalid("stageDwellDays."+k, "not an open stage (want one of %s)", strings.Join(OpenStages, ", "))
		}
	}
	c.StageDwellDays = dwell
	return c, c.Verify()
}

// Verify refuses thresholds no rule can use, naming the field.
func (c Config) Verify() error {
	var v apperr.Validator
	days := func(field string, n int) { v.Check(n >= 0 && n <= 3650, field, "must be 0 to 3650 days, got %d", n) }
	share := func(field string, d decimal.Decimal) {
		v.Check(!d.IsNegative() && d.LessThanOrEqual(decimal.NewFromInt(1)), field, "must be a share from 0 to 1, got %s", d)
	}
	days("duplicateWindowDays", c.DuplicateWindowDays)
	share("duplicateAmountTolerance", c.DuplicateAmountTolerance)
	days("duplicateReferenceWindowDays", c.DuplicateReferenceWindowDays)
	days("receiptWindowDays", c.ReceiptWindowDays)
	share("receiptTolerance", c.ReceiptTolerance)
	share("overfundedTolerance", c.OverfundedTolerance)
	for _, st := range OpenStages {
		n, ok := c.StageDwellDays[st]
		v.Check(ok, "stageDwellDays."+st, "missing")
		days("stageDwellDays."+st, n)
	}
	days("atRiskDays", c.AtRiskDays)
	share("atRiskGapShare", c.AtRiskGapShare)
	v.Check(c.IdleMonths >= 1 && c.IdleMonths <= 120, "idleMonths", "must be 1 to 120 months, got %d", c.IdleMonths)
	share("idleShare", c.IdleShare)
	return v.Err()
}
