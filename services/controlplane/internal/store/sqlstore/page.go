package sqlstore

import (
	"encoding/base64"
	"strconv"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// pageArgs returns the page size and the sort key after which the page starts
// ("" for the first page). Tokens are opaque to callers: base64 of the last key.
func pageArgs(p store.Page) (int, string, error) {
	size := p.Size
	switch {
	case size <= 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	if p.Token == "" {
		return size, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.Token)
	if err != nil || len(b) == 0 {
		return 0, "", errs.Invalid("page_token", "invalid page token")
	}
	return size, string(b), nil
}

// cut trims a page fetched with size+1 rows and returns the next page token.
func cut[T any](items []T, size int, key func(T) string) ([]T, string) {
	if len(items) <= size {
		return items, ""
	}
	items = items[:size]
	return items, base64.RawURLEncoding.EncodeToString([]byte(key(items[size-1])))
}

func parseInt(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errs.Invalid("page_token", "invalid page token")
	}
	return v, nil
}
