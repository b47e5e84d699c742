package authz

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// adminMethods lists the full method name of every RPC of the admin API, read from
// the generated descriptors (so a new RPC is seen without anyone listing it).
func adminMethods(t *testing.T) []string {
	t.Helper()
	_ = adminv1.File_flagforge_admin_v1_flag_proto // link the admin package
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage("flagforge.admin.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, "/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("no admin RPCs found in the registry")
	}
	return out
}

// isWrite reports whether a rule may change state (Write or ManageOwners,
// including rules whose action depends on the request).
func isWrite(r Rule) bool { return r.Action != Read || r.ActionOf != nil }

// TestEveryWriteRPCHasAGovernanceDecision is the rule that no write RPC can be
// added without deciding how it is governed in protected environments.
func TestEveryWriteRPCHasAGovernanceDecision(t *testing.T) {
	t.Parallel()
	for _, m := range adminMethods(t) {
		rule, ok := Table[m]
		if !ok {
			t.Errorf("%s: not declared in authz.Table", m)
			continue
		}
		g, decided := GovernanceOf(m)
		switch {
		case isWrite(rule) && !decided:
			t.Errorf("%s: a write RPC without a governance decision: add it to authz.GovernanceTable and docs/governance.md", m)
		case !isWrite(rule) && decided:
			t.Errorf("%s: a read RPC has governance decision %q: reads cannot change what is served", m, g)
		case decided && g.String() == "undecided":
			t.Errorf("%s: unknown decision %d", m, g)
		}
	}
	for m := range GovernanceTable {
		if _, ok := Table[m]; !ok {
			t.Errorf("%s: in GovernanceTable but not in Table", m)
		}
	}
}

// TestGovernanceTableIsDocumented checks that docs/governance.md lists every write
// RPC with its decision, so the threat model's table cannot drift from the code.
func TestGovernanceTableIsDocumented(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "docs", "governance.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		rpc := strings.Trim(strings.TrimSpace(cells[1]), "`")
		rows[rpc] = strings.TrimSpace(cells[3])
	}
	for m, g := range GovernanceTable {
		name := m[strings.LastIndex(m, "/")+1:]
		got, ok := rows[name]
		if !ok {
			t.Errorf("docs/governance.md: no table row for %s", name)
			continue
		}
		if got != g.String() {
			t.Errorf("docs/governance.md: %s is documented as %q, the code says %q", name, got, g)
		}
	}
}
