package compose

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v4"
)

// compose-go's model carries no positions, so Drover parses the source files
// a second time as YAML nodes to say on which line a key was written.

// sourceFile is one Compose file as YAML nodes. A file may hold several
// documents; compose-go merges them in order, as it does several files.
type sourceFile struct {
	name string // as shown to the user
	docs []*yaml.Node
}

// sources are the files of a project in the order they are merged.
type sources []sourceFile

// parseSource parses content as YAML nodes. A syntax error is returned as
// an *Error with the file and, when the parser gives it, the line.
func parseSource(name string, content []byte) (sourceFile, error) {
	f := sourceFile{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, &Error{File: name, Line: lineOf(err.Error()), Message: trimYAMLPrefix(err.Error())}
		}
		if a := recursiveAlias(&doc, map[*yaml.Node]bool{}, 0); a != nil {
			return f, &Error{File: name, Line: a.Line, Message: fmt.Sprintf(
				"invalid YAML: alias *%s is inside the anchor &%s it refers to (a recursive anchor)", a.Value, a.Value)}
		}
		f.docs = append(f.docs, &doc)
	}
}

// recursiveAlias returns an alias that refers to one of the nodes that
// contain it. YAML forbids such cycles in data, but the node parser accepts
// them, and compose-go (v2.16) then recurses without end on a merge key
// (`x: &a {<<: *a}`): they are refused here, before compose-go sees them.
// An alias can only name an anchor defined before it, so a cycle always
// passes through an ancestor and this walk finds every one.
func recursiveAlias(n *yaml.Node, ancestors map[*yaml.Node]bool, depth int) *yaml.Node {
	if n == nil || depth > 10000 {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || ancestors[n.Alias] {
			return n
		}
		return nil
	}
	ancestors[n] = true
	defer delete(ancestors, n)
	for _, c := range n.Content {
		if a := recursiveAlias(c, ancestors, depth+1); a != nil {
			return a
		}
	}
	return nil
}

var lineRE = regexp.MustCompile(`\bline (\d+)\b`)

// lineOf finds the "line N" that go-yaml puts in its error messages; it
// exports no error type with the position.
func lineOf(msg string) int {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0
	}
	return n
}

func trimYAMLPrefix(msg string) string {
	for _, p := range []string{"yaml: "} {
		if len(msg) > len(p) && msg[:len(p)] == p {
			msg = msg[len(p):]
		}
	}
	return "invalid YAML: " + msg
}

// locate returns the file and line where the key at path is written. When
// no file holds the whole path, it falls back to the deepest prefix found
// (the service, say, when a key came from an anchor or an extends), and
// returns found=false when not even the first element is anywhere.
func (s sources) locate(path ...string) (file string, line int, found bool) {
	for n := len(path); n > 0; n-- {
		for _, f := range s {
			for _, doc := range f.docs {
				if l := lookup(doc, path[:n]); l > 0 {
					return f.name, l, true
				}
			}
		}
	}
	return "", 0, false
}

// has reports whether some file writes the key at path itself.
func (s sources) has(path ...string) bool {
	for _, f := range s {
		for _, doc := range f.docs {
			if lookup(doc, path) > 0 {
				return true
			}
		}
	}
	return false
}

// keys returns the keys of the mapping at path across all files, without
// duplicates, in the order first seen.
func (s sources) keys(path ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range s {
		for _, doc := range f.docs {
			m := node(doc, path)
			if m == nil || m.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				k := m.Content[i].Value
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
		}
	}
	return out
}

// lookup returns the line of the key at path in doc, or 0.
func lookup(doc *yaml.Node, path []string) int {
	if len(path) == 0 {
		return 0
	}
	parent := node(doc, path[:len(path)-1])
	if parent == nil {
		return 0
	}
	k, _ := entry(parent, path[len(path)-1], 0)
	if k == nil {
		return 0
	}
	return k.Line
}

// node walks doc along path through mappings and returns the value node.
func node(doc *yaml.Node, path []string) *yaml.Node {
	n := deref(doc, 0)
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = deref(n.Content[0], 0)
	}
	for _, p := range path {
		if n == nil {
			return nil
		}
		_, n = entry(n, p, 0)
		n = deref(n, 0)
	}
	return n
}

// maxDepth bounds alias and merge-key chasing: a hostile file can build
// alias chains, and this code must not be the one that loops.
const maxDepth = 32

func deref(n *yaml.Node, depth int) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && depth < maxDepth {
		n = n.Alias
		depth++
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// entry finds key in the mapping m, looking into merge keys (<<) when the
// mapping does not write it itself. Each mapping is searched once, so
// merge keys that fan out over shared anchors cost linear time.
func entry(m *yaml.Node, key string, depth int) (k, v *yaml.Node) {
	return entryOnce(m, key, depth, map[*yaml.Node]bool{})
}

func entryOnce(m *yaml.Node, key string, depth int, seen map[*yaml.Node]bool) (k, v *yaml.Node) {
	m = deref(m, depth)
	if m == nil || m.Kind != yaml.MappingNode || depth > maxDepth || seen[m] {
		return nil, nil
	}
	seen[m] = true
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], m.Content[i+1]
		if kn.Value == key && kn.Tag != "!!merge" {
			return kn, vn
		}
		if kn.Value == "<<" {
			merges = append(merges, vn)
		}
	}
	for _, mv := range merges {
		mv = deref(mv, depth+1)
		if mv == nil {
			continue
		}
		items := []*yaml.Node{mv}
		if mv.Kind == yaml.SequenceNode {
			items = mv.Content
		}
		for _, item := range items {
			if k, v := entryOnce(item, key, depth+1, seen); k != nil {
				return k, v
			}
		}
	}
	return nil, nil
}

// scalarHit is a scalar value found in the source files, with the keys
// leading to it (sequence items count as no key).
type scalarHit struct {
	file  string
	line  int
	path  []string
	value string
}

// findScalar returns the first scalar value, in file order, for which match
// holds. It is how an error that names a value but no key ("invalid
// hostPort: 99999") is pinned to a line.
func (s sources) findScalar(match func(string) bool) (scalarHit, bool) {
	for _, f := range s {
		for _, doc := range f.docs {
			if h, ok := walkScalars(doc, nil, match, 0); ok {
				h.file = f.name
				return h, true
			}
		}
	}
	return scalarHit{}, false
}

func walkScalars(n *yaml.Node, path []string, match func(string) bool, depth int) (scalarHit, bool) {
	// Aliases are not followed: the value is written where the anchor is.
	if n == nil || depth > 64 {
		return scalarHit{}, false
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if h, ok := walkScalars(c, path, match, depth+1); ok {
				return h, true
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := append(slicesClip(path), n.Content[i].Value)
			if h, ok := walkScalars(n.Content[i+1], p, match, depth+1); ok {
				return h, true
			}
		}
	case yaml.ScalarNode:
		if match(n.Value) {
			return scalarHit{line: n.Line, path: path, value: n.Value}, true
		}
	}
	return scalarHit{}, false
}

func slicesClip(s []string) []string { return s[:len(s):len(s)] }

// topLevelKind checks that each document of the file is a mapping (or
// empty), which compose-go would otherwise report in Go type names.
func (f sourceFile) checkTopLevel() error {
	for _, doc := range f.docs {
		n := doc
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		if n.Kind == yaml.MappingNode || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
			continue
		}
		what := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value", yaml.AliasNode: "an alias"}[n.Kind]
		if what == "" {
			what = "another kind of node"
		}
		return &Error{File: f.name, Line: n.Line, Message: "the top level of a Compose file must be a mapping (services:, networks:, ...), not " + what}
	}
	return nil
}
