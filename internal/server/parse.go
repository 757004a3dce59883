package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/tranche-ledger/tranche/api/tranche/v1"
	"github.com/tranche-ledger/tranche/internal/apperr"
	"github.com/tranche-ledger/tranche/internal/money"
)

// parser turns a request's text into the typed values domains take, naming
// each field it cannot read by its request path. Domains then check the
// rules and name fields of their own (see under).
type parser struct {
	v apperr.Validator
	// prefix is prepended to the fields named, and with inList the list's
	// item: a field's path is formatted only when it is bad.
	prefix string
	item   int
	inList bool
}

// within names the fields parsed next as those of the resource at prefix
// ("transaction."; "" for the request's own).
func (p *parser) within(prefix string) { p.prefix, p.inList = prefix, false }

// at names the fields parsed next as those of item i of list.
func (p *parser) at(list string, i int) { p.prefix, p.item, p.inList = list, i, true }

func (p *parser) add(field, format string, args ...any) {
	switch {
	case p.inList:
		field = fmt.Sprintf("%s[%d].%s", p.prefix, p.item, field)
	default:
		field = p.prefix + field
	}
	p.v.Add(field, format, args...)
}

func (p *parser) err() error { return p.v.Err() }

// id reads a UUID; empty is uuid.Nil.
func (p *parser) id(field, s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		// The nil UUID names nothing: taken as an id it would read as absent.
		p.add(field, "not an id: %q", s)
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
	switch {
	case err != nil:
		p.add(field, "not a date (YYYY-MM-DD): %q", s)
	case d.IsZero():
		// 0001-01-01 is Go's zero time, which the domains read as "no date".
		p.add(field, "%s is outside %s to %s", s, apperr.Earliest.Format(time.DateOnly), apperr.Latest.Format(time.DateOnly))
	}
	return d
}

// samePath refuses a request body naming at field (body) another value than
// the URL path does for it (path): which of the two was meant is not ours to
// guess. An empty body value names nothing, and the path's stands.
func (p *parser) samePath(field, what, body, path string) {
	// Ids are UUIDs, which clients may write in either case.
	if body != "" && !strings.EqualFold(body, path) {
		p.add(field, "names %s %s, the path names %s", what, body, path)
	}
}

// outputOnly refuses each of the fields named (proto names) that m sets: the
// service sets them, and a value sent and silently dropped would let the
// client believe it was kept. Fields are named under p's prefix.
func (p *parser) outputOnly(m proto.Message, names ...protoreflect.Name) {
	r := m.ProtoReflect()
	for _, n := range names {
		fd := r.Descriptor().Fields().ByName(n)
		if fd == nil {
			panic(fmt.Sprintf("outputOnly: %s has no field %s", r.Descriptor().FullName(), n))
		}
		if r.Has(fd) {
			p.add(fd.JSONName(), "set by the service; leave it out")
		}
	}
}

// decimal reads a plain decimal number; empty is zero.
func (p *parser) decimal(field, s string) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	d, err := money.ParseDecimal(s)
	if err != nil {
		p.add(field, "%v", err)
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
		p.add(field+".currency", "%v", err)
		return money.Amount{}
	}
	d, err := money.Parse(m.GetAmount(), m.GetCurrency())
	if err != nil {
		p.add(field+".amount", "%v", err)
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
