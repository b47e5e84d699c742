package eval

import (
	"strconv"
	"strings"
)

// path is a field path built lazily while a flag or segment is checked: nodes live
// on the stack and are turned into a string only when an error is reported.
type path struct {
	up   *path
	name string // a field name, or "" for an index node
	idx  int    // the index of an index node
}

// field returns the path of the named field below p (p may be nil: the root).
func (p *path) field(name string) path { return path{up: p, name: name} }

// index returns the path of element i of the list at p.
func (p *path) index(i int) path { return path{up: p, idx: i} }

func (p *path) String() string {
	var nodes []*path
	for n := p; n != nil; n = n.up {
		nodes = append(nodes, n)
	}
	var b strings.Builder
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.name == "" {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(n.idx))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(n.name)
	}
	return b.String()
}
