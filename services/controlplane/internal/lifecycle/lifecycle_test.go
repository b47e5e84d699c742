package lifecycle

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func TestStatusFollowsTheLifecycleRulesAtAnInjectedTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	on := &manifestv1.FlagConfig{On: true, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}
	rollout := &manifestv1.FlagConfig{On: true, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Rollout{Rollout: &manifestv1.Rollout{}}}}
	withRule := &manifestv1.FlagConfig{On: true, Rules: []*manifestv1.Rule{{Id: "r"}}}
	off := &manifestv1.FlagConfig{On: false}
	plain := &adminv1.Flag{Key: "f"}
	tests := []struct {
		name string
		flag *adminv1.Flag
		fc   *adminv1.FlagEnvironmentConfig
		want adminv1.FlagStatus
	}{
		{"off and never evaluated is new", plain, &adminv1.FlagEnvironmentConfig{Config: off, UpdateTime: at(day)}, adminv1.FlagStatus_FLAG_STATUS_NEW},
		{"evaluated within 7 days is active", plain, &adminv1.FlagEnvironmentConfig{Config: rollout, UpdateTime: at(100 * day), LastEvaluated: at(6 * day)}, adminv1.FlagStatus_FLAG_STATUS_ACTIVE},
		{"on but never evaluated is inactive", plain, &adminv1.FlagEnvironmentConfig{Config: withRule, UpdateTime: at(day)}, adminv1.FlagStatus_FLAG_STATUS_INACTIVE},
		{"no longer evaluated (8 days) is inactive", plain, &adminv1.FlagEnvironmentConfig{Config: rollout, UpdateTime: at(day), LastEvaluated: at(8 * day)}, adminv1.FlagStatus_FLAG_STATUS_INACTIVE},
		{"temporary past its expiry is stale even when active", &adminv1.Flag{Temporary: true, ExpiresAt: at(time.Second)}, &adminv1.FlagEnvironmentConfig{Config: rollout, UpdateTime: at(day), LastEvaluated: at(time.Hour)}, adminv1.FlagStatus_FLAG_STATUS_STALE},
		{"temporary before its expiry is not stale", &adminv1.Flag{Temporary: true, ExpiresAt: at(-day)}, &adminv1.FlagEnvironmentConfig{Config: rollout, UpdateTime: at(day), LastEvaluated: at(time.Hour)}, adminv1.FlagStatus_FLAG_STATUS_ACTIVE},
		{"on serving one variant to everyone for 30 days is stale", plain, &adminv1.FlagEnvironmentConfig{Config: on, UpdateTime: at(30 * day), LastEvaluated: at(time.Hour)}, adminv1.FlagStatus_FLAG_STATUS_STALE},
		{"on serving one variant for 29 days is still active", plain, &adminv1.FlagEnvironmentConfig{Config: on, UpdateTime: at(29 * day), LastEvaluated: at(time.Hour)}, adminv1.FlagStatus_FLAG_STATUS_ACTIVE},
		{"off for 30 days is stale", plain, &adminv1.FlagEnvironmentConfig{Config: off, UpdateTime: at(31 * day)}, adminv1.FlagStatus_FLAG_STATUS_STALE},
		{"rules are not one variant: not stale after 30 days", plain, &adminv1.FlagEnvironmentConfig{Config: withRule, UpdateTime: at(90 * day), LastEvaluated: at(day)}, adminv1.FlagStatus_FLAG_STATUS_ACTIVE},
		{"archived wins over everything", &adminv1.Flag{Archived: true, Temporary: true, ExpiresAt: at(day)}, &adminv1.FlagEnvironmentConfig{Config: off, UpdateTime: at(90 * day)}, adminv1.FlagStatus_FLAG_STATUS_ARCHIVED},
	}
	c := Defaults()
	for _, tt := range tests {
		if got := c.Status(tt.flag, tt.fc, now); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
	short := Config{ActiveWindow: time.Hour, StaleAfter: 2 * day}
	if got := short.Status(plain, &adminv1.FlagEnvironmentConfig{Config: on, UpdateTime: at(3 * day), LastEvaluated: at(time.Minute)}, now); got != adminv1.FlagStatus_FLAG_STATUS_STALE {
		t.Errorf("configured stale-after of 2 days: got %s", got)
	}
}
