package server

import (
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/money"
)

// parser turns a request's text into the typed values domains take, naming
// each field it cannot read by its request path. Domains then check the
// rules and name fields of their own (see under).
type parser struct{ v apperr.Validator }

func (p *parser) err() error { return p.v.Err() }

// id reads a UUID; empty is uuid.Nil.
func (p *parser) id(field, s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		p.v.Add(field, "not an id: %q", s)
		return uuid.Nil
	}
	return id
}

// date reads YYYY-MM-DD; empty is the zero time.
func (p *parser) date(field, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		p.v.Add(field, "not a date (YYYY-MM-DD): %q", s)
	}
	return d
}

// decimal reads a plain decimal number; empty is zero.
func (p *parser) decimal(field, s string) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	d, err := money.ParseDecimal(s)
	if err != nil {
		p.v.Add(field, "%v", err)
	}
	return d
}

// rate reads an optional rate; empty is nil.
func (p *parser) rate(field, s string) *decimal.Decimal {
	if s == "" {
		return nil
	}
	d := p.decimal(field, s)
	return &d
}

// money reads a Money under field: a known currency, an amount with at most
// its minor units. An absent Money (no amount, no currency) is the zero
// Amount with no currency.
func (p *parser) money(field string, m *pb.Money) money.Amount {
	if m.GetAmount() == "" && m.GetCurrency() == "" {
		return money.Amount{}
	}
	if _, err := money.Currency(m.GetCurrency()); err != nil {
		p.v.Add(field+".currency", "%v", err)
		return money.Amount{}
	}
	d, err := money.Parse(m.GetAmount(), m.GetCurrency())
	if err != nil {
		p.v.Add(field+".amount", "%v", err)
	}
	return money.Amount{Value: d, Currency: m.GetCurrency()}
}

// under maps a domain's field names to request paths: fields of the resource
// go under prefix ("grant." gives grant.pledged.amount), positions in a list
// under the list's name ("transactions." gives transactions[2].valueDate, and
// the list itself, the empty field, transactions); requestId is the
// request's own.
func under(prefix string) func(string) string {
	list := strings.TrimSuffix(prefix, ".")
	return func(f string) string {
		switch {
		case f == "requestId":
			return f
		case f == "":
			return list
		case strings.HasPrefix(f, "["):
			return list + f
		}
		return prefix + f
	}
}

// domainErr names a domain's violations by request path.
func domainErr(err error, prefix string) error { return apperr.Fields(err, under(prefix)) }
