package fts

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shopspring/decimal"
)

// Reasons a flow is or is not counted in the incoming totals.
const (
	ReasonIncoming       = "incoming: money entering the location and year"
	ReasonParkedChild    = "incoming child of a parked flow: counted; its parent's amountUSD no longer includes it"
	ReasonParkedParent   = "incoming parked parent: counted for the remainder not yet split into children (its amountUSD excludes them)"
	ReasonInternal       = "internal: passes on money already counted when it came in"
	ReasonShared         = "onBoundary shared: spans several locations or usage years, only part of it is this query's; FTS leaves it out of the total"
	ReasonOutgoing       = "outgoing: leaves the location"
	ReasonPledgeNotFunds = "incoming pledge: counted in the pledge total, not the funding total"
)

// Classification says whether a flow counts in the source's incoming
// totals, and who its donor and recipient are.
type Classification struct {
	FlowID  string
	Counted bool
	Reason  string

	Donor, Recipient Object
	HasDonor         bool
	HasRecipient     bool
	// DonorFrom/RecipientFrom say where the party was read: "flow" (its
	// own objects) or "parent" (inherited from its parked parent, an
	// inferred value).
	DonorFrom, RecipientFrom string

	Grant GrantKey
}

// GrantKey identifies the donor → recipient agreement a flow belongs to:
// the flow itself, or, for a child of a parked flow, that parked parent,
// split by recipient (a parked parent's children go to several recipients).
type GrantKey struct {
	Agreement    string // FTS flow id of the agreement: the parked parent or the flow
	DonorOrg     string // FTS organisation id, "" when unknown
	RecipientOrg string // FTS organisation id, "" when unknown
}

func (k GrantKey) String() string {
	return fmt.Sprintf("fts:%s:%s>%s", k.Agreement, orUnknown(k.DonorOrg), orUnknown(k.RecipientOrg))
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// Classify applies the counting rules (see the package doc) to every flow.
func Classify(flows []Flow) []Classification {
	byID := make(map[string]*Flow, len(flows))
	for i := range flows {
		byID[flows[i].ID] = &flows[i]
	}
	out := make([]Classification, len(flows))
	for i := range flows {
		f := &flows[i]
		c := Classification{FlowID: f.ID}
		switch {
		case f.Boundary == BoundaryInternal:
			c.Reason = ReasonInternal
		case f.Boundary == BoundaryOutgoing:
			c.Reason = ReasonOutgoing
		case f.OnBoundary == OnBoundaryShared:
			c.Reason = ReasonShared
		case f.Status == "pledge":
			c.Counted, c.Reason = true, ReasonPledgeNotFunds
		case f.IsParkedParent():
			c.Counted, c.Reason = true, ReasonParkedParent
		case f.ParentFlowID != "":
			c.Counted, c.Reason = true, ReasonParkedChild
		default:
			c.Counted, c.Reason = true, ReasonIncoming
		}
		parent := byID[f.ParentFlowID]
		if o, ok := f.Source.Organization(); ok {
			c.Donor, c.HasDonor, c.DonorFrom = o, true, "flow"
		} else if parent != nil {
			if o, ok := parent.Source.Organization(); ok {
				c.Donor, c.HasDonor, c.DonorFrom = o, true, "parent"
			}
		}
		if o, ok := f.Destination.Organization(); ok {
			c.Recipient, c.HasRecipient, c.RecipientFrom = o, true, "flow"
		} else if parent != nil {
			if o, ok := parent.Destination.Organization(); ok {
				c.Recipient, c.HasRecipient, c.RecipientFrom = o, true, "parent"
			}
		}
		agreement := f.ID
		if f.ParentFlowID != "" {
			agreement = f.ParentFlowID
		}
		c.Grant = GrantKey{Agreement: agreement, DonorOrg: c.Donor.ID, RecipientOrg: c.Recipient.ID}
		out[i] = c
	}
	return out
}

// Totals are the import's figures in the source's own terms.
type Totals struct {
	// FundingUSD: Σ reported amountUSD of counted commitment and paid
	// flows; equals data.incoming.fundingTotal.
	FundingUSD decimal.Decimal
	// PledgeUSD: Σ of counted pledges; equals data.incoming.pledgeTotal.
	PledgeUSD decimal.Decimal
	// IncomingFlows counts every boundary=incoming flow (shared ones too),
	// as data.incoming.flowCount does; CountedFlows those in the totals.
	IncomingFlows, InternalFlows, OutgoingFlows, CountedFlows int
	// ByStatus: counted flows' reported USD per FTS status.
	ByStatus map[string]decimal.Decimal
	// ByCurrency: counted flows in their agreement currency (original
	// currency, or USD inferred), and ByCurrencyUSD their reported USD.
	ByCurrency    map[string]decimal.Decimal
	ByCurrencyUSD map[string]decimal.Decimal
	// NotCountedUSD: reported USD left out, per reason.
	NotCountedUSD map[string]decimal.Decimal
}

// ComputeTotals sums the flows under their classification.
func ComputeTotals(flows []Flow, cls []Classification) Totals {
	t := Totals{
		ByStatus: map[string]decimal.Decimal{}, ByCurrency: map[string]decimal.Decimal{},
		ByCurrencyUSD: map[string]decimal.Decimal{}, NotCountedUSD: map[string]decimal.Decimal{},
	}
	for i := range flows {
		f, c := &flows[i], cls[i]
		switch f.Boundary {
		case BoundaryIncoming:
			t.IncomingFlows++
		case BoundaryInternal:
			t.InternalFlows++
		case BoundaryOutgoing:
			t.OutgoingFlows++
		}
		if !c.Counted {
			t.NotCountedUSD[c.Reason] = t.NotCountedUSD[c.Reason].Add(f.AmountUSD)
			continue
		}
		t.CountedFlows++
		if f.Status == "pledge" {
			t.PledgeUSD = t.PledgeUSD.Add(f.AmountUSD)
		} else {
			t.FundingUSD = t.FundingUSD.Add(f.AmountUSD)
		}
		t.ByStatus[f.Status] = t.ByStatus[f.Status].Add(f.AmountUSD)
		t.ByCurrency[f.Currency] = t.ByCurrency[f.Currency].Add(f.Amount)
		t.ByCurrencyUSD[f.Currency] = t.ByCurrencyUSD[f.Currency].Add(f.AmountUSD)
	}
	return t
}

// Check compares the totals with the figures the source publishes: funding
// and pledge totals to the dollar, and the flow counts.
func (t Totals) Check(src SourceTotals) error {
	var bad []string
	if !t.FundingUSD.Round(0).Equal(src.IncomingFundingTotal.Round(0)) {
		bad = append(bad, fmt.Sprintf("incoming funding %s USD, the source says %s", t.FundingUSD, src.IncomingFundingTotal))
	}
	if !t.PledgeUSD.Round(0).Equal(src.IncomingPledgeTotal.Round(0)) {
		bad = append(bad, fmt.Sprintf("incoming pledges %s USD, the source says %s", t.PledgeUSD, src.IncomingPledgeTotal))
	}
	if t.IncomingFlows != src.IncomingFlowCount {
		bad = append(bad, fmt.Sprintf("%d incoming flows, the source says %d", t.IncomingFlows, src.IncomingFlowCount))
	}
	if t.InternalFlows != src.InternalFlowCount {
		bad = append(bad, fmt.Sprintf("%d internal flows, the source says %d", t.InternalFlows, src.InternalFlowCount))
	}
	if t.OutgoingFlows != src.OutgoingFlowCount {
		bad = append(bad, fmt.Sprintf("%d outgoing flows, the source says %d", t.OutgoingFlows, src.OutgoingFlowCount))
	}
	if len(bad) > 0 {
		return fmt.Errorf("totals do not match the source: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Variance is a flow whose reported USD differs from the one computed from
// its original amount and rate by more than a dollar.
type Variance struct {
	FlowID           string
	ReportedUSD      decimal.Decimal
	ComputedUSD      decimal.Decimal
	Difference       decimal.Decimal // reported − computed
	OriginalAmount   decimal.Decimal
	OriginalCurrency string
	ExchangeRate     decimal.Decimal
}

// Variances lists the flows whose reported and computed USD differ by more
// than one dollar, in flow order.
func Variances(flows []Flow) []Variance {
	one := decimal.NewFromInt(1)
	var out []Variance
	for i := range flows {
		f := &flows[i]
		if !f.HasComputed {
			continue
		}
		d := f.Variance()
		if d.Abs().GreaterThan(one) {
			out = append(out, Variance{
				FlowID: f.ID, ReportedUSD: f.AmountUSD, ComputedUSD: f.ComputedUSD, Difference: d,
				OriginalAmount: f.OriginalAmount, OriginalCurrency: f.OriginalCurrency, ExchangeRate: f.ExchangeRate,
			})
		}
	}
	return out
}

// Kinds of repeated reference codes.
const (
	// RefParentChild: a parked parent and its children, or children of the
	// same parked parent: one agreement split, never duplicate funding.
	RefParentChild = "parent-child"
	// RefParkedSiblings: parked parents and children of several parked
	// flows (one donor decision allocated in parts).
	RefParkedSiblings = "parked family"
	// RefSplit: same donor and recipient, different amounts: one agreement
	// reported in parts (tranches, clusters, years).
	RefSplit = "split agreement"
	// RefSameAmount: two flows (not parked parents) with the same donor,
	// recipient, amount and date: a possible duplicate the detection run
	// should flag with this evidence, even between siblings.
	RefSameAmount = "same amount"
	// RefOtherParties: the same code between different donors or
	// recipients (a code reused, or passed on with the money).
	RefOtherParties = "different parties"
)

// RefCodeGroup is one refCode on more than one flow, with why.
type RefCodeGroup struct {
	RefCode string
	FlowIDs []string
	Kind    string
	Why     string
}

// RepeatedRefCodes reports every refCode carried by more than one flow,
// sorted by code, so the detection rules can tell parent/child pairs
// (not duplicates) from codes that repeat for another reason.
func RepeatedRefCodes(flows []Flow, cls []Classification) []RefCodeGroup {
	groups := map[string][]int{}
	for i := range flows {
		if flows[i].RefCode != "" {
			groups[flows[i].RefCode] = append(groups[flows[i].RefCode], i)
		}
	}
	var out []RefCodeGroup
	for _, code := range sortedKeys(groups) {
		idx := groups[code]
		if len(idx) < 2 {
			continue
		}
		g := RefCodeGroup{RefCode: code}
		for _, i := range idx {
			g.FlowIDs = append(g.FlowIDs, flows[i].ID)
		}
		g.Kind, g.Why = refKind(flows, cls, idx)
		out = append(out, g)
	}
	return out
}

func refKind(flows []Flow, cls []Classification, idx []int) (string, string) {
	// Same donor, recipient, amount and date on two flows that are not a
	// parked parent: a possible duplicate, whatever their family.
	same := map[string][]string{}
	for _, i := range idx {
		f := &flows[i]
		if f.IsParkedParent() {
			continue
		}
		k := cls[i].Donor.ID + ">" + cls[i].Recipient.ID + " " + f.AmountUSD.String() + " " + f.Date
		same[k] = append(same[k], f.ID)
	}
	for _, k := range sortedKeys(same) {
		if ids := same[k]; len(ids) > 1 {
			parts := strings.SplitN(k, " ", 3)
			return RefSameAmount, fmt.Sprintf("flows %s: same donor>recipient %s, %s USD, dated %s: possible duplicate", strings.Join(ids, ", "), parts[0], parts[1], parts[2])
		}
	}
	// The family root of each flow: its parked parent, or itself.
	roots := map[string]bool{}
	parked := true // every flow a parked parent or a child of one
	for _, i := range idx {
		f := &flows[i]
		switch {
		case f.ParentFlowID != "":
			roots[f.ParentFlowID] = true
		case f.IsParkedParent():
			roots[f.ID] = true
		default:
			roots[f.ID] = true
			parked = false
		}
	}
	if len(roots) == 1 {
		for r := range roots {
			return RefParentChild, fmt.Sprintf("one agreement: parked flow %s and flows split from it", r)
		}
	}
	if parked {
		return RefParkedSiblings, fmt.Sprintf("parked flows %s and flows split from them: one donor decision allocated in parts", strings.Join(sortedKeys(roots), ", "))
	}
	parties := map[string]bool{}
	for _, i := range idx {
		parties[orUnknown(cls[i].Donor.ID)+">"+orUnknown(cls[i].Recipient.ID)] = true
	}
	if len(parties) > 1 {
		return RefOtherParties, "the same code between different donors or recipients (" + strings.Join(sortedKeys(parties), ", ") + "): a donor programme code over several recipients, or a code passed on with the money"
	}
	return RefSplit, "same donor and recipient, different amounts or dates: one agreement reported in parts (tranches, clusters)"
}

// Grant is a proposed ledger grant: the flows of one donor → recipient
// agreement.
type Grant struct {
	Key              GrantKey
	Reference        string // unique per donor: "FTS-" + agreement [+ "-" + recipient]
	Donor, Recipient Object
	FlowIDs          []string
	RefCodes         []string // distinct refCodes of its flows
	Counted          bool     // at least one of its flows is counted
}

// Grants groups the flows by GrantKey, in order of first flow.
func Grants(flows []Flow, cls []Classification) []Grant {
	var out []Grant
	at := map[GrantKey]int{}
	recipients := map[string]map[string]bool{} // agreement → recipients
	for i := range flows {
		c := cls[i]
		j, ok := at[c.Grant]
		if !ok {
			j = len(out)
			at[c.Grant] = j
			out = append(out, Grant{Key: c.Grant, Donor: c.Donor, Recipient: c.Recipient})
			if recipients[c.Grant.Agreement] == nil {
				recipients[c.Grant.Agreement] = map[string]bool{}
			}
			recipients[c.Grant.Agreement][c.Grant.DonorOrg+">"+c.Grant.RecipientOrg] = true
		}
		g := &out[j]
		g.FlowIDs = append(g.FlowIDs, flows[i].ID)
		g.Counted = g.Counted || c.Counted
		if rc := flows[i].RefCode; rc != "" && !contains(g.RefCodes, rc) {
			g.RefCodes = append(g.RefCodes, rc)
		}
	}
	for i := range out {
		g := &out[i]
		g.Reference = "FTS-" + g.Key.Agreement
		if len(recipients[g.Key.Agreement]) > 1 {
			g.Reference += "-" + orUnknown(g.Key.RecipientOrg)
		}
		sort.Strings(g.RefCodes)
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
