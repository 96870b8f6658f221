package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	// prefix starts the name of every bridge, veth and namespace a cluster
	// makes: drvc-<id> is the bridge, drvc-<id>-<n> host n's veth and
	// drvc-<id>-h<n> its namespace.
	prefix = "drvc-"
	// stateDir holds a marker per live cluster, named by its id, and the
	// lock that serialises sweeping and creating.
	stateDir = "/run/drover-cluster-test"
	netnsDir = "/run/netns"
	// aliasTag starts the bridge's alias, which repeats the marker's owner
	// for whoever lists links (and for a sweep that finds no marker).
	aliasTag = "drover-cluster-test"
)

// newID is unique among live processes: the pid in base 36, padded to 5
// characters (pid_max is at most 2^22), then the process's cluster counter
// in 1 or 2 base-36 characters. The bridge name stays within 12 characters
// and veth names within 15.
func newID(pid, seq int) string {
	p := strconv.FormatInt(int64(pid), 36)
	if len(p) < 5 {
		p = strings.Repeat("0", 5-len(p)) + p
	}
	return p + strconv.FormatInt(int64(seq%(36*36)), 36)
}

// idOf is the cluster id in a name made by New, or "".
func idOf(name string) string {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "-")
	return id
}

// owner is the process that made a cluster. Start (the process's start
// time in clock ticks since boot) tells a live owner from a new process
// that reuses a dead owner's pid.
type owner struct {
	PID   int   `json:"pid"`
	Start int64 `json:"start"`
	// SubnetX is the cluster's subnet, 10.198.<SubnetX>.0/24.
	SubnetX int `json:"subnet_x"`
}

func (o owner) alive() bool {
	return o.PID > 0 && o.Start != 0 && procStart(o.PID) == o.Start
}

// procStart is a process's start time from /proc/<pid>/stat, or 0 if the
// process does not exist.
func procStart(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields are
	// counted from after the last ')'. starttime is field 22; the text
	// after ')' starts at field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseInt(f[19], 10, 64)
	return n
}

func self() owner { return owner{PID: os.Getpid(), Start: procStart(os.Getpid())} }

func markerPath(id string) string { return filepath.Join(stateDir, id) }

func writeMarker(c *Cluster) error {
	o := self()
	o.SubnetX = c.subnetX
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return os.WriteFile(markerPath(c.id), b, 0o644)
}

func readMarker(id string) (owner, bool) {
	var o owner
	b, err := os.ReadFile(markerPath(id))
	if err != nil || json.Unmarshal(b, &o) != nil {
		return o, false
	}
	return o, true
}

func aliasFor(pid int) string {
	return fmt.Sprintf("%s pid=%d start=%d", aliasTag, pid, procStart(pid))
}

func parseAlias(alias string) (owner, bool) {
	var o owner
	if n, _ := fmt.Sscanf(alias, aliasTag+" pid=%d start=%d", &o.PID, &o.Start); n != 2 {
		return o, false
	}
	return o, true
}

// lockState takes the lock that keeps one process at a time sweeping or
// creating; the returned func releases it.
func lockState() (func(), error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// leftover is a cluster found on the machine and the owner recorded for
// it, if any.
type leftover struct {
	owner    owner
	hasOwner bool
}

// scan finds the clusters on the machine by their links, namespaces and
// markers.
func scan() (map[string]*leftover, error) {
	found := map[string]*leftover{}
	get := func(id string) *leftover {
		if found[id] == nil {
			found[id] = &leftover{}
		}
		return found[id]
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		id := idOf(a.Name)
		if id == "" {
			continue
		}
		lo := get(id)
		if o, ok := parseAlias(a.Alias); ok && a.Name == prefix+id && !lo.hasOwner {
			lo.owner, lo.hasOwner = o, true
		}
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if id := idOf(e.Name()); id != "" {
			get(id)
		}
	}
	utss, _ := os.ReadDir(utsDir)
	for _, e := range utss {
		if id := idOf(e.Name()); id != "" {
			get(id)
		}
	}
	markers, _ := os.ReadDir(stateDir)
	for _, e := range markers {
		if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
			continue
		}
		lo := get(e.Name())
		// The marker outranks the alias: it is written first.
		if o, ok := readMarker(e.Name()); ok {
			lo.owner, lo.hasOwner = o, true
		}
	}
	return found, nil
}

// sweep removes what clusters whose owner is dead left behind. Something
// with no owner recorded anywhere is an orphan too: markers are written
// before anything is made and removed after everything is gone. The caller
// holds the state lock.
func sweep() []error {
	found, err := scan()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for id, lo := range found {
		if lo.hasOwner && lo.owner.alive() {
			continue
		}
		errs = append(errs, removeCluster(id)...)
	}
	return errs
}

// removeCluster kills the processes in a cluster's namespaces and removes
// its links, namespaces and marker.
func removeCluster(id string) []error {
	var errs []error
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+id+"-") {
			if err := killNetNS(e.Name(), 10*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, removeResources(id, prefix+id)...)
	if len(errs) == 0 {
		if err := os.Remove(markerPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errs
}

// removeResources deletes a cluster's veths (which takes their peers in
// the namespaces with them), then its namespaces, then its bridge. What is
// already gone is fine. Names are listed afresh so that a cluster made
// only in part is removed too.
func removeResources(id, bridge string) []error {
	var errs []error
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	var hasBridge bool
	for _, l := range links {
		name := l.Attrs().Name
		switch {
		case name == bridge:
			hasBridge = true
		case strings.HasPrefix(name, prefix+id+"-"):
			if err := ip("link", "del", name); err != nil && linkExists(name) {
				errs = append(errs, err)
			}
		}
	}
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+id+"-") {
			if err := ip("netns", "del", e.Name()); err != nil {
				if _, serr := os.Stat(filepath.Join(netnsDir, e.Name())); serr == nil {
					errs = append(errs, err)
				}
			}
		}
	}
	errs = append(errs, removeUTSOf(id)...)
	if hasBridge {
		if err := ip("link", "del", bridge); err != nil && linkExists(bridge) {
			errs = append(errs, err)
		}
	}
	return errs
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// pickSubnet chooses X for 10.198.X.0/24 that no address in the root
// namespace and no live cluster uses. It starts from the pid and counter
// and stays in 128-254: `drover server` leases its /24s from the bottom of
// its pool, and a harness server's pool may be 10.198.0.0/16. The caller
// holds the state lock.
func pickSubnet(seq int) (int, error) {
	used := map[int]bool{}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip4 := a.IP.To4(); ip4 != nil && ip4[0] == 10 && ip4[1] == 198 {
			used[int(ip4[2])] = true
		}
	}
	markers, _ := os.ReadDir(stateDir)
	for _, e := range markers {
		if e.IsDir() {
			continue
		}
		if o, ok := readMarker(e.Name()); ok && o.alive() {
			used[o.SubnetX] = true
		}
	}
	const lo, span = 128, 127
	start := (os.Getpid() + seq) % span
	for i := 0; i < span; i++ {
		x := lo + (start+i)%span
		if !used[x] {
			return x, nil
		}
	}
	return 0, errors.New("no free subnet in 10.198.128.0/17")
}

// killNetNS sends SIGKILL to every process in the named namespace until
// none is left (children may be forked meanwhile) or the timeout passes.
// A namespace that does not exist has nothing to kill.
func killNetNS(name string, timeout time.Duration) error {
	var want syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, name), &want); err != nil {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsInNetNS(want.Dev, want.Ino)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: processes %v still alive after SIGKILL for %s", name, pids, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidsInNetNS lists the processes whose network namespace is (dev, ino).
// Zombies have no namespaces left and are not listed.
func pidsInNetNS(dev, ino uint64) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		if st.Dev == dev && st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ip runs the ip command.
func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
