package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/storetest"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

var meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com", RequestID: "req-1"}

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the suite connected as the application's login role, so it
// also proves that the grants of flagforge_app are sufficient.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, testpg.AppURL(t, testpg.New(t)))
	})
}

// seed creates org acme, project web and flag "a"; it returns the store.
func seed(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s := open(t, url)
	ctx := t.Context()
	if _, err := s.CreateOrg(ctx, meta, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateProject(ctx, meta, "acme", &adminv1.Project{Key: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFlag(ctx, meta, store.ProjectRef{Org: "acme", Project: "web"}, &adminv1.Flag{Key: "a",
		Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN}, nil, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func conn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestAuditEntriesCannotBeChangedByTheAppRoleNorTheOwner(t *testing.T) {
	t.Parallel()
	url := testpg.New(t)
	seed(t, url)
	cases := []struct {
		name, sql string
	}{
		{"update", "UPDATE audit_entries SET comment = 'x'"},
		{"delete", "DELETE FROM audit_entries"},
		{"truncate", "TRUNCATE audit_entries"},
	}
	for _, who := range []struct{ name, url string }{{"app role", testpg.AppURL(t, url)}, {"owner", url}} {
		c := conn(t, who.url)
		for _, tc := range cases {
			t.Run(who.name+" "+tc.name, func(t *testing.T) {
				_, err := c.Exec(t.Context(), tc.sql)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" { // insufficient_privilege (grant or trigger)
					t.Fatalf("%s as %s: got %v, want insufficient_privilege", tc.sql, who.name, err)
				}
				t.Logf("refused as expected: %s", pe.Message)
			})
		}
		var n int
		if err := c.QueryRow(t.Context(), "SELECT count(*) FROM audit_entries").Scan(&n); err != nil || n != 3 {
			t.Errorf("%s: %d entries (%v), want the 3 written", who.name, n, err)
		}
	}
	// The app role can still append (INSERT) through the store.
	s := open(t, testpg.AppURL(t, url))
	if _, err := s.UpdateFlagConfig(t.Context(), meta, store.EnvRef{Org: "acme", Project: "web", Environment: "production"},
		"a", &manifestv1.FlagConfig{On: true}, 1, nil); err != nil {
		t.Fatalf("write as app role: %v", err)
	}
}

func TestVerifyAuditNamesTheFirstEntryASuperuserEdited(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		tamper  string
		broken  int64
		problem string
	}{
		{"edited comment", "UPDATE audit_entries SET comment = 'nothing to see' WHERE seq = 2", 2, "hash"},
		{"edited after", `UPDATE audit_entries SET after_json = '{"key":"b"}' WHERE seq = 3`, 3, "hash"},
		{"deleted entry", "DELETE FROM audit_entries WHERE seq = 2", 3, "sequence"},
		{"recomputed hash without relinking", "UPDATE audit_entries SET hash = repeat('0', 64) WHERE seq = 2", 2, "hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := testpg.New(t)
			s := seed(t, url)
			if _, err := s.UpdateFlagConfig(t.Context(), meta, store.EnvRef{Org: "acme", Project: "web", Environment: "production"},
				"a", &manifestv1.FlagConfig{On: true}, 1, nil); err != nil {
				t.Fatal(err)
			}
			if v, err := s.VerifyAudit(t.Context(), "acme"); err != nil || !v.OK || v.Checked != 4 {
				t.Fatalf("before tampering: %+v %v", v, err)
			}
			c := conn(t, url)
			tx, err := c.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// A superuser can bypass the triggers; RLS does not apply to superusers.
			if _, err := tx.Exec(t.Context(), "SET LOCAL session_replication_role = replica"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(t.Context(), tc.tamper); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			v, err := s.VerifyAudit(t.Context(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if v.OK || v.FirstBroken.GetSequence() != tc.broken {
				t.Fatalf("VerifyAudit = ok %v first broken %v (%s); want entry %d", v.OK, v.FirstBroken.GetSequence(), v.Problem, tc.broken)
			}
			if !strings.Contains(v.Problem, tc.problem) {
				t.Errorf("problem %q does not mention %q", v.Problem, tc.problem)
			}
		})
	}
}

func TestConcurrentWritersToOneOrganizationKeepTheAuditChainValid(t *testing.T) {
	t.Parallel()
	url := testpg.New(t)
	s := seed(t, testpg.AppURL(t, url))
	ctx := t.Context()
	const writers, writes = 8, 20
	ref := store.ProjectRef{Org: "acme", Project: "web"}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		key := fmt.Sprintf("w%d", w)
		if _, err := s.CreateFlag(ctx, meta, ref, &adminv1.Flag{Key: key}, nil, nil); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
			for i := range writes {
				if _, err := s.UpdateFlagConfig(ctx, meta, env, key, &manifestv1.FlagConfig{On: i%2 == 0}, int64(i+1), nil); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	v, err := s.VerifyAudit(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := int64(3 + writers + writers*writes)
	if !v.OK || v.Checked != want {
		t.Fatalf("VerifyAudit = %+v (%s), want OK with %d entries", v, v.Problem, want)
	}
}

const helperEnv = "FLAGFORGE_TEST_CRASH_HELPER_URL"

// TestHelperProcess is not a test: TestCrashMidTransactionLeavesNothing runs the
// test binary again with helperEnv set, and this function then plays the control
// plane that dies in the middle of a write.
func TestHelperProcess(t *testing.T) {
	url := os.Getenv(helperEnv)
	if url == "" {
		t.Skip("helper process for TestCrashMidTransactionLeavesNothing")
	}
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	env := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	_, err = s.UpdateFlagConfig(context.Background(), meta, env, "a", &manifestv1.FlagConfig{On: true}, 1, func(store.EnvView) error {
		fmt.Println("ready") // the update is executed, uncommitted
		select {}            // wait for SIGKILL
	})
	fmt.Println("error: write returned", err)
	os.Exit(2)
}

func TestCrashMidTransactionLeavesNothing(t *testing.T) {
	t.Parallel()
	url := testpg.New(t)
	s := seed(t, url)
	ctx := t.Context()
	audit := func() int {
		v, err := s.VerifyAudit(ctx, "acme")
		if err != nil || !v.OK {
			t.Fatalf("VerifyAudit: %+v %v", v, err)
		}
		return int(v.Checked)
	}
	outbox := func() int {
		ev, err := s.PendingOutbox(ctx, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(ev)
	}
	a0, o0 := audit(), outbox()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+url)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" || strings.HasPrefix(sc.Text(), "error:") {
				ready <- sc.Text()
				return
			}
		}
		ready <- "eof"
	}()
	select {
	case msg := <-ready:
		if msg != "ready" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("helper: %s", msg)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("helper never reached the Check callback")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // reap it: PID 1 here does not

	env := store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	c, err := s.GetFlagConfig(ctx, env, "a")
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision != 1 || c.Config.GetOn() {
		t.Errorf("config after the crash = %v, want revision 1, off", c)
	}
	if a, o := audit(), outbox(); a != a0 || o != o0 {
		t.Errorf("after the crash: %d audit entries (was %d), %d outbox rows (was %d)", a, a0, o, o0)
	}
	// The row lock of the dead transaction is gone: the write succeeds now.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.UpdateFlagConfig(wctx, meta, env, "a", &manifestv1.FlagConfig{On: true}, 1, nil); err != nil {
		t.Fatalf("write after the crash: %v", err)
	}
}
