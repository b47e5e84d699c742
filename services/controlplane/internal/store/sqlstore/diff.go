package sqlstore

import (
	"reflect"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// diffJSON lists the operations that turn before into after, addressed by JSON
// pointers (RFC 6901). Objects are compared key by key, arrays index by index.
func diffJSON(before, after any) []*adminv1.DiffOperation {
	var ops []*adminv1.DiffOperation
	diffAt("", before, after, &ops)
	return ops
}

func diffAt(path string, a, b any, ops *[]*adminv1.DiffOperation) {
	if reflect.DeepEqual(a, b) {
		return
	}
	switch {
	case a == nil:
		*ops = append(*ops, op("add", path, nil, b))
		return
	case b == nil:
		*ops = append(*ops, op("remove", path, a, nil))
		return
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			diffAt(path+"/"+pointerEscape(k), am[k], bm[k], ops)
		}
		return
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok {
		n := max(len(al), len(bl))
		for i := range n {
			var x, y any
			if i < len(al) {
				x = al[i]
			}
			if i < len(bl) {
				y = bl[i]
			}
			diffAt(path+"/"+strconv.Itoa(i), x, y, ops)
		}
		return
	}
	*ops = append(*ops, op("replace", path, a, b))
}

func op(kind, path string, before, after any) *adminv1.DiffOperation {
	o := &adminv1.DiffOperation{Op: kind, Path: path}
	if before != nil {
		o.Before, _ = structpb.NewValue(before)
	}
	if after != nil {
		o.After, _ = structpb.NewValue(after)
	}
	return o
}

func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
