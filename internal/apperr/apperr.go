// Package apperr holds the error kinds domains return. internal/server is the
// one place that maps them to gRPC status codes; domains never import gRPC.
package apperr

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel kinds. Wrap them with context: fmt.Errorf("grant %s: %w", id, ErrNotFound).
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnauthenticated    = errors.New("unauthenticated")
	// ErrAborted is a write that lost to concurrent ones more often than it
	// retries by itself; nothing was written and the client may retry.
	ErrAborted = errors.New("aborted")
)

// Violation names one bad field (lowerCamelCase JSON path, e.g. "grant.pledged.amount").
type Violation struct {
	Field       string
	Description string
}

// InvalidError is bad input: one violation per bad field. Nothing was written.
type InvalidError struct {
	Violations []Violation
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

// Invalid returns an InvalidError for one field.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Violations: []Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// Validator accumulates violations so a request reports every bad field at once.
type Validator struct {
	violations []Violation
	// item, when set, is the position in a list the fields being checked
	// belong to: Add names them "[item].field". Checking a list of a thousand
	// entries then formats no field name unless one is bad.
	item   int
	inItem bool
}

// Item makes the fields checked next those of the list's item i.
func (v *Validator) Item(i int) { v.item, v.inItem = i, true }

// EndItems returns to fields of the request itself.
func (v *Validator) EndItems() { v.inItem = false }

// Add records a violation.
func (v *Validator) Add(field, format string, args ...any) {
	if v.inItem {
		field = fmt.Sprintf("[%d].%s", v.item, field)
	}
	v.violations = append(v.violations, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Check records a violation when ok is false.
func (v *Validator) Check(ok bool, field, format string, args ...any) {
	if !ok {
		v.Add(field, format, args...)
	}
}

// Merge adds the violations of err when it is an InvalidError, prefixing fields.
// Any other non-nil error is returned.
func (v *Validator) Merge(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	for _, x := range inv.Violations {
		f := x.Field
		if prefix != "" {
			f = prefix + "." + f
		}
		v.violations = append(v.violations, Violation{Field: f, Description: x.Description})
	}
	return nil
}

// Err is nil when nothing was recorded.
func (v *Validator) Err() error {
	if len(v.violations) == 0 {
		return nil
	}
	return &InvalidError{Violations: v.violations}
}

// Text trims s and checks it is present when required and at most max
// characters long; it returns the trimmed text. (Valid UTF-8 without NUL is
// checked for every request at the edge.)
func (v *Validator) Text(field, s string, required bool, max int) string {
	s = strings.TrimSpace(s)
	if required && s == "" {
		v.Add(field, "must not be empty")
	}
	if len(s) > max && utf8.RuneCountInString(s) > max {
		v.Add(field, "at most %d characters", max)
	}
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		v.Add(field, "must be valid UTF-8 text without NUL")
	}
	return s
}

// Earliest and Latest bound every calendar date the service accepts (grant
// and roadmap periods, value dates, due dates): a date outside them is a
// typo, not a mine action programme.
var (
	Earliest = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	Latest   = time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)
)

// Date checks that a date is given when required and lies within
// [Earliest, Latest].
func (v *Validator) Date(field string, d time.Time, required bool) {
	if d.IsZero() {
		v.Check(!required, field, "required (YYYY-MM-DD)")
		return
	}
	if d.Before(Earliest) || d.After(Latest) {
		v.Add(field, "%s is outside %s to %s", d.Format(time.DateOnly), Earliest.Format(time.DateOnly), Latest.Format(time.DateOnly))
	}
}

// Fields rewrites the field of every violation of err with f, for an
// InvalidError; any other error is returned as it is. The server uses it to
// turn domain field names into request paths.
func Fields(err error, f func(string) string) error {
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	out := &InvalidError{Violations: make([]Violation, len(inv.Violations))}
	for i, x := range inv.Violations {
		out.Violations[i] = Violation{Field: f(x.Field), Description: x.Description}
	}
	return out
}
