package httpapi

import (
	"context"
	"net/http"
	"regexp"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/server"
)

// dryRunPut matches the PUT routes that take ?dryRun=true: a flag's
// configuration and a segment of an environment. Their body is the whole request
// message, so the gateway cannot bind the query string to dry_run; it travels as
// metadata (server.DryRunHeader). PATCH binds ?dryRun= to the field itself.
var dryRunPut = regexp.MustCompile(`^/v1/orgs/[^/]+/projects/[^/]+/environments/[^/]+/(flags|segments)/[^/:]+$`)

// dryRunMetadata forwards ?dryRun= of a PUT to the admin API.
func dryRunMetadata(_ context.Context, r *http.Request) metadata.MD {
	if r.Method != http.MethodPut || !r.URL.Query().Has("dryRun") {
		return nil
	}
	return metadata.Pairs(server.DryRunHeader, r.URL.Query().Get("dryRun"))
}

// dryRunGuard refuses ?dryRun= that is not a boolean, and on a PUT route that
// has no dry run (it would otherwise write while the caller asked it not to).
func dryRunGuard(gw *runtime.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !q.Has("dryRun") {
			next.ServeHTTP(w, r)
			return
		}
		var err error
		if _, perr := strconv.ParseBool(q.Get("dryRun")); perr != nil {
			err = errs.Invalid("dryRun", "must be true or false, not %q", q.Get("dryRun"))
		} else if r.Method == http.MethodPut && !dryRunPut.MatchString(r.URL.Path) {
			err = errs.Invalid("dryRun", "this route has no dry run")
		}
		if err != nil {
			_, out := runtime.MarshalerForRequest(gw, r)
			errorHandler(r.Context(), gw, out, w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
