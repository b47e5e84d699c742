package validate

import (
	"context"
	"debug/elf"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY ...
	args string
}

// parseDockerfile returns the instructions of each stage.
func parseDockerfile(t *testing.T, path string) [][]instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]instruction
	var cur string
	flush := func() {
		cur = strings.TrimSpace(cur)
		if cur == "" {
			return
		}
		cmd, args, _ := strings.Cut(cur, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
		cur = ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		flush()
	}
	flush()
	return stages
}

func find(stage []instruction, cmd string) []string {
	var out []string
	for _, in := range stage {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func TestDockerfilesBuildStaticNonRootImagesWithAHealthcheck(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join(deployDir, ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"controlplane", "evaluator"} {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			stages := parseDockerfile(t, filepath.Join(deployDir, "docker", svc+".Dockerfile"))
			var buildStage []instruction
			for _, st := range stages {
				if strings.HasSuffix(st[0].args, " AS build") {
					buildStage = st
				}
			}
			final := stages[len(stages)-1]
			if buildStage == nil || len(stages) < 2 {
				t.Fatalf("want a stage named build and a runtime stage; got %d stages", len(stages))
			}
			if svc == "controlplane" {
				checkConsoleStage(t, root, stages, buildStage)
			}
			env := strings.Join(find(buildStage, "ENV"), " ")
			for _, want := range []string{"CGO_ENABLED=0", "GOWORK=off"} {
				if !strings.Contains(env, want) {
					t.Errorf("build stage ENV lacks %s", want)
				}
			}
			run := strings.Join(find(buildStage, "RUN"), "\n")
			if !strings.Contains(run, "cd services/"+svc) || !strings.Contains(run, "go build") || !strings.Contains(run, "./cmd/"+svc) {
				t.Errorf("build stage does not go build ./cmd/%s in services/%s", svc, svc)
			}
			for _, c := range find(buildStage, "COPY") {
				if strings.Contains(c, "--from=") {
					continue // from another stage, not the build context
				}
				f := strings.Fields(c)
				for _, src := range f[:len(f)-1] {
					if strings.HasPrefix(src, "--") {
						continue
					}
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						t.Errorf("COPY source %s: %v", src, err)
					}
				}
			}
			if from := find(final, "FROM"); !strings.Contains(from[0], "distroless/static") {
				t.Errorf("runtime stage FROM %s, want distroless static", from[0])
			}
			user := find(final, "USER")
			if len(user) == 0 || strings.HasPrefix(user[len(user)-1], "0") || strings.HasPrefix(user[len(user)-1], "root") {
				t.Errorf("runtime stage USER %v, want a non-root uid", user)
			}
			bin := "/usr/local/bin/flagforge-" + svc
			if ep := find(final, "ENTRYPOINT"); len(ep) != 1 || !strings.Contains(ep[0], `"`+bin+`"`) {
				t.Errorf("ENTRYPOINT %v, want %s", ep, bin)
			}
			var copied bool
			for _, c := range find(final, "COPY") {
				copied = copied || (strings.Contains(c, "--from=build") && strings.HasSuffix(c, " "+bin))
			}
			if !copied {
				t.Errorf("runtime stage does not copy the binary to %s", bin)
			}
			hc := find(final, "HEALTHCHECK")
			if len(hc) != 1 || !regexp.MustCompile(`CMD \["`+regexp.QuoteMeta(bin)+`", "healthcheck"\]`).MatchString(hc[0]) {
				t.Errorf("HEALTHCHECK %v, want CMD [%q, \"healthcheck\"]", hc, bin)
			}
			if testing.Short() {
				t.Skip("-short: not building the binary")
			}
			checkStaticBinary(t, root, svc)
		})
	}
}

// checkConsoleStage: the control plane image embeds the console: a Node stage
// builds web/ from its lockfile into the console's dist/, which the build stage
// copies before compiling.
func checkConsoleStage(t *testing.T, root string, stages [][]instruction, buildStage []instruction) {
	t.Helper()
	var web []instruction
	for _, st := range stages {
		if strings.HasPrefix(st[0].args, "node:") && strings.HasSuffix(st[0].args, " AS web") {
			web = st
		}
	}
	if web == nil {
		t.Fatal("no node stage named web builds the console")
	}
	run := strings.Join(find(web, "RUN"), "\n")
	if !strings.Contains(run, "npm ci") || !strings.Contains(run, "npm run build") {
		t.Errorf("the web stage does not npm ci and npm run build: %s", run)
	}
	for _, f := range []string{"web/package.json", "web/package-lock.json", "services/controlplane/internal/console/dist"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	var copied bool
	for _, c := range find(buildStage, "COPY") {
		copied = copied || (strings.Contains(c, "--from=web") && strings.Contains(c, "internal/console/dist"))
	}
	if !copied {
		t.Error("the build stage does not copy the built console into internal/console/dist")
	}
}

// checkStaticBinary builds the service as the Dockerfile does (its own module,
// GOWORK=off, CGO off), checks that the result is a static ELF (no interpreter,
// no shared libraries: it runs on distroless/static), and that its healthcheck
// command, the image's HEALTHCHECK, passes against a healthy /healthz and fails
// against a closed port.
func checkStaticBinary(t *testing.T, root, svc string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "flagforge-"+svc)
	// Generous: a cold CGO-off build of a service on a loaded 2-core machine took
	// over 5 minutes; the package timeout (make test-deploy, 10m) still bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/"+svc)
	cmd.Dir = filepath.Join(root, "services", svc)
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build as in the Dockerfile: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})}
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Close() }()
	hctx, hcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer hcancel()
	hc := exec.CommandContext(hctx, out, "healthcheck")
	hc.Env = append(os.Environ(), "FLAGFORGE_HTTP_ADDR="+lis.Addr().String(), "FLAGFORGE_TLS_CERT_FILE=")
	if b, err := hc.CombinedOutput(); err != nil {
		t.Errorf("healthcheck against a healthy server: %v\n%s", err, b)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	_ = closed.Close()
	hc = exec.CommandContext(hctx, out, "healthcheck", "-addr", addr)
	if err := hc.Run(); err == nil {
		t.Error("healthcheck passed against a closed port")
	}
}
