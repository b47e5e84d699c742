package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// service is one process under attack: its HTTP address, gRPC address and a
// request a legitimate client makes.
type service struct {
	name     string
	p        *proc
	httpAddr string
	grpcAddr string
	// hostile is the unauthenticated endpoint that takes a JSON body.
	hostile string
}

// startEmbeddedControlPlane runs the control plane on SQLite in dir (no external
// services) and waits for /readyz.
func startEmbeddedControlPlane(t *testing.T, dir string, extra ...string) *service {
	t.Helper()
	s := &service{name: "control plane", httpAddr: freeAddr(t), grpcAddr: freeAddr(t),
		hostile: "/v1/orgs/acme/projects/web/flags"}
	s.p = start(t, s.name, controlPlaneBin, append([]string{
		"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "flagforge.db"),
		"FLAGFORGE_DATA_DIR=" + dir,
		"FLAGFORGE_GRPC_ADDR=" + s.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + s.httpAddr,
		"FLAGFORGE_LOG_LEVEL=warn",
	}, extra...), "serve")
	s.p.waitReady("http://"+s.httpAddr+"/readyz", 30*time.Second)
	return s
}

// startBareEvaluator runs an evaluator with no manifest source (it holds nothing
// and is not ready) and waits for /healthz.
func startBareEvaluator(t *testing.T, dir string, extra ...string) *service {
	t.Helper()
	pub := filepath.Join(dir, "signing-key.pub.pem")
	if _, err := os.Stat(pub); err != nil {
		if out, err := exec.Command(controlPlaneBin, "keys", "generate", "-dir", dir).CombinedOutput(); err != nil {
			t.Fatalf("keys generate: %v\n%s", err, out)
		}
	}
	s := &service{name: "evaluator", httpAddr: freeAddr(t), grpcAddr: freeAddr(t), hostile: "/v1/evaluate/all"}
	s.p = start(t, s.name, evaluatorBin, append([]string{
		"FLAGFORGE_TRUSTED_KEYS=" + pub,
		"FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "evaluator"),
		"FLAGFORGE_GRPC_ADDR=" + s.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + s.httpAddr,
		"FLAGFORGE_ADMIN_ADDR=",
		"FLAGFORGE_LOG_LEVEL=warn",
	}, extra...))
	s.p.waitReady("http://"+s.httpAddr+"/healthz", 30*time.Second)
	return s
}

// memory returns the process's resident set and its peak (VmRSS, VmHWM) in bytes.
func memory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak
}

// resetPeak resets the process's VmHWM to its current RSS (Linux: writing 5 to
// clear_refs), so the peak measures what happens next.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// sendBody POSTs size bytes of JSON-looking data to addr+path over a raw
// connection (declared length, or chunked when chunked is set) and returns the
// response status line. The server may answer and close before the body is
// sent; the write error is then expected and ignored.
func sendBody(addr, path string, size int64, chunked bool) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	head := "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += "Content-Length: " + strconv.FormatInt(size, 10) + "\r\n\r\n"
	}
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		_, _ = w.WriteString(head)
		chunk := []byte(`{"context":{"k":"` + strings.Repeat("a", 32<<10) + `"}}`)
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			if chunked {
				_, _ = fmt.Fprintf(w, "%x\r\n", len(chunk))
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if chunked {
				_, _ = w.WriteString("\r\n")
			}
		}
		if chunked {
			_, _ = w.WriteString("0\r\n\r\n")
		}
		_ = w.Flush()
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestHostileBodiesAre413AndCostLittleMemory sends 200 MB unauthenticated
// bodies (declared length and chunked) to both services: each is answered 413
// and the process's peak resident memory grows by less than 50 MiB.
func TestHostileBodiesAre413AndCostLittleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 800 MB over loopback")
	}
	dir := t.TempDir()
	for _, s := range []*service{startEmbeddedControlPlane(t, filepath.Join(dir, "cp")), startBareEvaluator(t, dir)} {
		t.Run(s.name, func(t *testing.T) {
			pid := s.p.cmd.Process.Pid
			for _, chunked := range []bool{false, true} {
				before, _ := memory(t, pid)
				if err := resetPeak(pid); err != nil {
					t.Logf("cannot reset the peak (%v): measuring from the start", err)
				}
				start := time.Now()
				status, err := sendBody(s.httpAddr, s.hostile, 200<<20, chunked)
				if err != nil {
					t.Fatalf("chunked=%v: %v", chunked, err)
				}
				if !strings.Contains(status, " 413 ") {
					t.Fatalf("chunked=%v: %q, want 413", chunked, status)
				}
				time.Sleep(200 * time.Millisecond)
				_, peak := memory(t, pid)
				grew := peak - before
				t.Logf("%s, 200 MB body (chunked=%v): %s in %s; RSS before %.1f MiB, peak after %.1f MiB (grew %.1f MiB)",
					s.name, chunked, status, time.Since(start).Round(time.Millisecond), mib(before), mib(peak), mib(grew))
				if grew >= 50<<20 {
					t.Errorf("%s grew by %.1f MiB for a refused body", s.name, mib(grew))
				}
			}
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestHostileGRPCMessagesAreResourceExhaustedAndCostLittleMemory sends a 200 MB
// unauthenticated message over gRPC to both services (EvaluateAll, CreateProject):
// each answers RESOURCE_EXHAUSTED from the length prefix and its peak memory grows
// by less than 50 MiB.
func TestHostileGRPCMessagesAreResourceExhaustedAndCostLittleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 400 MB over loopback")
	}
	dir := t.TempDir()
	huge := strings.Repeat("a", 200<<20)
	big, err := structpb.NewStruct(map[string]any{"targetingKey": huge})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(context.Context, *grpc.ClientConn) error{
		"evaluator": func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := evaluationv1.NewEvaluationServiceClient(conn).EvaluateAll(ctx, &evaluationv1.EvaluateAllRequest{Context: big})
			return err
		},
		"control plane": func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := adminv1.NewProjectServiceClient(conn).CreateProject(ctx, &adminv1.CreateProjectRequest{
				Org: "acme", Project: &adminv1.Project{Key: "web", Name: huge}})
			return err
		},
	}
	for _, s := range []*service{startEmbeddedControlPlane(t, filepath.Join(dir, "cp")), startBareEvaluator(t, dir)} {
		pid := s.p.cmd.Process.Pid
		conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		before, _ := memory(t, pid)
		_ = resetPeak(pid)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		err = calls[s.name](ctx, conn)
		cancel()
		_ = conn.Close()
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("%s, 200 MB message: %v, want RESOURCE_EXHAUSTED", s.name, err)
		}
		time.Sleep(200 * time.Millisecond)
		_, peak := memory(t, pid)
		t.Logf("%s, 200 MB gRPC message: %v; RSS before %.1f MiB, peak after %.1f MiB (grew %.1f MiB)",
			s.name, status.Convert(err).Message(), mib(before), mib(peak), mib(peak-before))
		if peak-before >= 50<<20 {
			t.Errorf("%s grew by %.1f MiB for a refused message", s.name, mib(peak-before))
		}
	}
}

// postJSON POSTs a valid JSON body of exactly size bytes (head, then "a"s, then
// tail) to url without credentials and returns the status code.
func postJSON(t *testing.T, url, head, tail string, size int) int {
	t.Helper()
	body := head + strings.Repeat("a", size-len(head)-len(tail)) + tail
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s (%d bytes): %v", url, size, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestARaisedBodyLimitAppliesToEveryRESTEntry raises FLAGFORGE_MAX_REQUEST_BYTES
// to 6 MiB on both services: a 5 MiB body reaches every REST entry that takes a
// body (it is refused for its missing credentials, 401, not for its size; the
// control plane's gateway hands it to its gRPC server, whose default message
// limit is 4 MiB), and a body one byte over 6 MiB is 413 on each.
func TestARaisedBodyLimitAppliesToEveryRESTEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100 MB over loopback")
	}
	const limit = 6 << 20
	raise := "FLAGFORGE_MAX_REQUEST_BYTES=" + strconv.Itoa(limit)
	dir := t.TempDir()
	cp := startEmbeddedControlPlane(t, filepath.Join(dir, "cp"), raise)
	ev := startBareEvaluator(t, dir, raise)
	const ctxHead, ctxTail = `{"context":{"k":"`, `"}}`
	entries := []struct {
		s          *service
		path       string
		head, tail string
	}{
		{cp, "/v1/orgs/acme/projects/web/flags", `{"flag":{"key":"big","type":"FLAG_TYPE_BOOLEAN","description":"`, `"}}`},
		{cp, "/v1/orgs/acme/projects", `{"project":{"key":"big","name":"`, `"}}`},
		{ev, "/v1/evaluate", `{"flagKey":"banner","context":{"k":"`, `"}}`},
		{ev, "/v1/evaluate/all", ctxHead, ctxTail},
		{ev, "/ofrep/v1/evaluate/flags/banner", ctxHead, ctxTail},
		{ev, "/ofrep/v1/evaluate/flags", ctxHead, ctxTail},
	}
	for _, e := range entries {
		url := "http://" + e.s.httpAddr + e.path
		if got := postJSON(t, url, e.head, e.tail, 5<<20); got != http.StatusUnauthorized {
			t.Errorf("%s %s, 5 MiB body under a 6 MiB limit: %d, want 401 (refused for the missing key, not the size)", e.s.name, e.path, got)
		}
		if got := postJSON(t, url, e.head, e.tail, limit+1); got != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s, body of the limit + 1 byte: %d, want 413", e.s.name, e.path, got)
		}
	}
}

// slowRequest sends a request whose body (or, for gRPC, connection preface)
// trickles a byte every interval, and returns how long until the server cut it
// (answered or closed the connection).
func slowRequest(addr, head string, interval time.Duration, giveUp time.Duration) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		return 0, err
	}
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		buf := make([]byte, 512)
		_ = c.SetReadDeadline(start.Add(giveUp))
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-cut:
			if d := time.Since(start); d < giveUp {
				return d, nil
			}
			return 0, errors.New("still open")
		case <-t.C:
			_, _ = c.Write([]byte("a"))
		}
	}
}

// TestSlowClientsAreCutAndDoNotStopOthers trickles request bodies (and a gRPC
// connection preface) a byte every 2 s into both services: each is cut within
// 15 s, and while 100 such connections are open normal requests are answered at
// once.
func TestSlowClientsAreCutAndDoNotStopOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for read timeouts")
	}
	dir := t.TempDir()
	services := []*service{startEmbeddedControlPlane(t, filepath.Join(dir, "cp")), startBareEvaluator(t, dir)}
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slowHead := "POST " + s.hostile + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
			const slow = 100
			cuts := make(chan time.Duration, slow+2)
			errc := make(chan error, slow+2)
			var inner sync.WaitGroup
			for i := range slow + 2 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					addr, head := s.httpAddr, slowHead
					switch i {
					case slow: // slow headers
						head = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
					case slow + 1: // a gRPC connection preface a byte at a time
						addr, head = s.grpcAddr, "P"
					}
					d, err := slowRequest(addr, head, 2*time.Second, 20*time.Second)
					if err != nil {
						errc <- fmt.Errorf("%s slow connection %d: %w", s.name, i, err)
						return
					}
					cuts <- d
				}()
			}
			// Meanwhile normal requests are answered at once.
			time.Sleep(time.Second)
			var worst time.Duration
			for range 20 {
				start := time.Now()
				r, err := http.Get("http://" + s.httpAddr + "/healthz") //nolint:noctx // a bounded probe
				if err != nil {
					errc <- fmt.Errorf("%s: a normal request failed beside slow clients: %w", s.name, err)
					break
				}
				_, _ = io.Copy(io.Discard, r.Body)
				_ = r.Body.Close()
				worst = max(worst, time.Since(start))
				time.Sleep(200 * time.Millisecond)
			}
			inner.Wait()
			close(cuts)
			close(errc)
			var longest time.Duration
			n := 0
			for d := range cuts {
				longest = max(longest, d)
				n++
			}
			for err := range errc {
				t.Error(err)
			}
			t.Logf("%s: %d slow connections cut, the last after %s; normal requests beside them: worst %s",
				s.name, n, longest.Round(time.Millisecond), worst.Round(time.Millisecond))
			if longest > 15*time.Second {
				t.Errorf("%s: a slow connection lasted %s", s.name, longest)
			}
			if worst > time.Second {
				t.Errorf("%s: a normal request took %s beside slow clients", s.name, worst)
			}
		}()
	}
	wg.Wait()
}

// TestABusyPortExitsOneNamingTheAddress starts both binaries on a port already
// taken: each exits with status 1 and a message naming the address (no panic).
func TestABusyPortExitsOneNamingTheAddress(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command(controlPlaneBin, "keys", "generate", "-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	taken := busy.Addr().String()
	tests := []struct {
		name string
		bin  string
		env  []string
		args []string
	}{
		{"control plane, HTTP port taken", controlPlaneBin, []string{
			"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "a.db"), "FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "a"),
			"FLAGFORGE_GRPC_ADDR=" + freeAddr(t), "FLAGFORGE_HTTP_ADDR=" + taken}, []string{"serve"}},
		{"control plane, gRPC port taken", controlPlaneBin, []string{
			"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "b.db"), "FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "b"),
			"FLAGFORGE_GRPC_ADDR=" + taken, "FLAGFORGE_HTTP_ADDR=" + freeAddr(t)}, []string{"serve"}},
		{"control plane, OIDC issuer unreachable", controlPlaneBin, []string{
			"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "c.db"), "FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "c"),
			"FLAGFORGE_GRPC_ADDR=" + freeAddr(t), "FLAGFORGE_HTTP_ADDR=" + freeAddr(t),
			"FLAGFORGE_OIDC_ISSUER=http://" + freeAddr(t), "FLAGFORGE_OIDC_AUDIENCE=flagforge"}, []string{"serve"}},
		{"evaluator, HTTP port taken", evaluatorBin, []string{
			"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(dir, "signing-key.pub.pem"), "FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "e"),
			"FLAGFORGE_GRPC_ADDR=" + freeAddr(t), "FLAGFORGE_HTTP_ADDR=" + taken, "FLAGFORGE_ADMIN_ADDR="}, nil},
		{"evaluator, gRPC port taken", evaluatorBin, []string{
			"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(dir, "signing-key.pub.pem"), "FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "f"),
			"FLAGFORGE_GRPC_ADDR=" + taken, "FLAGFORGE_HTTP_ADDR=" + freeAddr(t), "FLAGFORGE_ADMIN_ADDR="}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.name, tt.bin, tt.env, tt.args...)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("still running after 30 s:\n%s", tail(p.logs.String(), 20))
			}
			out := p.logs.String()
			var ee *exec.ExitError
			if !errors.As(p.err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", p.err)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("panicked:\n%s", out)
			}
			want := taken
			if strings.Contains(tt.name, "OIDC") {
				want = "oidc"
			}
			if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
				t.Errorf("the message does not name %s:\n%s", want, out)
			}
		})
	}
}

// guideSQL returns the first SQL block of the "## PostgreSQL" section of
// docs/controlplane.md, statement by statement (comments dropped).
func guideSQL(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "controlplane.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## PostgreSQL\n")
	if !ok {
		t.Fatal("docs/controlplane.md has no PostgreSQL section")
	}
	_, block, ok := strings.Cut(section, "```sql\n")
	if !ok {
		t.Fatal("the PostgreSQL section has no SQL block")
	}
	block, _, _ = strings.Cut(block, "```")
	var out []string
	for _, stmt := range strings.Split(block, ";") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, " "))
		}
	}
	return out
}

// TestThePostgreSQLSetUpOfTheGuideWorksAsWritten runs the SQL of
// docs/controlplane.md's PostgreSQL section as a superuser on a cluster of the
// test's own (where no flagforge_app role exists yet), then `migrate` as the
// owner and `serve` as the application role. First without the statements that
// create flagforge_app: migrate then exits 1 saying what to run, having changed
// nothing.
func TestThePostgreSQLSetUpOfTheGuideWorksAsWritten(t *testing.T) {
	pg, ok := startPrivatePostgres(t)
	if !ok {
		unavailable(t, "cannot run a private PostgreSQL cluster (initdb)")
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		unavailable(t, "psql not found: %v", err)
	}
	run := func(db, q string) (string, error) {
		u := strings.Replace(pg.url, "/postgres?", "/"+db+"?", 1)
		out, err := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", u, "-tA", "-c", q).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	roleURL := func(user, password string) string {
		return strings.Replace(strings.Replace(pg.url, "postgres@", user+":"+password+"@", 1), "/postgres?", "/flagforge?", 1)
	}
	stmts := guideSQL(t)
	var later []string
	for _, s := range stmts {
		if strings.Contains(s, "flagforge_app") {
			later = append(later, s)
			continue
		}
		if out, err := run("postgres", s); err != nil {
			t.Fatalf("%s: %v\n%s", s, err, out)
		}
	}
	if len(later) != 2 {
		t.Fatalf("the guide's SQL should create flagforge_app and grant it: %q", stmts)
	}
	owner, app := roleURL("flagforge_owner", "owner-secret"), roleURL("app", "app-secret")
	out, err := exec.Command(controlPlaneBin, "migrate", "--database-url", owner).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "CREATE ROLE flagforge_app NOLOGIN") {
		t.Fatalf("migrate without flagforge_app: %v\n%s", err, out)
	}
	if n, err := run("flagforge", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); err != nil || n != "0" {
		t.Fatalf("the refused migration left %s tables (%v)", n, err)
	}
	for _, s := range later {
		if out, err := run("postgres", s); err != nil {
			t.Fatalf("%s: %v\n%s", s, err, out)
		}
	}
	if out, err := exec.Command(controlPlaneBin, "migrate", "--database-url", owner).CombinedOutput(); err != nil {
		t.Fatalf("migrate as the owner, as the guide says: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := exec.Command(controlPlaneBin, "keys", "generate", "-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	httpAddr, token := freeAddr(t), "ffat_"+randomHex(20)
	cp := start(t, "control plane (app role)", controlPlaneBin, []string{
		"FLAGFORGE_DATABASE_URL=" + app,
		"FLAGFORGE_SIGNING_KEY=" + filepath.Join(dir, "signing-key.pem"),
		"FLAGFORGE_SYNC_TOKEN=sync-" + randomHex(16),
		"FLAGFORGE_DATA_DIR=" + dir,
		"FLAGFORGE_GRPC_ADDR=" + freeAddr(t),
		"FLAGFORGE_HTTP_ADDR=" + httpAddr,
		"FLAGFORGE_BOOTSTRAP_ORG=acme",
		"FLAGFORGE_BOOTSTRAP_EMAIL=admin@acme.test",
		"FLAGFORGE_BOOTSTRAP_TOKEN=" + token,
		"FLAGFORGE_LOG_LEVEL=warn",
	}, "serve")
	cp.waitReady("http://"+httpAddr+"/readyz", 30*time.Second)
	code, body, err := call("POST", "http://"+httpAddr+"/v1/orgs/acme/projects", token,
		map[string]any{"project": map[string]any{"key": "web", "name": "Web"}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("a write as the application role: %d %v %v", code, body, err)
	}
	if who, err := run("flagforge", "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_entries'"); err != nil || who != "flagforge_owner" {
		t.Errorf("audit_entries is owned by %q (%v), want flagforge_owner", who, err)
	}
}

// TestRedisClientLogsAreJSONAtABoundedRate starts an evaluator whose Redis is
// down: go-redis's own complaints come out as JSON lines of our log
// ("source":"go-redis"), at most 5 of them in the first minute.
func TestRedisClientLogsAreJSONAtABoundedRate(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for redials")
	}
	dir := t.TempDir()
	if out, err := exec.Command(controlPlaneBin, "keys", "generate", "-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	httpAddr := freeAddr(t)
	p := start(t, "evaluator (Redis down)", evaluatorBin, []string{
		"FLAGFORGE_REDIS_URL=redis://" + freeAddr(t) + "/0",
		"FLAGFORGE_RESYNC_INTERVAL=1s",
		"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(dir, "signing-key.pub.pem"),
		"FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "evaluator"),
		"FLAGFORGE_GRPC_ADDR=" + freeAddr(t),
		"FLAGFORGE_HTTP_ADDR=" + httpAddr,
		"FLAGFORGE_ADMIN_ADDR=",
		"FLAGFORGE_LOG_LEVEL=warn",
	})
	p.waitReady("http://"+httpAddr+"/healthz", 30*time.Second)
	time.Sleep(8 * time.Second)
	out := p.logs.String()
	fromRedis := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("a log line is not JSON: %q", l)
			continue
		}
		if m["source"] == "go-redis" {
			fromRedis++
		}
	}
	t.Logf("%d log lines in 8 s with Redis down, %d from go-redis", strings.Count(out, "\n"), fromRedis)
	if fromRedis > 5 {
		t.Errorf("%d go-redis lines in 8 s, want at most 5:\n%s", fromRedis, out)
	}
}
