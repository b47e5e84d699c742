package reqcodec

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Field numbers of flagforge.evaluation.v1.EvaluateRequest and of the
// google.protobuf Struct family (struct.proto).
const (
	reqFlagKey      = 1
	reqContext      = 2
	reqDefaultValue = 3
	reqType         = 4

	structFields  = 1
	entryKey      = 1
	entryValue    = 2
	valueNull     = 1
	valueNumber   = 2
	valueString   = 3
	valueBool     = 4
	valueStruct   = 5
	valueList     = 6
	listValues    = 1
	maxFieldValue = protowire.MaxValidNumber
)

// DecodeEvaluateProto decodes the protobuf wire form of an EvaluateRequest (a
// gRPC Evaluate call). ok is false when the message must take the general path
// (proto.Unmarshal, then the context from its Struct): see the package comment.
// Here that is also any field or entry sent twice where proto would merge or
// replace, a wire type other than the field's, a group, unknown fields inside the
// context.
func DecodeEvaluateProto(b []byte, out *Evaluate) bool {
	*out = Evaluate{}
	var seenCtx, seenDef bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > maxFieldValue {
			return false
		}
		b = b[n:]
		switch {
		case num == reqFlagKey && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			out.FlagKey, b = string(v), b[n:]
		case num == reqContext && typ == protowire.BytesType && !seenCtx:
			seenCtx = true
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			attrs, ok := protoStruct(v, 1)
			if !ok {
				return false
			}
			out.Attrs, b = attrs, b[n:]
		case num == reqDefaultValue && typ == protowire.BytesType && !seenDef:
			seenDef = true
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			out.Default = new(structpb.Value)
			if proto.Unmarshal(v, out.Default) != nil {
				return false
			}
			b = b[n:]
		case num == reqType && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			out.Type, b = manifestv1.FlagType(int32(v)), b[n:]
		case num == reqFlagKey || num == reqContext || num == reqDefaultValue || num == reqType:
			return false // another wire type, or a message field sent twice (proto merges)
		default: // an unknown field: proto keeps it aside, it means nothing here
			if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
				return false
			}
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

// protoStruct decodes a google.protobuf.Struct into the engine's map.
func protoStruct(b []byte, depth int) (map[string]any, bool) {
	if depth > maxNesting {
		return nil, false
	}
	m := make(map[string]any, 8)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != structFields || typ != protowire.BytesType {
			return nil, false
		}
		b = b[n:]
		entry, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		k, v, ok := protoEntry(entry, depth)
		if !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

// protoEntry decodes one map<string, Value> entry; a missing key is "", a
// missing value null (as proto reads them).
func protoEntry(b []byte, depth int) (string, any, bool) {
	var (
		key              string
		val              any
		seenKey, seenVal bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return "", nil, false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", nil, false
		}
		b = b[n:]
		switch {
		case num == entryKey && !seenKey:
			seenKey = true
			if !utf8.Valid(v) {
				return "", nil, false
			}
			key = string(v)
		case num == entryValue && !seenVal:
			seenVal = true
			var ok bool
			if val, ok = protoValue1(v, depth); !ok {
				return "", nil, false
			}
		default:
			return "", nil, false
		}
	}
	return key, val, true
}

// protoValue1 decodes a google.protobuf.Value: nil for null or no kind.
func protoValue1(b []byte, depth int) (any, bool) {
	if len(b) == 0 {
		return nil, true
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return nil, false
	}
	b = b[n:]
	var (
		v  any
		ok bool
	)
	switch {
	case num == valueNull && typ == protowire.VarintType:
		n = consumeVarint(b)
	case num == valueBool && typ == protowire.VarintType:
		var x uint64
		x, n = protowire.ConsumeVarint(b)
		v = x != 0
	case num == valueNumber && typ == protowire.Fixed64Type:
		var x uint64
		x, n = protowire.ConsumeFixed64(b)
		v = math.Float64frombits(x)
	case num == valueString && typ == protowire.BytesType:
		var s []byte
		s, n = protowire.ConsumeBytes(b)
		if n >= 0 && !utf8.Valid(s) {
			return nil, false
		}
		v = string(s)
	case num == valueStruct && typ == protowire.BytesType:
		var s []byte
		if s, n = protowire.ConsumeBytes(b); n >= 0 {
			if v, ok = protoStruct(s, depth+1); !ok {
				return nil, false
			}
		}
	case num == valueList && typ == protowire.BytesType:
		var s []byte
		if s, n = protowire.ConsumeBytes(b); n >= 0 {
			if v, ok = protoList(s, depth+1); !ok {
				return nil, false
			}
		}
	default:
		return nil, false
	}
	if n < 0 || n != len(b) { // malformed, or a second field (proto: the last kind wins)
		return nil, false
	}
	return v, true
}

func consumeVarint(b []byte) int {
	_, n := protowire.ConsumeVarint(b)
	return n
}

// protoList decodes a google.protobuf.ListValue.
func protoList(b []byte, depth int) ([]any, bool) {
	if depth > maxNesting {
		return nil, false
	}
	out := make([]any, 0, 4)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != listValues || typ != protowire.BytesType {
			return nil, false
		}
		b = b[n:]
		e, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		v, ok := protoValue1(e, depth)
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}
