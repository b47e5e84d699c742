package validate

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// postgresURL is the test server (FLAGFORGE_TEST_POSTGRES_URL, as the services'
// tests), with dbname replaced when db is not empty.
func postgresURL(t *testing.T, db string) string {
	t.Helper()
	raw := os.Getenv("FLAGFORGE_TEST_POSTGRES_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if db != "" {
		u.Path = "/" + db
	}
	return u.String()
}

func psql(t *testing.T, dbURL, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", dbURL, "-v", "ON_ERROR_STOP=1", "-tAc", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBackupCronJobScriptDumpsPrunesAndRestores runs the shell script of the
// flagforge-backup CronJob, as written in deploy/kubernetes/base/backup.yaml,
// against a real PostgreSQL: it writes a custom-format dump that pg_restore
// restores into an empty database with the same rows, prunes dumps older than
// the retention and leaves no partial file.
func TestBackupCronJobScriptDumpsPrunesAndRestores(t *testing.T) {
	for _, tool := range []string{"psql", "pg_dump", "pg_restore", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed", tool)
		}
	}
	admin := postgresURL(t, "")
	if out, err := exec.Command("psql", admin, "-tAc", "select 1").CombinedOutput(); err != nil {
		skipOrFail(t, "PostgreSQL unreachable at FLAGFORGE_TEST_POSTGRES_URL: %v %s", err, out)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	src, dst := "ff_backup_"+hex.EncodeToString(b), "ff_restore_"+hex.EncodeToString(b)
	for _, db := range []string{src, dst} {
		psql(t, admin, "CREATE DATABASE "+db)
		t.Cleanup(func() { _ = exec.Command("psql", admin, "-c", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)").Run() })
	}
	srcURL, dstURL := postgresURL(t, src), postgresURL(t, dst)
	psql(t, srcURL, "CREATE TABLE flags (key text PRIMARY KEY, enabled boolean NOT NULL); "+
		"INSERT INTO flags SELECT 'flag-' || i, i % 2 = 0 FROM generate_series(1, 250) i")

	data, err := os.ReadFile(filepath.Join(deployDir, "kubernetes", "base", "backup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := splitDocuments(data)
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, doc := range docs {
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatal(err)
		}
		if cj, ok := obj.(*batchv1.CronJob); ok {
			c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
			if len(c.Command) == 0 || c.Command[0] != "/bin/bash" || len(c.Args) != 1 {
				t.Fatalf("the CronJob's container runs %v %v, want /bin/bash with one script", c.Command, c.Args)
			}
			script = c.Args[0]
		}
	}
	if script == "" {
		t.Fatal("no CronJob in backup.yaml")
	}
	dir := t.TempDir()
	script = strings.ReplaceAll(script, "/backups", dir)
	old := filepath.Join(dir, "flagforge-20200101T000000Z.dump")
	partial := filepath.Join(dir, "flagforge-20200102T000000Z.dump.partial")
	for _, f := range []string{old, partial} {
		if err := os.WriteFile(f, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		past := time.Now().AddDate(0, 0, -30)
		if err := os.Chtimes(f, past, past); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-ceu", script)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+srcURL, "FLAGFORGE_BACKUP_KEEP_DAYS=14")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup script: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dumps []string
	for _, e := range entries {
		dumps = append(dumps, e.Name())
	}
	if len(dumps) != 1 || !strings.HasPrefix(dumps[0], "flagforge-") || !strings.HasSuffix(dumps[0], ".dump") || filepath.Join(dir, dumps[0]) == old {
		t.Fatalf("backup directory holds %v, want the new dump only (old dump pruned, partial removed)", dumps)
	}
	if out, err := exec.Command("pg_restore", "--no-owner", "--no-privileges", "-d", dstURL, filepath.Join(dir, dumps[0])).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	if got := psql(t, dstURL, "SELECT count(*) || '/' || count(*) FILTER (WHERE enabled) FROM flags"); got != "250/125" {
		t.Fatalf("restored rows %s, want 250/125", got)
	}
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIPPING: "+format, args...)
}
