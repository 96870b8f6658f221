package network

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/drover-org/drover/api"
	"golang.org/x/sys/unix"
)

// Isolation keeps networks apart. With forwarding on, the host routes between
// its bridges, so without these rules a task could reach any other network's
// subnet through its gateway. The rules live in two chains of our own in the
// filter table, the shape Docker uses (the CNI firewall plugin's
// "ingressPolicy: same-bridge" has it too, but never removes its rules and
// also drops published ports):
//
//	FORWARD             -j DROVER-ISOLATION-1                    (first rule)
//	DROVER-ISOLATION-1  -i B ! -o B -j DROVER-ISOLATION-2        every network B
//	DROVER-ISOLATION-1  -i B ! -o B -j DROP                      internal B: nothing leaves,
//	DROVER-ISOLATION-1  -o B ! -i B -j DROP                      nothing enters from outside
//	DROVER-ISOLATION-2  -o B -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
//
// so a packet leaving one of our bridges for another of our bridges is
// dropped unless it belongs to a published port (DNAT): a published port is
// open to everyone, other networks included. Same-bridge traffic (which
// passes FORWARD with br_netfilter) and traffic to and from the outside are
// untouched. The host itself (INPUT/OUTPUT) is not filtered, so the DNS
// server on the gateways keeps answering.
//
// The rules of a network are added before its first ADD and removed by
// RemoveNetwork; the chains and the FORWARD jump go with the last network.
// Every change is made under a host-wide lock, because several processes
// (an old and a new agent, tests) may change the chains at once.
const (
	isolationChain1 = "DROVER-ISOLATION-1"
	isolationChain2 = "DROVER-ISOLATION-2"
)

// isolationLockPath serializes changes to our chains across processes. It is
// in /run because the chains, like /run, do not survive a reboot.
const isolationLockPath = "/run/drover-isolation.lock"

// iptablesPath finds the iptables program; agents may run with a PATH
// without the sbin directories.
func iptablesPath() (string, error) {
	if p, err := exec.LookPath("iptables"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/iptables", "/sbin/iptables"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("network: iptables not found (needed to keep networks apart); install it with `apt-get install iptables`: %w", api.ErrUnavailable)
}

// isolationRules are the rules of bridge br on every network: chain and
// rule spec.
func isolationRules(br string) [][]string {
	return [][]string{
		{isolationChain1, "-i", br, "!", "-o", br, "-j", isolationChain2},
		{isolationChain2, "-o", br, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP"},
	}
}

// internalRules are the extra rules of an internal network's bridge.
func internalRules(br string) [][]string {
	return [][]string{
		{isolationChain1, "-i", br, "!", "-o", br, "-j", "DROP"},
		{isolationChain1, "-o", br, "!", "-i", br, "-j", "DROP"},
	}
}

// ip6tablesPath finds ip6tables and checks that it works here (a kernel
// without IPv6 has no ip6tables tables), or returns "".
func ip6tablesPath() string {
	p, err := exec.LookPath("ip6tables")
	if err != nil {
		p = ""
		for _, c := range []string{"/usr/sbin/ip6tables", "/sbin/ip6tables"} {
			if st, err := os.Stat(c); err == nil && st.Mode()&0o111 != 0 {
				p = c
				break
			}
		}
	}
	if p == "" {
		return ""
	}
	if err := exec.Command(p, "-w", "10", "-t", "filter", "-S", "FORWARD").Run(); err != nil {
		return ""
	}
	return p
}

// families are the iptables programs our chains live in: iptables, and
// ip6tables where the host has it. IPv6 rules are kept for every network,
// dual-stack or not: forwarding is host-wide, so a task on an IPv4-only
// network that adds IPv6 addresses and routes itself (NET_ADMIN) must not
// get through either.
func (m *Manager) families() []string {
	if m.ip6tablesBin == "" {
		return []string{m.iptablesBin}
	}
	return []string{m.iptablesBin, m.ip6tablesBin}
}

// xtables runs one command of program bin (iptables or ip6tables) on the
// filter table.
func (m *Manager) xtables(bin string, args ...string) (string, error) {
	return m.xtablesTable("filter", bin, args...)
}

// xtablesTable runs one command of program bin on a table.
func (m *Manager) xtablesTable(table, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"-w", "10", "-t", table}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// xtablesCheck reports whether a rule exists (iptables -C). A missing chain
// counts as a missing rule.
func (m *Manager) xtablesCheck(bin, chain string, spec ...string) bool {
	_, err := m.xtables(bin, append([]string{"-C", chain}, spec...)...)
	return err == nil
}

// lockIsolation takes the host-wide lock; call the returned func to release.
func (m *Manager) lockIsolation() (func(), error) {
	m.isoMu.Lock()
	f, err := os.OpenFile(isolationLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		m.isoMu.Unlock()
		return nil, fmt.Errorf("open %s: %w", isolationLockPath, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		m.isoMu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", isolationLockPath, err)
	}
	return func() {
		_ = f.Close() // releases the flock
		m.isoMu.Unlock()
	}, nil
}

// ensureIsolation installs the rules of network n, idempotently. A bridge
// is checked once per Manager; RemoveNetwork forgets it.
func (m *Manager) ensureIsolation(n Network) error {
	key := n.Bridge
	if n.Internal {
		key += "/internal"
	}
	m.isoMu.Lock()
	done := m.isolated[n.Bridge] == key
	m.isoMu.Unlock()
	if done {
		return nil
	}
	unlock, err := m.lockIsolation()
	if err != nil {
		return fmt.Errorf("isolate network: %w", err)
	}
	defer unlock()
	if m.isolated[n.Bridge] == key { // done by a concurrent Attach meanwhile
		return nil
	}
	for _, bin := range m.families() {
		if err := m.ensureRules(bin, n); err != nil {
			return fmt.Errorf("isolate network: %w", err)
		}
	}
	m.isolated[n.Bridge] = key // isoMu is held by lockIsolation
	return nil
}

// ensureRules installs the rules of network n with program bin.
func (m *Manager) ensureRules(bin string, n Network) error {
	if err := m.ensureChains(bin); err != nil {
		return err
	}
	want, unwanted := isolationRules(n.Bridge), internalRules(n.Bridge)
	if n.Internal {
		want, unwanted = append(want, unwanted...), nil
	}
	// A network that was internal and is not any more must not keep
	// those rules.
	for _, r := range unwanted {
		if m.xtablesCheck(bin, r[0], r[1:]...) {
			if _, err := m.xtables(bin, append([]string{"-D"}, r...)...); err != nil {
				return err
			}
		}
	}
	for _, r := range want {
		if m.xtablesCheck(bin, r[0], r[1:]...) {
			continue
		}
		if _, err := m.xtables(bin, append([]string{"-A"}, r...)...); err != nil {
			return err
		}
	}
	return nil
}

// ensureChains creates our chains and the jump to them, first in FORWARD.
func (m *Manager) ensureChains(bin string) error {
	for _, c := range []string{isolationChain1, isolationChain2} {
		if _, err := m.xtables(bin, "-S", c); err == nil {
			continue
		}
		if _, err := m.xtables(bin, "-N", c); err != nil {
			return err
		}
	}
	if m.xtablesCheck(bin, "FORWARD", "-j", isolationChain1) {
		return nil
	}
	_, err := m.xtables(bin, "-I", "FORWARD", "1", "-j", isolationChain1)
	return err
}

// removeIsolation deletes every rule of our chains that names bridge br, in
// both families, and the chains themselves when no network is left in them.
// Rules that are gone already are fine.
func (m *Manager) removeIsolation(br string) error {
	unlock, err := m.lockIsolation()
	if err != nil {
		return err
	}
	defer unlock()
	delete(m.isolated, br)
	var errs []error
	for _, bin := range m.families() {
		if err := m.removeRules(bin, br); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeRules is removeIsolation for program bin.
func (m *Manager) removeRules(bin, br string) error {
	empty := true
	for _, c := range []string{isolationChain1, isolationChain2} {
		out, err := m.xtables(bin, "-S", c)
		if err != nil {
			continue // no chain, no rules
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			if !namesInterface(f, br) {
				empty = false
				continue
			}
			if _, err := m.xtables(bin, append([]string{"-D"}, f[1:]...)...); err != nil {
				return err
			}
		}
	}
	if !empty {
		return nil
	}
	for m.xtablesCheck(bin, "FORWARD", "-j", isolationChain1) {
		if _, err := m.xtables(bin, "-D", "FORWARD", "-j", isolationChain1); err != nil {
			return err
		}
	}
	for _, c := range []string{isolationChain1, isolationChain2} {
		if _, err := m.xtables(bin, "-S", c); err != nil {
			continue
		}
		if _, err := m.xtables(bin, "-F", c); err != nil {
			return err
		}
		if _, err := m.xtables(bin, "-X", c); err != nil {
			return err
		}
	}
	return nil
}

// namesInterface reports whether an iptables -S rule matches on interface
// br (-i br or -o br, negated or not).
func namesInterface(fields []string, br string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if (fields[i] == "-i" || fields[i] == "-o") && fields[i+1] == br {
			return true
		}
	}
	return false
}

// isolatedBridges are the bridges our chains have rules for.
func (m *Manager) isolatedBridges() []string {
	var out []string
	seen := map[string]bool{}
	for _, bin := range m.families() {
		for _, c := range []string{isolationChain1, isolationChain2} {
			listing, err := m.xtables(bin, "-S", c)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(listing, "\n") {
				f := strings.Fields(line)
				for i := 0; i+1 < len(f); i++ {
					if (f[i] == "-i" || f[i] == "-o") && !seen[f[i+1]] && !strings.HasPrefix(f[i+1], OverlayPrefix) {
						seen[f[i+1]] = true
						out = append(out, f[i+1])
					}
				}
			}
		}
	}
	return out
}
