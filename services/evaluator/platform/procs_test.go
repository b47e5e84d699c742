package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"

	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries built by TestMain.
var (
	controlPlaneBin string
	evaluatorBin    string
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if mode := os.Getenv("FLAGFORGE_CHAOS_CLIENT"); mode != "" {
		return runStreamClient(mode) // a child process of a fault test
	}
	if upstream := os.Getenv("FLAGFORGE_CHAOS_PROXY"); upstream != "" {
		return runCountingProxy(upstream) // a child process of a fault test
	}
	dir, err := os.MkdirTemp("", "flagforge-platform-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	controlPlaneBin = filepath.Join(dir, "flagforge-controlplane")
	evaluatorBin = filepath.Join(dir, "flagforge-evaluator")
	// By directory, so the build works with and without the workspace.
	for _, b := range []struct{ out, moduleDir, pkg string }{
		{controlPlaneBin, "../../controlplane", "./cmd/controlplane"},
		{evaluatorBin, "..", "./cmd/evaluator"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.moduleDir
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// unavailable skips the test loudly, or fails it under CI=true.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := "SKIPPING: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

// logBuffer collects a process's output for the failure report.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a child process; Stop (or the test's cleanup) ends it and waits for it.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
	err  error
	// stop is the signal that asks the process to end (default SIGTERM).
	stop syscall.Signal
}

// start runs bin with env added to the test's environment. The process is stopped
// at the end of the test; its output is printed when the test failed.
func start(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startAs(t, nil, syscall.SIGTERM, name, bin, env, args...)
}

// startAs is start with credentials (nil: the test's) and a stop signal.
func startAs(t *testing.T, cred *syscall.Credential, stop syscall.Signal, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, logs: &logBuffer{}, done: make(chan struct{}), stop: stop}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(p.logs.String(), 60))
		}
	})
	return p
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// Stop sends the stop signal and waits (SIGKILL after 10 s). Safe to call twice.
func (p *proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(p.stop)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not stop within 10s of %s; killing it", p.name, p.stop)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Exited reports whether the process has ended.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls url until it answers 200 (or the process exits).
func (p *proc) waitReady(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			p.t.Fatalf("%s exited (%v) before %s was ready:\n%s", p.name, p.err, url, tail(p.logs.String(), 40))
		}
		r, err := http.Get(url) //nolint:noctx // a short poll in a test
		if err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s: %s not ready after %s:\n%s", p.name, url, timeout, tail(p.logs.String(), 40))
}

// redisServer is the test's own redis-server on a free port, without persistence:
// stopping it loses its content, like a failed-over cache.
type redisServer struct {
	t    *testing.T
	bin  string
	port int
	p    *proc
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server not found in PATH: %v", err)
	}
	r := &redisServer{t: t, bin: bin, port: freePort(t)}
	r.Start()
	return r
}

// URL is the server's redis:// URL.
func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// Start (re)starts the server on its port and waits until it accepts connections.
func (r *redisServer) Start() {
	r.t.Helper()
	r.p = start(r.t, fmt.Sprintf("redis-server :%d", r.port), r.bin,
		nil, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), 200*time.Millisecond)
		if err == nil {
			_, _ = c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := c.Read(buf)
			_ = c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return
			}
		}
		if r.p.Exited() {
			r.t.Fatalf("redis-server exited: %s", r.p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not start")
}

// Stop stops the server and waits for it.
func (r *redisServer) Stop() { r.p.Stop() }

// freshPostgres creates a database with a random name through the superuser URL
// (FLAGFORGE_TEST_POSTGRES_URL) and drops it at the end of the test. It uses psql,
// which ships with PostgreSQL, so this module needs no database driver.
func freshPostgres(t *testing.T) string {
	t.Helper()
	super := os.Getenv("FLAGFORGE_TEST_POSTGRES_URL")
	if super == "" {
		super = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		unavailable(t, "psql not found in PATH: %v", err)
	}
	sql := func(q string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", super, "-c", q).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", q, err, out)
		}
		return nil
	}
	if err := sql("SELECT 1"); err != nil {
		unavailable(t, "PostgreSQL not reachable at %s (set FLAGFORGE_TEST_POSTGRES_URL): %v", super, err)
	}
	name := "flagforge_platform_" + randomHex(6)
	if err := sql("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("dropping the test database: %v", err)
		}
	})
	u, err := url.Parse(super)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// privatePostgres is a PostgreSQL cluster of the test's own, on a free port, run
// as a child process (so it can be stopped and is waited for). As root it runs as
// the postgres user (PostgreSQL refuses root).
type privatePostgres struct {
	p   *proc
	url string
}

// startPrivatePostgres initialises and starts a cluster; ok is false when initdb
// and postgres cannot be found or run (the caller falls back to the shared server).
func startPrivatePostgres(t *testing.T) (pg *privatePostgres, ok bool) {
	t.Helper()
	bin := os.Getenv("FLAGFORGE_TEST_PG_BIN")
	if bin == "" {
		if initdb, err := exec.LookPath("initdb"); err == nil {
			bin = filepath.Dir(initdb)
		} else if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
			bin = filepath.Dir(m[len(m)-1])
		} else {
			return nil, false
		}
	}
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "flagforge-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Logf("no postgres user for a private cluster: %v", err)
			return nil, false
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	if cred != nil {
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Logf("initdb failed, using the shared server: %v\n%s", err, out)
		return nil, false
	}
	port := freePort(t)
	// SIGINT: fast shutdown (SIGTERM would wait for the control plane's sessions).
	p := startAs(t, cred, syscall.SIGINT, fmt.Sprintf("postgres :%d", port), filepath.Join(bin, "postgres"), nil,
		"-D", data, "-p", strconv.Itoa(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.logs.String(), "ready to accept connections") {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("private PostgreSQL did not start:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &privatePostgres{p: p, url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}, true
}

// Stop shuts the cluster down (fast) and waits for it.
func (pg *privatePostgres) Stop() { pg.p.Stop() }
