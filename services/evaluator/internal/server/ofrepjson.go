package server

import (
	"encoding/json"
	"strconv"

	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

// appendOFREPItem appends ofrepItem(key, d) as JSON, written by hand for the
// bulk answer (hundreds of items) and the single-flag one: the same members as
// encoding/json writes for ofrepSuccess / ofrepFailure. A string that is not
// valid UTF-8 (which encoding/json would repair) makes it fall back to
// encoding/json for that item.
func appendOFREPItem(b []byte, key string, d *engine.Decision) []byte {
	start := len(b)
	out, ok := appendOFREPItemFast(b, key, d)
	if ok {
		return out
	}
	item, _ := ofrepItem(key, d)
	j, err := json.Marshal(item)
	if err != nil { // cannot happen: the item holds strings and numbers
		return append(b[:start], "null"...)
	}
	return append(b[:start], j...)
}

func appendOFREPItemFast(b []byte, key string, d *engine.Decision) ([]byte, bool) {
	var ok bool
	b = append(b, '{')
	if d.Reason == engine.ReasonError {
		if key != "" {
			b = append(b, `"key":`...)
			if b, ok = reqcodec.AppendString(b, key); !ok {
				return b, false
			}
			b = append(b, ',')
		}
		b = append(b, `"errorCode":`...)
		if b, ok = reqcodec.AppendString(b, d.ErrorCode); !ok {
			return b, false
		}
		if d.ErrorMessage != "" {
			b = append(b, `,"errorDetails":`...)
			if b, ok = reqcodec.AppendString(b, d.ErrorMessage); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	}
	b = append(b, `"key":`...)
	if b, ok = reqcodec.AppendString(b, key); !ok {
		return b, false
	}
	if d.Value != nil {
		mark := len(b)
		b = append(b, `,"value":`...)
		if b, ok = reqcodec.AppendValue(b, d.Value); !ok {
			b = b[:mark] // protojson cannot write it either: value omitted, as ofrepItem does
		}
	}
	b = append(b, `,"reason":`...)
	if b, ok = reqcodec.AppendString(b, d.Reason); !ok {
		return b, false
	}
	if d.Variant != "" {
		b = append(b, `,"variant":`...)
		if b, ok = reqcodec.AppendString(b, d.Variant); !ok {
			return b, false
		}
	}
	b = append(b, `,"metadata":{"manifestVersion":`...)
	b = strconv.AppendUint(b, d.ManifestVersion, 10)
	if d.RuleID != "" {
		b = append(b, `,"ruleId":`...)
		if b, ok = reqcodec.AppendString(b, d.RuleID); !ok {
			return b, false
		}
	}
	return append(b, "}}"...), true
}
