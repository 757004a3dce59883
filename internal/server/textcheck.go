package server

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tranche-ledger/tranche/internal/apperr"
)

// Every text field of every request must be valid UTF-8 without NUL bytes:
// PostgreSQL text cannot hold NUL, and neither belongs in a ledger. The
// interceptors check each request here, in one place, before validation;
// over REST, path and query parameters are checked with the same goodText
// before the gateway marshals them (restParams), since it cannot marshal
// invalid UTF-8 at all.

const badText = "must be valid UTF-8 text without NUL bytes"

// checkText reports every string field of m (nested messages, lists, maps)
// that is not valid UTF-8 or holds a NUL byte, by its JSON path, in field
// order.
func checkText(m proto.Message) error {
	if !hasBadText(m.ProtoReflect()) {
		return nil // the common case, found without building a path
	}
	var vs []apperr.Violation
	walkText(m.ProtoReflect(), "", &vs)
	if len(vs) > 0 {
		return &apperr.InvalidError{Violations: vs}
	}
	return nil
}

// hasBadText tells whether any string in m, at any depth, is bad text.
func hasBadText(m protoreflect.Message) bool {
	bad := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for j := 0; j < l.Len() && !bad; j++ {
				bad = badValue(fd, l.Get(j))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
				bad = (fd.MapKey().Kind() == protoreflect.StringKind && !goodText(k.String())) || badValue(fd.MapValue(), x)
				return !bad
			})
		default:
			bad = badValue(fd, v)
		}
		return !bad
	})
	return bad
}

func badValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch {
	case fd.Kind() == protoreflect.StringKind:
		return !goodText(v.String())
	case fd.Message() != nil:
		return hasBadText(v.Message())
	}
	return false
}

func walkText(m protoreflect.Message, prefix string, vs *[]apperr.Violation) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if (fd.Kind() != protoreflect.StringKind && fd.Message() == nil) || !m.Has(fd) {
			continue
		}
		// Paths are built only for nested messages and bad values (no
		// closures, no formatting otherwise): most requests are clean, and
		// this runs for every field of every one, a thousand entries in a batch.
		switch v := m.Get(fd); {
		case fd.IsList():
			l := v.List()
			for j := range l.Len() {
				textValue(fd, l.Get(j), prefix, j, vs)
			}
		case fd.IsMap():
			path := joinPath(prefix, fd.JSONName())
			mp := v.Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool { keys = append(keys, k); return true })
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				p := fmt.Sprintf("%s[%q]", path, strings.ToValidUTF8(k.String(), "\uFFFD"))
				if fd.MapKey().Kind() == protoreflect.StringKind && !goodText(k.String()) {
					*vs = append(*vs, apperr.Violation{Field: p, Description: "key " + badText})
				}
				switch vd := fd.MapValue(); {
				case vd.Kind() == protoreflect.StringKind && !goodText(mp.Get(k).String()):
					*vs = append(*vs, apperr.Violation{Field: p, Description: badText})
				case vd.Message() != nil:
					walkText(mp.Get(k).Message(), p, vs)
				}
			}
		default:
			textValue(fd, v, prefix, -1, vs)
		}
	}
}

// textValue checks one value of field fd of the message at prefix: item j
// of a list, or the field itself when j < 0.
func textValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, prefix string, j int, vs *[]apperr.Violation) {
	path := func() string {
		p := joinPath(prefix, fd.JSONName())
		if j >= 0 {
			p = fmt.Sprintf("%s[%d]", p, j)
		}
		return p
	}
	switch {
	case fd.Kind() == protoreflect.StringKind:
		if !goodText(v.String()) {
			*vs = append(*vs, apperr.Violation{Field: path(), Description: badText})
		}
	case fd.Message() != nil:
		walkText(v.Message(), path(), vs)
	}
}

func goodText(s string) bool { return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) }

// textCodec is gRPC's proto codec, except for requests with a string that is
// not valid UTF-8. proto.Unmarshal refuses those, and gRPC then answers
// INTERNAL before any interceptor runs, naming no field. textCodec decodes
// them with each such string replaced by a NUL byte, which checkText then
// refuses with the field's path like any other bad text.
type textCodec struct{}

func (textCodec) Name() string { return grpcproto.Name }

var protoCodec = encoding.GetCodecV2(grpcproto.Name)

func (textCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec.Marshal(v) }

func (textCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := protoCodec.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	fixed, changed := replaceBadUTF8(m.ProtoReflect().Descriptor(), data.Materialize(), 0)
	if !changed || proto.Unmarshal(fixed, m) != nil {
		return err
	}
	return nil
}

// replaceBadUTF8 rewrites the wire form b of a message md, replacing every
// string field that is not valid UTF-8 with "\x00"; changed says whether it
// replaced any. It gives up (false) on a malformed message.
func replaceBadUTF8(md protoreflect.MessageDescriptor, b []byte, depth int) (out []byte, changed bool) {
	if depth > 100 {
		return nil, false
	}
	out = make([]byte, 0, len(b))
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return nil, false
			}
			out, b = append(out, b[:n+m]...), b[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, false
		}
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			v, changed = []byte{0}, true
		case fd.Kind() == protoreflect.MessageKind:
			if inner, ok := replaceBadUTF8(fd.Message(), v, depth+1); ok {
				v, changed = inner, true
			}
		}
		out = protowire.AppendTag(out, num, typ)
		out = protowire.AppendBytes(out, v)
		b = b[n+m:]
	}
	return out, changed
}
