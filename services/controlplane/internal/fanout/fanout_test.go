package fanout_test

import (
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
)

func TestASlowSubscriberIsDroppedAndNeverBlocksTheOthers(t *testing.T) {
	t.Parallel()
	h := fanout.New(4)
	slow := h.Subscribe()
	defer slow.Close()
	fast := h.Subscribe()
	defer fast.Close()
	got := make(chan uint64, 100)
	go func() {
		for ev := range fast.C() {
			got <- ev.Version
		}
	}()
	done := make(chan struct{})
	go func() {
		for v := uint64(1); v <= 50; v++ {
			h.Publish(fanout.Event{Version: v})
			time.Sleep(time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	select {
	case <-slow.Dropped():
	default:
		t.Fatal("slow subscriber was not dropped")
	}
	for v := uint64(1); v <= 50; v++ {
		select {
		case g := <-got:
			if g != v {
				t.Fatalf("fast subscriber got version %d, want %d", g, v)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("fast subscriber missed version %d", v)
		}
	}
	if n := h.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers registered, want 1", n)
	}
}
