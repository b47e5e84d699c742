package platform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cookbookRequest is one curl command of docs/cookbook.md with what it expects.
type cookbookRequest struct {
	line               int
	method, base, path string
	auth, body         string
	expect             []string
	save               map[string]string // variable -> dot path in the answer
}

var curlRE = regexp.MustCompile(`(?s)^curl -s -X (\w+) "\$(CP|EV)([^"]*)" -H "Authorization: Bearer \$(TOKEN|SDK_KEY)"(?:\s+-d '(.*)')?\s*$`)

// parseCookbook reads every ```sh block of the cookbook: one curl command (lines
// joined at trailing backslashes), then "# expect:" and "# save:" lines.
func parseCookbook(t *testing.T, doc string) []cookbookRequest {
	t.Helper()
	var out []cookbookRequest
	lines := strings.Split(doc, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```sh" {
			continue
		}
		start := i + 1
		var cmd []string
		r := cookbookRequest{line: start + 1, save: map[string]string{}}
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			switch {
			case strings.HasPrefix(l, "# expect: "):
				r.expect = append(r.expect, strings.TrimPrefix(l, "# expect: "))
			case strings.HasPrefix(l, "# save: "):
				k, v, _ := strings.Cut(strings.TrimPrefix(l, "# save: "), "=")
				r.save[k] = v
			default:
				cmd = append(cmd, strings.TrimSuffix(l, `\`))
			}
		}
		m := curlRE.FindStringSubmatch(strings.TrimSpace(strings.Join(cmd, "\n")))
		if m == nil {
			t.Fatalf("docs/cookbook.md:%d: not a request this test can run: %s", start+1, strings.Join(cmd, "\n"))
		}
		r.method, r.base, r.path, r.auth, r.body = m[1], m[2], m[3], m[4], m[5]
		out = append(out, r)
	}
	return out
}

// dig reads a dot path ("member.id") of a JSON answer as a string.
func dig(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// TestCookbook runs every request of docs/cookbook.md, in order, against a real
// control plane and evaluator, and checks what each says it answers, so the
// documentation cannot rot.
func TestCookbook(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "cookbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	reqs := parseCookbook(t, string(doc))
	if len(reqs) < 15 {
		t.Fatalf("only %d requests found in the cookbook", len(reqs))
	}
	pl := newPlatform(t, false)
	vars := map[string]string{"TOKEN": pl.adminToken}
	var ev *evaluator
	for _, r := range reqs {
		base := "http://" + pl.cpHTTP
		if r.base == "EV" {
			if ev == nil {
				key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "cookbook", "kind": "SDK_KEY_KIND_SERVER"})
				vars["SDK_KEY"], _ = key["secret"].(string)
				ev = pl.startEvaluator("evaluator", filepath.Join(pl.dir, "evaluator"))
			}
			base = "http://" + ev.httpAddr
		}
		expand := func(s string) string {
			for k, v := range vars {
				s = strings.ReplaceAll(s, "$"+k, v)
			}
			return s
		}
		var code int
		var body []byte
		// The evaluator follows the control plane within moments: retry an
		// evaluation until its expectation holds.
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			req, err := http.NewRequest(r.method, base+expand(r.path), bytes.NewBufferString(expand(r.body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+vars[r.auth])
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			code = resp.StatusCode
			if r.base != "EV" || code == http.StatusOK && allContained(compact(body), r.expect) || time.Now().After(deadline) {
				break
			}
		}
		got := compact(body)
		if code != http.StatusOK {
			t.Fatalf("docs/cookbook.md:%d: %s %s answered %d: %s", r.line, r.method, r.path, code, got)
		}
		for _, e := range r.expect {
			if !strings.Contains(got, tight(e)) {
				t.Errorf("docs/cookbook.md:%d: %s %s: the answer lacks %s: %s", r.line, r.method, r.path, e, got)
			}
		}
		var v any
		_ = json.Unmarshal(body, &v)
		for k, p := range r.save {
			if vars[k] = dig(v, p); vars[k] == "" {
				t.Fatalf("docs/cookbook.md:%d: no %s in the answer: %s", r.line, p, got)
			}
		}
	}
}

// compact removes the JSON answer's insignificant spaces.
func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

func allContained(s string, subs []string) bool {
	for _, e := range subs {
		if !strings.Contains(s, tight(e)) {
			return false
		}
	}
	return true
}

// tight writes an expectation as compacted JSON does (no space after ':' or ',').
func tight(e string) string {
	return strings.NewReplacer(`": `, `":`, `, "`, `,"`).Replace(e)
}
