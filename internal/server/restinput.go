package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// REST input is decoded strictly, and every refusal names the field by its
// JSON path like a validation error: an unknown field (a typo in a financial
// request must not vanish), a value of the wrong type, malformed JSON, or a
// query parameter that does not parse.

// strictJSON is the gateway's JSON marshaler with a strict request decoder.
type strictJSON struct {
	runtime.Marshaler
}

func (j strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		m, ok := v.(proto.Message)
		if !ok {
			return j.Marshaler.NewDecoder(r).Decode(v)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return err // requestBody keeps a body too large
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF // no body: the gateway leaves the request empty
		}
		err = decodeJSON(data, m)
		b, ok := r.(*requestBody)
		if ok && err == nil {
			err = pathConflicts(m, b.path)
		}
		if ok && err != nil && b.fault == nil {
			b.fault = err
		}
		return err
	})
}

// decodeJSON decodes a request body into m, refusing unknown fields. protojson
// says what is wrong but not where, so on failure the body is walked to name
// each bad field.
func decodeJSON(data []byte, m proto.Message) error {
	err := protojson.Unmarshal(data, m)
	if err == nil {
		return nil
	}
	w := &jsonWalker{}
	w.root(m.ProtoReflect().Descriptor(), data)
	if len(w.vs) == 0 { // not expected: protojson and the walk disagree
		msg, _ := strings.CutPrefix(err.Error(), "proto:")
		w.add("", strings.TrimSpace(msg))
	}
	return &apperr.InvalidError{Violations: w.vs}
}

type jsonWalker struct {
	vs []apperr.Violation
}

func (w *jsonWalker) add(path, desc string) {
	w.vs = append(w.vs, apperr.Violation{Field: path, Description: desc})
}

func (w *jsonWalker) root(md protoreflect.MessageDescriptor, data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if !w.object(dec, md, "") {
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		w.add("", "unexpected data after the JSON object")
	}
}

// object walks one JSON object of message md at path; false means the JSON
// is malformed (reported) and the walk stops.
func (w *jsonWalker) object(dec *json.Decoder, md protoreflect.MessageDescriptor, path string) bool {
	tok, err := dec.Token()
	if err != nil {
		w.malformed(path, err)
		return false
	}
	if tok == nil {
		return true // null: the message stays unset
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		w.add(path, "must be a JSON object")
		return skipRest(dec, tok) == nil
	}
	seen := map[protoreflect.FieldNumber]bool{}
	oneofs := map[protoreflect.FullName]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			w.malformed(path, err)
			return false
		}
		key, _ := tok.(string)
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByTextName(key) // protojson accepts proto names too
		}
		if fd == nil {
			w.add(joinPath(path, echo(key)), "unknown field")
			if err := skipValue(dec); err != nil {
				w.malformed(joinPath(path, echo(key)), err)
				return false
			}
			continue
		}
		p := joinPath(path, fd.JSONName())
		switch of := fd.ContainingOneof(); {
		case seen[fd.Number()]:
			w.add(p, "given more than once")
		case of != nil && !of.IsSynthetic() && oneofs[of.FullName()]:
			w.add(p, fmt.Sprintf("only one field of %s may be set", of.Name()))
		}
		seen[fd.Number()] = true
		if of := fd.ContainingOneof(); of != nil && !of.IsSynthetic() {
			oneofs[of.FullName()] = true
		}
		if !w.field(dec, md, fd, p) {
			return false
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		w.malformed(path, err)
		return false
	}
	return true
}

// field walks the value of field fd of md.
func (w *jsonWalker) field(dec *json.Decoder, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, path string) bool {
	switch {
	case fd.IsList():
		tok, err := dec.Token()
		if err != nil {
			w.malformed(path, err)
			return false
		}
		if tok == nil {
			return true
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			w.add(path, "must be a JSON array")
			return skipRest(dec, tok) == nil
		}
		for i := 0; dec.More(); i++ {
			if !w.element(dec, md, fd, fmt.Sprintf("%s[%d]", path, i), true) {
				return false
			}
		}
		if _, err := dec.Token(); err != nil {
			w.malformed(path, err)
			return false
		}
		return true
	default:
		return w.element(dec, md, fd, path, false)
	}
}

// element walks one value of fd: a nested message is walked field by field, a
// scalar (or well-known type, or map) is checked by protojson on its own.
func (w *jsonWalker) element(dec *json.Decoder, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, path string, inList bool) bool {
	if fd.Message() != nil && !fd.IsMap() && !wellKnown(fd.Message()) {
		return w.object(dec, fd.Message(), path)
	}
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		w.malformed(path, err)
		return false
	}
	if inList {
		raw = append(append([]byte("["), raw...), ']')
	}
	probe := append(append(append([]byte(`{"`), fd.JSONName()...), `":`...), raw...)
	probe = append(probe, '}')
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(probe, m); err != nil {
		desc := expected(fd)
		if fd.Kind() == protoreflect.StringKind && bytes.HasPrefix(bytes.TrimLeft(raw, "[ \t\r\n"), []byte(`"`)) {
			desc = badText // a string, but not UTF-8
		}
		w.add(path, desc)
		return true
	}
	// While here, name a NUL too, as the text check would once decoded.
	if v := m.Get(fd); fd.Kind() == protoreflect.StringKind && !fd.IsMap() {
		if (fd.IsList() && !goodText(v.List().Get(0).String())) || (!fd.IsList() && !goodText(v.String())) {
			w.add(path, badText)
		}
	}
	return true
}

func (w *jsonWalker) malformed(path string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		w.add(path, "malformed JSON: unexpected end of input")
		return
	}
	w.add(path, "malformed JSON: "+err.Error())
}

// skipValue skips the next JSON value.
func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	return dec.Decode(&raw)
}

// skipRest skips the rest of a value whose first token was tok.
func skipRest(dec *json.Decoder, tok json.Token) error {
	if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
		for depth := 1; depth > 0; {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			if d, ok := t.(json.Delim); ok {
				if d == '{' || d == '[' {
					depth++
				} else {
					depth--
				}
			}
		}
	}
	return nil
}

func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.FullName().Parent() == "google.protobuf"
}

// expected says what a field takes, for a value it refused.
func expected(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return "must be a JSON object of valid entries"
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "must be a string"
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "must be a 32-bit integer"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "must be a non-negative 32-bit integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "must be a 64-bit integer"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "must be a non-negative 64-bit integer"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	case protoreflect.BytesKind:
		return "must be base64-encoded bytes"
	case protoreflect.EnumKind:
		return "must be one of the values of " + string(fd.Enum().Name())
	}
	switch fd.Message().FullName() {
	case "google.protobuf.Timestamp":
		return `must be an RFC 3339 time, e.g. "2024-07-01T00:00:00Z"`
	case "google.protobuf.Duration":
		return `must be a duration in seconds, e.g. "1.5s"`
	}
	return "must be a valid " + string(fd.Message().Name())
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// echo bounds a client's field name before it goes into an answer.
func echo(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) > 64 {
		return string([]rune(s)[:64]) + "…"
	}
	return s
}

// strictQuery parses query parameters like grpc-gateway's default parser but
// refuses an unknown parameter and names the parameter that does not parse.
type strictQuery struct{}

func (strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	if err := checkQuery(msg, values, filter); err != nil {
		return err
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, values, filter)
}

var mapKeyRE = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// checkQuery reports every query parameter of a request of msg's type that is
// unknown, given twice, or does not parse. Parameters bound from the path
// (filter) are ignored, as the gateway ignores them.
func checkQuery(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	var vs []apperr.Violation
	seen := map[string]bool{}
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range values {
			if !yield(k) {
				return
			}
		}
	}) {
		fieldKey := key
		if m := mapKeyRE.FindStringSubmatch(key); m != nil {
			fieldKey = m[1]
		}
		names, jsonPath, fd := resolveQueryKey(msg.ProtoReflect().Descriptor(), fieldKey)
		if fd == nil {
			vs = append(vs, apperr.Violation{Field: echo(key), Description: "unknown query parameter"})
			continue
		}
		if filter.HasCommonPrefix(names) {
			continue
		}
		if seen[jsonPath] {
			vs = append(vs, apperr.Violation{Field: jsonPath, Description: "given more than once"})
			continue
		}
		seen[jsonPath] = true
		scratch := msg.ProtoReflect().New().Interface()
		if err := (&runtime.DefaultQueryParser{}).Parse(scratch, url.Values{key: values[key]}, filter); err != nil {
			desc := expected(fd)
			if len(values[key]) > 1 && !fd.IsList() {
				desc = "given more than once"
			}
			vs = append(vs, apperr.Violation{Field: jsonPath, Description: desc})
		}
	}
	if len(vs) > 0 {
		return &apperr.InvalidError{Violations: vs}
	}
	return nil
}

// resolveQueryKey finds the field a dotted query key names (by proto or JSON
// names), with its proto name path and its JSON path; fd is nil when it names
// none.
func resolveQueryKey(md protoreflect.MessageDescriptor, key string) (names []string, jsonPath string, fd protoreflect.FieldDescriptor) {
	for _, part := range strings.Split(key, ".") {
		if md == nil {
			return nil, "", nil
		}
		fd = md.Fields().ByTextName(part)
		if fd == nil {
			fd = md.Fields().ByJSONName(part)
		}
		if fd == nil {
			return nil, "", nil
		}
		names = append(names, string(fd.Name()))
		jsonPath = joinPath(jsonPath, fd.JSONName())
		md = nil
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			md = fd.Message()
		}
	}
	return names, jsonPath, fd
}

var pathParamRE = regexp.MustCompile(`\{([^}=]+)`)

// queryFault explains a query the gateway refused: the generated code keeps
// only the text of strictQuery's error, so the error handler parses the query
// again, for the method and path pattern the gateway matched, to name the
// parameters. It returns nil when the query is not what was wrong.
func queryFault(ctx context.Context, r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil
	}
	service, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok || sd.Methods().ByName(protoreflect.Name(name)) == nil {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(sd.Methods().ByName(protoreflect.Name(name)).Input().FullName())
	if err != nil {
		return nil
	}
	var bound [][]string
	pattern, _ := runtime.HTTPPathPattern(ctx)
	for _, m := range pathParamRE.FindAllStringSubmatch(pattern, -1) {
		bound = append(bound, strings.Split(m[1], "."))
	}
	return checkQuery(mt.New().Interface(), r.URL.Query(), utilities.NewDoubleArray(bound))
}

// restParams checks what the gateway takes from the URL before it builds the
// gRPC request: a path parameter or query value that is not text (invalid
// UTF-8, or NUL) is refused naming the parameter, as checkText names a bad
// string of a body. Invalid UTF-8 must be caught here: the gateway could not
// even marshal the request, and would answer 500. It also hands the path
// parameters to the body decoder (pathConflicts).
func (s *Server) restParams(mux **runtime.ServeMux) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
			if err := badParams(pathParams, r.URL.Query()); err != nil {
				_, out := runtime.MarshalerForRequest(*mux, r)
				runtime.HTTPError(r.Context(), *mux, out, w, r, err)
				s.log.InfoContext(r.Context(), "http refused", "method", r.Method, "path", strings.ToValidUTF8(r.URL.Path, "\uFFFD"),
					"request_id", r.Header.Get("X-Request-Id"), "err", err.Error())
				return
			}
			if b, ok := r.Body.(*requestBody); ok {
				b.path = pathParams
			}
			next(w, r, pathParams)
		}
	}
}

// badParams names each path parameter (by its JSON name) and query
// parameter whose value is not text, path first, each in name order.
func badParams(path map[string]string, query url.Values) error {
	var vs []apperr.Violation
	for _, k := range slices.Sorted(maps.Keys(path)) {
		if !goodText(path[k]) {
			vs = append(vs, apperr.Violation{Field: jsonPath(echo(k)), Description: badText})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(query)) {
		name := echo(k)
		if mapKeyRE.FindStringSubmatch(k) == nil {
			name = jsonPath(name)
		}
		if !goodText(k) {
			vs = append(vs, apperr.Violation{Field: name, Description: "query parameter name " + badText})
			continue
		}
		if slices.ContainsFunc(query[k], func(v string) bool { return !goodText(v) }) {
			vs = append(vs, apperr.Violation{Field: name, Description: badText})
		}
	}
	if len(vs) > 0 {
		return &apperr.InvalidError{Violations: vs}
	}
	return nil
}

// pathConflicts refuses a body that sets a field the URL path binds (the
// flagId of POST /v1/flags/{flagId}:review) to another value: the gateway
// would silently overwrite it with the path's, acting on a resource the
// client did not name. It is the same refusal as a transaction naming
// another grant than its path (parser.samePath).
func pathConflicts(m proto.Message, path map[string]string) error {
	var p parser
	for _, key := range slices.Sorted(maps.Keys(path)) {
		r := m.ProtoReflect()
		parts := strings.Split(key, ".")
		var fd protoreflect.FieldDescriptor
		for i, part := range parts {
			fd = r.Descriptor().Fields().ByName(protoreflect.Name(part))
			if fd == nil || i == len(parts)-1 {
				break
			}
			if fd.Message() == nil || fd.IsList() || fd.IsMap() || !r.Has(fd) {
				fd = nil
				break
			}
			r = r.Get(fd).Message()
		}
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || !r.Has(fd) {
			continue
		}
		what := strings.TrimSuffix(fd.JSONName(), "Id")
		p.samePath(jsonPath(key), what, r.Get(fd).String(), path[key])
	}
	return p.err()
}
