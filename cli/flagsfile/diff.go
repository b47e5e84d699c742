package flagsfile

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"
)

// Change is one resource that differs between two files.
type Change struct {
	// Kind is "flag", "config" or "segment"; Op is "create", "update" (or
	// "absent" for what the desired file leaves out: apply never deletes).
	Kind, Op string
	// Environment is empty for flags.
	Environment, Key string
	// Diff is a line diff of the resource's YAML ("-" current, "+" desired).
	Diff string
}

// Plan lists what applying desired over current would change, in a stable order.
func Plan(current, desired *File) ([]Change, error) {
	var out []Change
	cur := map[string]proto.Message{}
	for _, f := range current.Flags {
		cur["flag//"+f.GetKey()] = f
	}
	for env, e := range current.Environments {
		for k, c := range e.Configs {
			cur["config/"+env+"/"+k] = c
		}
		for _, s := range e.Segments {
			cur["segment/"+env+"/"+s.GetKey()] = s
		}
	}
	want := map[string]proto.Message{}
	for _, f := range desired.Flags {
		want["flag//"+f.GetKey()] = f
	}
	for env, e := range desired.Environments {
		for k, c := range e.Configs {
			want["config/"+env+"/"+k] = c
		}
		for _, s := range e.Segments {
			want["segment/"+env+"/"+s.GetKey()] = s
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts := strings.SplitN(k, "/", 3)
		w, c := want[k], cur[k]
		if c != nil && proto.Equal(c, w) {
			continue
		}
		op := "update"
		if c == nil {
			op = "create"
		}
		d, err := lineDiff(c, w)
		if err != nil {
			return nil, err
		}
		out = append(out, Change{Kind: parts[0], Op: op, Environment: parts[1], Key: parts[2], Diff: d})
	}
	return out, nil
}

// String renders a plan for people.
func Render(changes []Change) string {
	if len(changes) == 0 {
		return "No changes: the project matches the file.\n"
	}
	var b strings.Builder
	for _, c := range changes {
		where := c.Key
		if c.Environment != "" {
			where = c.Environment + "/" + c.Key
		}
		sign := "~"
		if c.Op == "create" {
			sign = "+"
		}
		fmt.Fprintf(&b, "%s %s %s\n%s\n", sign, c.Kind, where, c.Diff)
	}
	fmt.Fprintf(&b, "Plan: %d to change.\n", len(changes))
	return b.String()
}

func yamlOf(m proto.Message) ([]string, error) {
	if m == nil {
		return nil, nil
	}
	t, err := toTree(m)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(jsonNumbers(t))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}

// lineDiff is a longest-common-subsequence line diff of two resources' YAML.
func lineDiff(a, b proto.Message) (string, error) {
	x, err := yamlOf(a)
	if err != nil {
		return "", err
	}
	y, err := yamlOf(b)
	if err != nil {
		return "", err
	}
	n, m := len(x), len(y)
	l := make([][]int, n+1)
	for i := range l {
		l[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			out.WriteString("    " + x[i] + "\n")
			i, j = i+1, j+1
		case j < m && (i == n || l[i][j+1] >= l[i+1][j]):
			out.WriteString("  + " + y[j] + "\n")
			j++
		default:
			out.WriteString("  - " + x[i] + "\n")
			i++
		}
	}
	return out.String(), nil
}
