// Package auth holds the roles and the principal a request acts as.
package auth

import (
	"context"
	"fmt"
	"slices"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// Role is what a token may do (DESIGN.md section 7).
type Role string

const (
	Admin       Role = "admin"
	Coordinator Role = "coordinator"
	Donor       Role = "donor"
	Implementer Role = "implementer"
	Auditor     Role = "auditor"
	// Operator is the actor of CLI commands run with database access; it never
	// comes from a token.
	Operator Role = "operator"
)

// Roles lists the roles a token can carry.
var Roles = []Role{Admin, Coordinator, Donor, Implementer, Auditor}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", apperr.Invalid("role", "unknown role %q (want one of admin, coordinator, donor, implementer, auditor)", s)
	}
	return r, nil
}

// BoundToOrg tells whether tokens of this role act for one organisation.
func (r Role) BoundToOrg() bool { return r == Donor || r == Implementer }

// Principal is who a request acts as.
type Principal struct {
	TokenID string
	Name    string
	Role    Role
	OrgID   string // set for donor and implementer
}

// Scope is whose request ids a request's id is unique among: the
// organisation of a bound role, else the token (the CLI operator has one
// scope of its own).
func (p Principal) Scope() string {
	switch {
	case p.OrgID != "":
		return "org:" + p.OrgID
	case p.Role == Operator:
		return "operator"
	}
	return "token:" + p.TokenID
}

// OperatorPrincipal is the actor recorded for CLI commands.
func OperatorPrincipal(command string) Principal {
	return Principal{Name: command, Role: Operator}
}

// Can reports whether the principal has one of roles; admin and operator can do everything.
func (p Principal) Can(roles ...Role) bool {
	return p.Role == Admin || p.Role == Operator || slices.Contains(roles, p.Role)
}

// Require returns ErrPermissionDenied unless the principal has one of roles.
func (p Principal) Require(roles ...Role) error {
	if p.Can(roles...) {
		return nil
	}
	return fmt.Errorf("role %s may not do this: %w", p.Role, apperr.ErrPermissionDenied)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of the request; a missing principal is an
// empty one, which no check lets through.
func FromContext(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}
