package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// maxManifestBytes bounds a manifest read from GET /v1/manifest.
const maxManifestBytes = 64 << 20

// errResubscribe ends a stream so that the client reconnects from the version it
// holds (a delta gap, or a heartbeat announcing a version it does not have).
var errResubscribe = errors.New("sdk: resubscribing from the version held")

func (c *Client) authorize(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.cfg.SDKKey)
}

// fatal reports whether err means the evaluator refused the SDK key.
func fatal(err error) bool {
	if errors.Is(err, ErrKeyRefused) {
		return true
	}
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// run syncs until ctx ends or the key is refused: streaming first, polling after
// StreamFailuresBeforePolling consecutive stream failures (for PollingPeriod),
// backing off between failures.
func (c *Client) run(ctx context.Context) {
	b := c.cfg.Backoff
	attempt, failures := 0, 0
	polling := c.conn == nil
	var pollUntil time.Time
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if polling {
			c.setMode(ModePolling)
			quick, retryAfter, err := c.poll(ctx)
			if ctx.Err() != nil {
				return
			}
			if fatal(err) {
				c.setFatal(fmt.Errorf("%w: %w", ErrKeyRefused, err))
				return
			}
			var wait time.Duration
			switch {
			case err != nil:
				c.setError(err)
				c.log.Debug("poll failed", "error", err, "attempt", attempt)
				wait = max(b.Delay(attempt, rand.Float64()), retryAfter)
				attempt++
			case quick:
				attempt = 0
				wait = b.Min // a 304 that did not wait: never poll in a tight loop
			default:
				attempt = 0
			}
			if c.conn != nil && !c.cfg.Now().Before(pollUntil) {
				c.log.Info("trying to stream again")
				polling, failures, attempt = false, c.cfg.StreamFailuresBeforePolling-1, 0
			}
			if wait > 0 && !sleep(wait) {
				return
			}
			continue
		}

		c.setMode(ModeStreaming)
		connected, err := c.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if fatal(err) {
			c.setFatal(fmt.Errorf("%w: %w", ErrKeyRefused, err))
			return
		}
		if connected > 0 {
			failures = 0
			if connected >= b.ResetAfter {
				attempt = 0
			}
		} else {
			failures++
		}
		if errors.Is(err, errResubscribe) && connected > b.Min {
			c.log.Debug("resubscribing", "error", err)
			continue // no backoff after a healthy stream: catch up at once
		}
		if err != nil && !errors.Is(err, errResubscribe) {
			c.setError(err)
		}
		if failures >= c.cfg.StreamFailuresBeforePolling && c.cfg.HTTPURL != "" {
			c.log.Warn("streaming keeps failing; polling instead", "error", err, "failures", failures, "for", c.cfg.PollingPeriod)
			polling, pollUntil, attempt = true, c.cfg.Now().Add(c.cfg.PollingPeriod), 0
			continue
		}
		d := b.Delay(attempt, rand.Float64())
		attempt++
		c.log.Debug("stream ended; reconnecting", "error", err, "in", d)
		if !sleep(d) {
			return
		}
	}
}

// stream runs one StreamManifest call from the version held until it ends.
// connected is how long it delivered messages (0: it never delivered one).
func (c *Client) stream(ctx context.Context) (connected time.Duration, err error) {
	sctx, cancel := context.WithCancel(c.authorize(ctx))
	defer cancel()
	var from uint64
	if h := c.held(); h != nil {
		from = h.GetVersion()
	}
	st, err := c.api.StreamManifest(sctx, &evaluationv1.StreamManifestRequest{FromVersion: from})
	if err != nil {
		return 0, err
	}
	var first time.Time
	legacy := false // the evaluator sent no StreamStart: ready at the first manifest
	since := func() time.Duration {
		if first.IsZero() {
			return 0
		}
		return max(time.Since(first), time.Nanosecond)
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("sdk: the evaluator ended the stream")
			}
			return since(), err
		}
		if first.IsZero() {
			first = time.Now()
			if _, ok := resp.GetEvent().(*evaluationv1.StreamManifestResponse_Start); !ok {
				legacy = true
			}
		}
		switch ev := resp.GetEvent().(type) {
		case *evaluationv1.StreamManifestResponse_Start:
			c.setHead(ev.Start.GetHeadVersion())
			continue
		case *evaluationv1.StreamManifestResponse_Snapshot:
			if _, err := c.applySnapshot(ev.Snapshot); err != nil {
				if errors.Is(err, manifest.ErrStale) {
					c.markSync() // a version we already hold
					continue
				}
				c.log.Warn("manifest refused; keeping the one held", "error", err)
				c.setError(err)
				continue
			}
		case *evaluationv1.StreamManifestResponse_Delta:
			if err := c.applyDelta(ev.Delta); err != nil {
				if errors.Is(err, errGap) {
					return since(), fmt.Errorf("%w: %w", errResubscribe, err)
				}
				c.log.Warn("delta refused; keeping the manifest held", "error", err)
				c.setError(err)
				continue
			}
		case *evaluationv1.StreamManifestResponse_Heartbeat:
			if h := c.held(); h == nil || ev.Heartbeat.GetVersion() > h.GetVersion() {
				return since(), fmt.Errorf("%w: the evaluator holds version %d", errResubscribe, ev.Heartbeat.GetVersion())
			}
			// The evaluator's current version is held: caught up.
			c.setHead(ev.Heartbeat.GetVersion())
			c.markSync()
		case *evaluationv1.StreamManifestResponse_Closing:
			c.log.Info("the evaluator is closing the stream", "reason", ev.Closing.GetReason(), "message", ev.Closing.GetMessage())
		}
		if legacy {
			if h := c.held(); h != nil {
				c.setHead(h.GetVersion())
			}
		}
	}
}

// poll makes one GET /v1/manifest: without a manifest held it answers at once;
// with one, it sends the manifest's ETag and waits up to PollWait for a newer one.
// quick reports a 304 that came back early (the server did not wait).
func (c *Client) poll(ctx context.Context) (quick bool, retryAfter time.Duration, err error) {
	u := c.cfg.HTTPURL + "/v1/manifest"
	etag := ""
	if h := c.held(); h != nil {
		// The evaluator's ETag: "<org/project/env>-<version>-<issuedAt unix nanos>".
		etag = `"` + manifest.Target(h) + "-" + strconv.FormatUint(h.GetVersion(), 10) + "-" +
			strconv.FormatInt(h.GetIssuedAt().AsTime().UnixNano(), 10) + `"`
		u += "?wait=" + c.cfg.PollWait.String()
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.PollWait+15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.SDKKey)
	req.Header.Set("Accept", "application/x-protobuf")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusOK:
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes))
		if err != nil {
			return false, 0, err
		}
		sm, err := ReadSignedManifest(body)
		if err != nil {
			return false, 0, err
		}
		if _, err := c.applySnapshot(sm); err != nil && !errors.Is(err, manifest.ErrStale) {
			c.log.Warn("manifest refused; keeping the one held", "error", err)
			return true, 0, err
		}
		if h := c.held(); h != nil {
			c.setHead(h.GetVersion()) // the evaluator's current manifest (or one newer held)
		}
		c.markSync()
		return false, 0, nil
	case http.StatusNotModified:
		if h := c.held(); h != nil {
			c.setHead(h.GetVersion()) // the evaluator says what is held is current
		}
		c.markSync()
		return etag == "" || time.Since(start) < c.cfg.PollWait/2, 0, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, 0, fmt.Errorf("%w: GET /v1/manifest: %s", ErrKeyRefused, resp.Status)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return false, retryAfter, fmt.Errorf("sdk: GET /v1/manifest: %s", resp.Status)
}
