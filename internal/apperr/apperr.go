// Package apperr holds the error kinds domains return. internal/server is the
// one place that maps them to gRPC status codes; domains never import gRPC.
package apperr

import (
	"errors"
	"fmt"
	"strings"
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
}

// Add records a violation.
func (v *Validator) Add(field, format string, args ...any) {
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
