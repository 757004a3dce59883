package console

import (
	"fmt"

	"github.com/shopspring/decimal"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
)

// chart is the overview's bar chart, laid out on the server: per milestone a
// bar for each figure, scaled to the largest figure of the roadmap. The
// amounts are parsed only to size the bars; every number shown is the
// service's string.
type chart struct {
	Width, Height int
	Currency      string
	Groups        []chartGroup
	Legend        []chartBar
	// Summary is the chart's text alternative (its <desc>).
	Summary string
}

type chartGroup struct {
	Label  string
	Y      int
	LabelY int
	Bars   []chartBar
}

type chartBar struct {
	Series, Label, Class string
	X, Y, W, H           int
	Text                 string
}

const (
	chartLabelW = 90
	chartBarsW  = 540
	chartBarH   = 7
	chartGap    = 14
)

var chartSeries = []struct{ field, label string }{
	{"requirement", "Requirement"}, {"allocated", "Allocated"}, {"committed", "Committed"},
	{"disbursed", "Disbursed"}, {"spent", "Spent"},
}

func coverageChart(c *pb.GetCoverageResponse) chart {
	values := func(m *pb.MilestoneCoverage) []*pb.Money {
		return []*pb.Money{m.GetFundingRequirement(), m.GetAllocated(), m.GetCommitted(), m.GetDisbursed(), m.GetSpent()}
	}
	num := func(m *pb.Money) float64 {
		d, err := decimal.NewFromString(m.GetAmount())
		if err != nil || d.IsNegative() {
			return 0
		}
		f, _ := d.Float64()
		return f
	}
	max := 0.0
	for _, m := range c.Milestones {
		for _, v := range values(m) {
			if f := num(v); f > max {
				max = f
			}
		}
	}
	ch := chart{Width: chartLabelW + chartBarsW + 10, Currency: c.ReportingCurrency}
	for i, s := range chartSeries {
		ch.Legend = append(ch.Legend, chartBar{Series: s.field, Label: s.label, Class: "bar-" + s.field,
			X: chartLabelW + i*108, Y: 4, W: 12, H: 12})
	}
	y := 28
	groupH := len(chartSeries)*chartBarH + chartGap
	for _, m := range c.Milestones {
		g := chartGroup{Label: m.GetCode(), Y: y, LabelY: y + len(chartSeries)*chartBarH/2 + 4}
		for i, v := range values(m) {
			w := 0
			if max > 0 {
				w = int(num(v) / max * chartBarsW)
			}
			if w == 0 && num(v) > 0 {
				w = 1
			}
			s := chartSeries[i]
			g.Bars = append(g.Bars, chartBar{Series: s.field, Label: s.label, Class: "bar-" + s.field,
				X: chartLabelW, Y: y + i*chartBarH, W: w, H: chartBarH - 1,
				Text: fmt.Sprintf("%s %s: %s %s", m.GetCode(), s.label, v.GetAmount(), v.GetCurrency())})
		}
		ch.Groups = append(ch.Groups, g)
		y += groupH
	}
	ch.Height = y + 4
	ch.Summary = fmt.Sprintf("Bars per milestone (%d milestones) for requirement, allocated, committed, disbursed and spent in %s, "+
		"scaled to the largest figure; the table below gives every figure.", len(c.Milestones), c.ReportingCurrency)
	return ch
}
