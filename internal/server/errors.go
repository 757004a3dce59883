package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// toStatus is the one place that maps domain errors to gRPC statuses. Errors
// of no known kind are internal: logged in full, answered without detail, so
// SQL and stack traces never reach a client.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var inv *apperr.InvalidError
	var pv *protovalidate.ValidationError
	switch {
	case errors.As(err, &inv):
		// Domain messages may quote the bad value, which may be 1 MB long.
		vs := make([]apperr.Violation, len(inv.Violations))
		for i, v := range inv.Violations {
			vs[i] = apperr.Violation{Field: clip(v.Field, 200), Description: clip(v.Description, 500)}
		}
		return badRequest((&apperr.InvalidError{Violations: vs}).Error(), vs)
	case errors.As(err, &pv):
		vs := make([]apperr.Violation, len(pv.Violations))
		for i, v := range pv.Violations {
			vs[i] = apperr.Violation{Field: jsonPath(protovalidate.FieldPathString(v.Proto.GetField())), Description: v.Proto.GetMessage()}
		}
		return badRequest("invalid argument", vs)
	case errors.Is(err, apperr.ErrNotFound):
		return status.Error(codes.NotFound, clip(err.Error(), 1000))
	case errors.Is(err, apperr.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, clip(err.Error(), 1000))
	case errors.Is(err, apperr.ErrFailedPrecondition):
		return status.Error(codes.FailedPrecondition, clip(err.Error(), 1000))
	case errors.Is(err, apperr.ErrAborted):
		return status.Error(codes.Aborted, clip(err.Error(), 1000))
	case errors.Is(err, apperr.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, clip(err.Error(), 1000))
	case errors.Is(err, apperr.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, clip(err.Error(), 1000))
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.ErrorContext(ctx, "internal error", "err", err, "request_id", requestIDFrom(ctx))
	return status.Errorf(codes.Internal, "internal error (request id %s)", requestIDFrom(ctx))
}

// httpStatus maps an error the REST gateway is about to answer: one found at
// the HTTP edge, while reading or decoding the request, or returned by the
// gRPC call. A body too large is 413; bad JSON or query parameters are
// INVALID_ARGUMENT naming the fields; the rest is as toStatus says.
func httpStatus(ctx context.Context, log *slog.Logger, r *http.Request, err error) error {
	// The generated gateway code flattens decoding errors into a message:
	// find the structured error behind it.
	if b, ok := r.Body.(*requestBody); ok && b.fault != nil {
		err = b.fault
	} else if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		if q := queryFault(ctx, r); q != nil {
			err = q
		}
	}
	var custom *runtime.HTTPStatusError
	if errors.As(err, &custom) {
		return &runtime.HTTPStatusError{HTTPStatus: custom.HTTPStatus, Err: toStatus(ctx, log, custom.Err)}
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge,
			Err: status.Errorf(codes.ResourceExhausted, "request body larger than %d bytes", tooLarge.Limit)}
	}
	return toStatus(ctx, log, err)
}

// clip bounds a text that may quote a client's input before it goes into an
// answer (and a gRPC trailer).
func clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func badRequest(msg string, vs []apperr.Violation) error {
	br := &errdetails.BadRequest{}
	for _, v := range vs {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
	}
	st, err := status.New(codes.InvalidArgument, clip(msg, 4000)).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// jsonPath turns a proto field path (organization.iati_ref) into the JSON
// names clients send (organization.iatiRef).
func jsonPath(p string) string {
	var b strings.Builder
	up := false
	for _, r := range p {
		switch {
		case r == '_':
			up = true
		case up && r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			up = false
		default:
			b.WriteRune(r)
			up = false
		}
	}
	return b.String()
}
