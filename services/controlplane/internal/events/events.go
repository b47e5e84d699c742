// Package events streams an organization's changes to browsers as server-sent
// events (GET /v1/orgs/{org}/events, text/event-stream), so the web console can
// refresh what someone else changed. The stream follows the audit log: every
// committed write has exactly one audit entry, so every change is seen, in commit
// order, whatever service made it.
//
// The handler reads the audit log through the admin gRPC API over the process's
// loopback connection with the caller's own Authorization header: authentication,
// authorization (audit read on the organization), rate limits and error mapping are
// those of every other call. Refusals answer before the stream starts, with the
// status and JSON body of the REST API.
//
// Events:
//
//	event: ready    data: {"sequence":"N"}      the cursor the stream starts after
//	event: change   data: {"sequence","action","resource","resourceType","actorId","actorName","time","comment"}
//	                id: the entry's sequence (a reconnecting EventSource sends it
//	                back as Last-Event-ID and resumes after it)
//	event: reset    data: {}                   more changed than one poll reads: refetch everything
//	event: error    data: {"message"}          the stream ends (token revoked, ...)
//
// A comment line is sent every HeartbeatInterval so proxies keep the connection.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// AuditReader is the part of the audit API the stream polls.
type AuditReader interface {
	ListAuditEntries(ctx context.Context, in *adminv1.ListAuditEntriesRequest, opts ...grpc.CallOption) (*adminv1.ListAuditEntriesResponse, error)
}

// Config tunes the stream; zero fields take the defaults.
type Config struct {
	// PollInterval is how often the audit log is read (default 1 s).
	PollInterval time.Duration
	// HeartbeatInterval is how often a comment keeps an idle stream alive (15 s).
	HeartbeatInterval time.Duration
	// Page is how many entries one poll reads (default 100); more new entries than
	// that between two polls send "reset".
	Page int32
}

func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 15 * time.Second
	}
	if c.Page <= 0 {
		c.Page = 100
	}
	return c
}

// Handler serves GET /v1/orgs/{org}/events.
type Handler struct {
	audit AuditReader
	cfg   Config
	log   *slog.Logger
}

// New returns the handler.
func New(audit AuditReader, cfg Config, log *slog.Logger) *Handler {
	return &Handler{audit: audit, cfg: cfg.withDefaults(), log: log}
}

// change is the data of a "change" event.
type change struct {
	Sequence     string `json:"sequence"`
	Action       string `json:"action"`
	Resource     string `json:"resource"`
	ResourceType string `json:"resourceType"`
	ActorID      string `json:"actorId"`
	ActorName    string `json:"actorName"`
	Time         string `json:"time"`
	Comment      string `json:"comment,omitempty"`
}

// writeStatus answers a refusal as the REST API does (status code, JSON status).
func writeStatus(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	body, _ := protojson.Marshal(st.Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	_, _ = w.Write(body)
}

// ServeHTTP streams until the client goes away or the caller loses access.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	ctx := r.Context()
	if a := r.Header.Get("Authorization"); a != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
	}
	// The first read checks access and sets the cursor: the latest entry, or the
	// one the client last saw.
	first, err := h.audit.ListAuditEntries(ctx, &adminv1.ListAuditEntriesRequest{Org: org, PageSize: 1})
	if err != nil {
		writeStatus(w, err)
		return
	}
	var cursor int64
	if es := first.GetEntries(); len(es) > 0 {
		cursor = es[0].GetSequence()
	}
	if last, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil && last > 0 && last < cursor {
		cursor = last
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream has no write deadline
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event, id string, data any) bool {
		b, _ := json.Marshal(data)
		if id != "" {
			if _, err := fmt.Fprintf(w, "id: %s\n", id); err != nil {
				return false
			}
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("ready", "", map[string]string{"sequence": strconv.FormatInt(cursor, 10)}) {
		return
	}
	poll := time.NewTicker(h.cfg.PollInterval)
	defer poll.Stop()
	beat := time.NewTicker(h.cfg.HeartbeatInterval)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-poll.C:
			resp, err := h.audit.ListAuditEntries(ctx, &adminv1.ListAuditEntriesRequest{Org: org, PageSize: h.cfg.Page})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if st := status.Convert(err); st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied {
					send("error", "", map[string]string{"message": st.Message()})
					return
				}
				h.log.WarnContext(ctx, "events: reading the audit log", slog.String("org", org), slog.Any("error", err))
				continue // transient (rate limit, database): try again next tick
			}
			es := resp.GetEntries() // newest first
			var fresh []*adminv1.AuditEntry
			for _, e := range es {
				if e.GetSequence() <= cursor {
					break
				}
				fresh = append(fresh, e)
			}
			if len(fresh) == len(es) && len(es) == int(h.cfg.Page) && cursor > 0 {
				if !send("reset", "", struct{}{}) {
					return
				}
			}
			for i := len(fresh) - 1; i >= 0; i-- {
				e := fresh[i]
				c := change{
					Sequence: strconv.FormatInt(e.GetSequence(), 10), Action: e.GetAction(), Resource: e.GetResource(),
					ResourceType: e.GetResourceType(), ActorID: e.GetActorId(), ActorName: e.GetActorName(),
					Time: e.GetTime().AsTime().UTC().Format(time.RFC3339Nano), Comment: e.GetComment(),
				}
				if !send("change", c.Sequence, c) {
					return
				}
				cursor = e.GetSequence()
			}
		}
	}
}
