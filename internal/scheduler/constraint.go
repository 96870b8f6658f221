package scheduler

import (
	"fmt"
	"strings"

	"github.com/drover-org/drover/api"
)

// Constraint is one deploy.placement.constraints entry, such as
// "node.labels.zone==east" or "node.role!=manager".
type Constraint struct {
	// Key is the node attribute: node.id, node.hostname, node.role,
	// node.platform.os, node.platform.arch or node.labels.<label>.
	Key string
	// Equal is true for ==, false for !=.
	Equal bool
	// Value is compared without regard to case, as Swarm does.
	Value string
}

// String is the constraint as written, normalised: "key==value".
func (c Constraint) String() string {
	op := "=="
	if !c.Equal {
		op = "!="
	}
	return c.Key + op + c.Value
}

// ParseConstraint reads "key==value" or "key!=value".
func ParseConstraint(s string) (Constraint, error) {
	op, equal := "==", true
	i := strings.Index(s, "==")
	if j := strings.Index(s, "!="); j >= 0 && (i < 0 || j < i) {
		i, op, equal = j, "!=", false
	}
	if i < 0 {
		return Constraint{}, fmt.Errorf("constraint %q: expected key==value or key!=value", s)
	}
	key := strings.TrimSpace(s[:i])
	val := strings.TrimSpace(s[i+len(op):])
	if val == "" {
		return Constraint{}, fmt.Errorf("constraint %q: no value after %s", s, op)
	}
	if strings.ContainsAny(val, "=!") {
		return Constraint{}, fmt.Errorf("constraint %q: the value may not contain = or !", s)
	}
	key, err := attributeKey(key)
	if err != nil {
		return Constraint{}, fmt.Errorf("constraint %q: %w", s, err)
	}
	return Constraint{Key: key, Equal: equal, Value: val}, nil
}

const labelPrefix = "node.labels."

// attributeKey checks a node attribute name and normalises the case of its
// fixed part (label names keep theirs: they are case-sensitive).
func attributeKey(key string) (string, error) {
	lower := strings.ToLower(key)
	switch lower {
	case "node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch":
		return lower, nil
	}
	if strings.HasPrefix(lower, labelPrefix) {
		if len(key) == len(labelPrefix) {
			return "", fmt.Errorf("no label name after %s", labelPrefix)
		}
		return labelPrefix + key[len(labelPrefix):], nil
	}
	if strings.HasPrefix(lower, "engine.labels.") {
		return "", fmt.Errorf("engine labels are not supported; label the node and use node.labels.<name>")
	}
	return "", fmt.Errorf("unknown attribute %q (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.<name>)", key)
}

// attribute is a node's value for a checked key, and whether it has one.
func attribute(n *api.Node, key string) (string, bool) {
	switch key {
	case "node.id":
		return n.ID, true
	case "node.hostname":
		return n.Hostname, true
	case "node.role":
		return nodeRole(n), true
	case "node.platform.os":
		// Drover's agent runs on Linux only.
		return "linux", true
	case "node.platform.arch":
		// Agents do not report their architecture yet.
		return "", false
	}
	v, ok := n.Labels[key[len(labelPrefix):]]
	return v, ok
}

// nodeRole reads an unset role as "worker", per api.Node.Role.
func nodeRole(n *api.Node) string {
	if n.Role == "" {
		return "worker"
	}
	return n.Role
}

// Match reports whether the node satisfies the constraint. A node without
// the attribute fails == and passes !=.
func (c Constraint) Match(n *api.Node) bool {
	v, ok := attribute(n, c.Key)
	return (ok && strings.EqualFold(v, c.Value)) == c.Equal
}

// ParsePreference reads a placement preference: "node.labels.zone" or
// Swarm's "spread=node.labels.zone". Any constraint key may be spread over.
func ParsePreference(s string) (string, error) {
	key := strings.TrimSpace(s)
	if k, ok := strings.CutPrefix(key, "spread="); ok {
		key = strings.TrimSpace(k)
	}
	k, err := attributeKey(key)
	if err != nil {
		return "", fmt.Errorf("preference %q: %w", s, err)
	}
	return k, nil
}
