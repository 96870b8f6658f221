package scheduler

import (
	"maps"
	"slices"
)

// entry is a candidate node of a group, with the number of the group's
// service tasks it holds.
type entry struct {
	node int32
	svc  int32
}

// branch is a level of the placement preferences: the candidates whose
// preferred attributes have the same values so far. A leaf holds its nodes
// in a heap ordered by the strategy; an inner branch its children in a heap
// ordered by how many of the service's tasks they hold, so that each value
// of a preference gets the same share. Every change is made at the top of
// a heap (the pick descends through the tops), so no positions are kept.
type branch struct {
	value    string
	missing  bool  // the nodes lack the attribute: a group of their own
	count    int64 // the service's tasks in the subtree
	isLeaf   bool
	scan     bool // a leaf left unordered, searched on each pick
	children []*branch
	leaf     []entry
}

// prefIndex is one preference's values over the nodes, made once per
// pass: the sorted distinct values, and each node's value as an index into
// them (len(values) for a node without the attribute).
type prefIndex struct {
	values []string
	of     []int32
}

func (c *cluster) prefIndex(key string) *prefIndex {
	if pi, ok := c.prefs[key]; ok {
		return pi
	}
	seen := map[string]bool{}
	for _, n := range c.nodes {
		if v, ok := attribute(n, key); ok {
			seen[v] = true
		}
	}
	pi := &prefIndex{values: slices.Sorted(maps.Keys(seen)), of: make([]int32, len(c.nodes))}
	pos := make(map[string]int32, len(pi.values))
	for i, v := range pi.values {
		pos[v] = int32(i)
	}
	for i, n := range c.nodes {
		if v, ok := attribute(n, key); ok {
			pi.of[i] = pos[v]
		} else {
			pi.of[i] = int32(len(pi.values))
		}
	}
	c.prefs[key] = pi
	return pi
}

// buildTree arranges the candidates by the preferences' values. With scan,
// leaves are not made heaps: for a few tasks, searching is cheaper. es
// starts at off in c.levels[depth]; the next level goes to the same place
// in c.levels[depth+1], so that a group allocates no entries.
func (c *cluster) buildTree(prefs []*prefIndex, es []entry, scan bool, depth, off int) *branch {
	b := &branch{}
	for _, e := range es {
		b.count += int64(e.svc)
	}
	if len(prefs) == 0 {
		b.isLeaf, b.leaf, b.scan = true, es, scan
		if scan {
			return b
		}
		for i := len(es)/2 - 1; i >= 0; i-- {
			c.siftEntries(es, i)
		}
		return b
	}
	// Counting sort by value, into one array the children share: bucket
	// v (len(values) for nodes without the attribute) is
	// sorted[start[v]:start[v+1]].
	pi := prefs[0]
	start := make([]int, len(pi.values)+2)
	for _, e := range es {
		start[pi.of[e.node]+1]++
	}
	for v := 1; v < len(start); v++ {
		start[v] += start[v-1]
	}
	next := slices.Clone(start)
	sorted := c.level(depth + 1)[off : off+len(es)]
	for _, e := range es {
		v := pi.of[e.node]
		sorted[next[v]] = e
		next[v]++
	}
	for v := range len(pi.values) + 1 {
		part := sorted[start[v]:start[v+1]:start[v+1]]
		if len(part) == 0 {
			continue
		}
		child := c.buildTree(prefs[1:], part, scan, depth+1, off+start[v])
		if v < len(pi.values) {
			child.value = pi.values[v]
		} else {
			child.missing = true
		}
		b.children = append(b.children, child)
	}
	for i := len(b.children)/2 - 1; i >= 0; i-- {
		siftBranches(b.children, i)
	}
	return b
}

// level is the scratch array of entries for a depth of the tree.
func (c *cluster) level(depth int) []entry {
	for len(c.levels) <= depth {
		c.levels = append(c.levels, make([]entry, len(c.nodes)))
	}
	return c.levels[depth]
}

// pick finds the node for the group's next task: down the tops of the
// tree to the leaf, then the strategy's best node there that passes the
// state filters. A node they reject is charged to the filter and dropped,
// with any branch left empty, and it tries again. It reports false when no
// node is left.
func (c *cluster) pick(root *branch, fs []Filter, counts []int, offset int) (int32, bool) {
	for {
		path := c.path[:0]
		b := root
		for !b.isLeaf && len(b.children) > 0 {
			path = append(path, b)
			b = b.children[0]
		}
		if !b.isLeaf {
			return -1, false
		}
		var e *entry
		if b.scan {
			e = c.scanLeaf(b, fs, counts[offset:])
		} else {
			e = c.topLeaf(b, fs, counts[offset:])
		}
		if e == nil {
			// Drop branches left empty, from the leaf up.
			for len(path) > 0 && len(b.leaf) == 0 && len(b.children) == 0 {
				parent := path[len(path)-1]
				path = path[:len(path)-1]
				parent.children = popBranch(parent.children)
				b = parent
			}
			if len(path) == 0 && len(b.leaf) == 0 && len(b.children) == 0 {
				return -1, false
			}
			continue
		}
		e.svc++
		b.count++
		// The caller adds the task to the node's state, then calls fix.
		for _, p := range path {
			p.count++
		}
		c.path = append(path, b)
		return e.node, true
	}
}

// topLeaf pops the heap's top until a node passes the filters.
func (c *cluster) topLeaf(b *branch, fs []Filter, counts []int) *entry {
	for len(b.leaf) > 0 {
		top := &b.leaf[0]
		c.state[top.node].ServiceTasks = int(top.svc)
		k := c.failing(top.node, fs)
		if k < 0 {
			return top
		}
		counts[k]++
		b.leaf = c.popEntry(b.leaf)
	}
	return nil
}

// scanLeaf looks through an unordered leaf for the best node that passes
// the filters, removing those that fail. The filters run only on nodes
// better than the best so far.
func (c *cluster) scanLeaf(b *branch, fs []Filter, counts []int) *entry {
	best := -1
	for i := 0; i < len(b.leaf); {
		e := b.leaf[i]
		if best >= 0 && !c.less(e, b.leaf[best]) {
			i++
			continue
		}
		c.state[e.node].ServiceTasks = int(e.svc)
		if k := c.failing(e.node, fs); k >= 0 {
			counts[k]++
			// best < i <= last: the swap leaves best in place.
			last := len(b.leaf) - 1
			b.leaf[i] = b.leaf[last]
			b.leaf = b.leaf[:last]
			continue
		}
		best = i
		i++
	}
	if best < 0 {
		return nil
	}
	return &b.leaf[best]
}

// failing returns the index of the first filter that rejects node n, or -1.
func (c *cluster) failing(n int32, fs []Filter) int {
	for k, f := range fs {
		if !f.Check(c.nodes[n], &c.state[n]) {
			return k
		}
	}
	return -1
}

// fix restores the heaps along the last pick's path (root first, leaf
// last), leaf first, once the picked node's state holds the new task.
func (c *cluster) fix() {
	for i := len(c.path) - 1; i >= 0; i-- {
		if b := c.path[i]; b.isLeaf {
			if !b.scan {
				c.siftEntries(b.leaf, 0)
			}
		} else {
			siftBranches(b.children, 0)
		}
	}
	c.path = c.path[:0]
}

// less orders a leaf's nodes by the strategy; ties go to the lower node ID.
func (c *cluster) less(a, b entry) bool {
	if c.binpack {
		ua, ub := c.used(a.node), c.used(b.node)
		if ua != ub {
			return ua > ub
		}
		ta, tb := c.state[a.node].Tasks, c.state[b.node].Tasks
		if ta != tb {
			return ta > tb
		}
		return a.node < b.node
	}
	if a.svc != b.svc {
		return a.svc < b.svc
	}
	ta, tb := c.state[a.node].Tasks, c.state[b.node].Tasks
	if ta != tb {
		return ta < tb
	}
	return a.node < b.node
}

// used is the share of a node's CPUs plus that of its memory reserved
// (0 to 2), binpack's measure of fullness.
func (c *cluster) used(n int32) float64 {
	var u float64
	node, st := c.nodes[n], &c.state[n]
	if node.CPUs > 0 {
		u += float64(st.NanoCPUs) / (float64(node.CPUs) * 1e9)
	}
	if node.MemoryBytes > 0 {
		u += float64(st.MemoryBytes) / float64(node.MemoryBytes)
	}
	return u
}

func (c *cluster) siftEntries(h []entry, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && c.less(h[r], h[l]) {
			m = r
		}
		if !c.less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (c *cluster) popEntry(h []entry) []entry {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	c.siftEntries(h, 0)
	return h
}

// lessBranch: fewer of the service's tasks first, then nodes with the
// attribute before those without, then by value.
func lessBranch(a, b *branch) bool {
	if a.count != b.count {
		return a.count < b.count
	}
	if a.missing != b.missing {
		return !a.missing
	}
	return a.value < b.value
}

func siftBranches(h []*branch, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && lessBranch(h[r], h[l]) {
			m = r
		}
		if !lessBranch(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func popBranch(h []*branch) []*branch {
	last := len(h) - 1
	h[0] = h[last]
	h[last] = nil
	h = h[:last]
	siftBranches(h, 0)
	return h
}
