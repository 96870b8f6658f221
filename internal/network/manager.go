package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/drover-org/drover/api"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DefaultPluginDirs are where the standard CNI plugins are looked for.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// requiredPlugins are the CNI plugins every attachment runs.
var requiredPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// cleanupTimeout bounds the undo of a failed Attach, which runs even when the
// caller's context is done.
const cleanupTimeout = 30 * time.Second

// Config configures a Manager.
type Config struct {
	// PluginDirs are searched for the CNI plugins; default DefaultPluginDirs.
	PluginDirs []string
	// StateDir holds everything the Manager owns: network lists, IPAM
	// leases, libcni's cache and the tasks' namespaces (see the package doc).
	// It must survive the agent process; it is required.
	StateDir string
	// Logger gets the Manager's logs; nil discards them.
	Logger *slog.Logger
}

// Network is one Compose network as it exists on this host.
type Network struct {
	Name    string // full name, e.g. "hello_default"; the CNI network is "drover-"+Name
	Bridge  string // Linux bridge name, at most 15 characters, given by the control plane
	Subnet  string // this host's subnet of the network, e.g. "10.213.4.0/24"
	Gateway string // e.g. "10.213.4.1", put on the bridge
	// Subnet6 makes the network dual-stack (Compose enable_ipv6): tasks
	// get an IPv6 address from it as well, e.g. "fd9d:6c6f:7665:1::/64";
	// "" is IPv4 only.
	Subnet6 string
	// Gateway6 is the IPv6 gateway put on the bridge, e.g.
	// "fd9d:6c6f:7665:1::1"; "" is the subnet's first address.
	Gateway6 string
	MTU      int // 0: the MTU of the host's default-route interface; else 576-65535 (driver_opts com.docker.network.driver.mtu)
	// Internal cuts the network off from everything but itself (Compose
	// `internal: true`): no masquerade, no default route through it, and
	// the host forwards nothing between its bridge and any other interface.
	// Tasks on it still reach each other and the gateway (DNS).
	Internal bool
	// ClusterSubnet is set when the network spans hosts (see overlay.go):
	// the whole network, of which Subnet is this host's slice.
	ClusterSubnet string
}

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        string // "" for every host address (127.0.0.1 included)
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // tcp (default) or udp
	// Group lets the replicas of one service publish the same host port:
	// mappings with the same non-empty Group do not conflict. The first
	// task published receives the traffic; the next takes over when it
	// goes (portmap's rules match in order).
	Group string
}

// Request says what to connect one task to. A Request without Networks
// (Compose `network_mode: none`) gets a namespace with only lo, up.
type Request struct {
	ID string // task id; also the CNI container id
	// Networks are in order: eth0, eth1... The first that is not Internal
	// carries the default route and the published ports.
	Networks []Network
	Ports    []PortMapping
	// IPs asks for fixed IPv4 addresses (Compose ipv4_address), by
	// Network.Name. An address outside the network's subnet is ErrInvalid;
	// one another task holds is ErrConflict.
	IPs map[string]string
	// MACs asks for fixed MAC addresses (Compose mac_address), by
	// Network.Name.
	MACs map[string]string
}

// Result is where an attached task lives.
type Result struct {
	NetNSPath string            // give this to the runtime as the task's network namespace
	IPs       map[string]net.IP // by Network.Name
	IPs6      map[string]net.IP // by Network.Name, for the networks with a Subnet6
}

// Manager attaches tasks to networks through CNI. It is safe for concurrent
// use; several Managers on one StateDir (say, an old and a new agent
// process) are safe as far as the plugins' own locking goes.
type Manager struct {
	stateDir string
	dirs     []string
	log      *slog.Logger
	cni      *libcni.CNIConfig

	iptablesBin  string
	ip6tablesBin string // "" when the host has no working ip6tables

	// isoMu guards isolated (bridge -> rules installed, see isolation.go)
	// and is held, with a host-wide flock, while our chains change.
	isoMu    sync.Mutex
	isolated map[string]string

	// portsMu makes checking that host ports are free and publishing them
	// one step, so two tasks cannot both win the same port.
	portsMu sync.Mutex
}

// New checks that the CNI plugins are installed and prepares StateDir.
func New(cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, fmt.Errorf("network: Config.StateDir is required: %w", api.ErrInvalid)
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("network: state dir %q: %w", cfg.StateDir, err)
	}
	dirs := cfg.PluginDirs
	if len(dirs) == 0 {
		dirs = DefaultPluginDirs
	}
	var missing []string
	for _, p := range requiredPlugins {
		if !pluginExists(dirs, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("network: CNI plugins %s not found in %s; install them with `apt-get install containernetworking-plugins` or set the plugin directories: %w",
			strings.Join(missing, ", "), strings.Join(dirs, ", "), api.ErrUnavailable)
	}
	ipt, err := iptablesPath()
	if err != nil {
		return nil, err
	}
	m := &Manager{stateDir: stateDir, dirs: dirs, log: cfg.Logger, iptablesBin: ipt, ip6tablesBin: ip6tablesPath(), isolated: map[string]string{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "network")
	if m.ip6tablesBin == "" {
		m.log.Info("no working ip6tables; IPv6 (enable_ipv6) networks are unavailable")
	}
	for _, d := range []string{m.confDir(), m.ipamDir(), m.cacheDir(), m.netnsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: create state dir: %w", err)
		}
	}
	// The namespace dir must be traversable for processes that join a
	// namespace by path after dropping privileges.
	if err := os.Chmod(m.netnsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(dirs, m.cacheDir(), nil)
	return m, nil
}

func pluginExists(dirs []string, name string) bool {
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

func (m *Manager) confDir() string  { return filepath.Join(m.stateDir, "cni") }
func (m *Manager) ipamDir() string  { return filepath.Join(m.stateDir, "ipam") }
func (m *Manager) cacheDir() string { return filepath.Join(m.stateDir, "cache") }
func (m *Manager) netnsDir() string { return filepath.Join(m.stateDir, "netns") }

func (m *Manager) confListPath(name string) string {
	return filepath.Join(m.confDir(), name+".conflist")
}

// NetNSPath is where the namespace of task id is (or would be) mounted.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.netnsDir(), id) }

func ifName(i int) string { return fmt.Sprintf("eth%d", i) }

// gatewayIndex is the network that carries the default route and the
// published ports: the first that is not internal, or -1.
func gatewayIndex(nets []Network) int {
	for i, n := range nets {
		if !n.Internal {
			return i
		}
	}
	return -1
}

func validateRequest(req Request) error {
	if !cniName.MatchString(req.ID) {
		return fmt.Errorf("task id %q: must match %s: %w", req.ID, cniName, api.ErrInvalid)
	}
	names := map[string]bool{}
	bridges := map[string]bool{}
	for _, n := range req.Networks {
		if err := validateNetwork(n); err != nil {
			return fmt.Errorf("task %s: %w", req.ID, err)
		}
		if names[n.Name] || bridges[n.Bridge] {
			return fmt.Errorf("task %s: network %q (bridge %s) is listed twice: %w", req.ID, n.Name, n.Bridge, api.ErrInvalid)
		}
		names[n.Name], bridges[n.Bridge] = true, true
	}
	if len(req.Ports) > 0 && gatewayIndex(req.Networks) < 0 {
		return fmt.Errorf("task %s: ports can only be published on a network that is not internal: %w", req.ID, api.ErrInvalid)
	}
	for name, addr := range req.IPs {
		var n *Network
		for i := range req.Networks {
			if req.Networks[i].Name == name {
				n = &req.Networks[i]
			}
		}
		if n == nil {
			return fmt.Errorf("task %s: address %s asked for on network %q, which the task is not on: %w", req.ID, addr, name, api.ErrInvalid)
		}
		if err := validateStaticIP(*n, addr); err != nil {
			return fmt.Errorf("task %s: %w", req.ID, err)
		}
	}
	if err := validatePorts(req.Ports); err != nil {
		return fmt.Errorf("task %s: %w", req.ID, err)
	}
	return nil
}

// Attach gives task req.ID a network namespace connected to req.Networks and
// publishes req.Ports. On failure nothing of it is left behind and the error
// names the network or port that failed.
func (m *Manager) Attach(ctx context.Context, req Request) (res Result, err error) {
	if err := validateRequest(req); err != nil {
		return Result{}, err
	}
	log := m.log.With("task", req.ID)
	path := m.NetNSPath(req.ID)
	if _, err := os.Lstat(path); err == nil {
		return Result{}, fmt.Errorf("task %s: already attached (namespace %s exists); Detach it first: %w", req.ID, path, api.ErrConflict)
	}
	// portsMu is held from the check until the first network's ADD has
	// published the ports (and libcni cached them for the next check), or
	// until a failed Attach is undone.
	unlockPorts := func() {}
	if len(req.Ports) > 0 {
		m.portsMu.Lock()
		var once sync.Once
		unlockPorts = func() { once.Do(m.portsMu.Unlock) }
		defer unlockPorts()
		if err := m.checkPortsFree(req.ID, req.Ports); err != nil {
			return Result{}, fmt.Errorf("task %s: %w", req.ID, err)
		}
	}

	if err := createNetNS(path); err != nil {
		if errors.Is(err, os.ErrExist) { // a concurrent Attach of the same task
			return Result{}, fmt.Errorf("task %s: already attached (namespace %s exists); Detach it first: %w", req.ID, path, api.ErrConflict)
		}
		return Result{}, fmt.Errorf("task %s: create network namespace: %w", req.ID, err)
	}
	added := 0 // networks whose ADD was tried: a failed ADD still needs a DEL
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		undo := Request{ID: req.ID, Networks: req.Networks[:added], Ports: req.Ports}
		if uerr := m.Detach(cctx, undo); uerr != nil {
			log.Error("undo failed attach", "err", uerr)
			err = fmt.Errorf("%w (and undoing it failed: %v)", err, uerr)
		}
	}()

	lo, err := loopbackConf()
	if err != nil {
		return Result{}, err
	}
	if _, err := m.cni.AddNetwork(ctx, lo, &libcni.RuntimeConf{ContainerID: req.ID, NetNS: path, IfName: "lo"}); err != nil {
		return Result{}, fmt.Errorf("task %s: bring up loopback: %w", req.ID, err)
	}

	res = Result{NetNSPath: path, IPs: make(map[string]net.IP, len(req.Networks)), IPs6: map[string]net.IP{}}
	for i, n := range req.Networks {
		ip, ip6, err := m.add(ctx, req, i, &added)
		if err != nil {
			subnets := n.Subnet
			if n.Subnet6 != "" {
				subnets += " and " + n.Subnet6
			}
			return Result{}, fmt.Errorf("task %s: network %q (bridge %s, subnet %s) as %s: %w", req.ID, n.Name, n.Bridge, subnets, ifName(i), err)
		}
		res.IPs[n.Name] = ip
		if ip6 != nil {
			res.IPs6[n.Name] = ip6
		}
		unlockPorts()
	}
	log.Debug("attached", "netns", path, "ips", res.IPs, "ips6", res.IPs6, "ports", len(req.Ports))
	return res, nil
}

// add runs the ADD of network i of req and returns the task's IPv4 address
// on it, and its IPv6 address if the network is dual-stack.
func (m *Manager) add(ctx context.Context, req Request, i int, added *int) (ip4, ip6 net.IP, err error) {
	n := req.Networks[i]
	mtu := n.MTU
	if mtu == 0 {
		mtu = hostMTU()
		if n.ClusterSubnet != "" {
			mtu -= vxlanOverhead // its packets may cross hosts inside VXLAN
		}
	}
	gw := gatewayIndex(req.Networks)
	if n.Subnet6 != "" && m.ip6tablesBin == "" {
		return nil, nil, fmt.Errorf("IPv6 subnet %s: ip6tables not found (needed to keep IPv6 networks apart); install it with `apt-get install iptables` or drop enable_ipv6: %w", n.Subnet6, api.ErrUnavailable)
	}
	primary, err := m.buildConfList(n, mtu, true)
	if err != nil {
		return nil, nil, err
	}
	if err := m.writeConfList(n, primary); err != nil {
		return nil, nil, fmt.Errorf("write network list: %w", err)
	}
	data := primary
	if i != gw {
		if data, err = m.buildConfList(n, mtu, false); err != nil {
			return nil, nil, err
		}
	}
	list, err := parseConfList(data)
	if err != nil {
		return nil, nil, err
	}
	// The rules go in before the first task's interface comes up.
	if err := m.ensureIsolation(n); err != nil {
		return nil, nil, err
	}
	rt := &libcni.RuntimeConf{ContainerID: req.ID, NetNS: m.NetNSPath(req.ID), IfName: ifName(i)}
	if i == gw {
		rt.CapabilityArgs = capabilityArgs(req.Ports)
	}
	want := net.ParseIP(req.IPs[n.Name]).To4()
	if want != nil {
		if holder := m.leaseHolder(n, want); holder != "" && holder != req.ID {
			return nil, nil, fmt.Errorf("address %s is taken by task %s: %w", want, holder, api.ErrConflict)
		}
		if rt.CapabilityArgs == nil {
			rt.CapabilityArgs = map[string]any{}
		}
		// host-local reads it from runtimeConfig.ips (the bridge plugin
		// declares the "ips" capability).
		rt.CapabilityArgs["ips"] = []string{want.String()}
	}
	*added = i + 1
	r, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		return nil, nil, err
	}
	cur, err := types100.GetResult(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI result: %w", err)
	}
	if mac := req.MACs[n.Name]; mac != "" {
		if err := setMAC(m.NetNSPath(req.ID), ifName(i), mac); err != nil {
			return nil, nil, err
		}
	}
	for _, ipc := range cur.IPs {
		if v4 := ipc.Address.IP.To4(); v4 != nil {
			if ip4 == nil {
				ip4 = v4
			}
		} else if ip6 == nil && ipc.Address.IP.To16() != nil {
			ip6 = ipc.Address.IP
		}
	}
	switch {
	case ip4 == nil:
		return nil, nil, errors.New("CNI result has no IPv4 address")
	case want != nil && !ip4.Equal(want):
		return nil, nil, fmt.Errorf("asked for address %s, CNI gave %s", want, ip4)
	case n.Subnet6 != "" && ip6 == nil:
		return nil, nil, fmt.Errorf("CNI result has no IPv6 address from %s", n.Subnet6)
	}
	return ip4, ip6, nil
}

// setMAC gives the task's interface the MAC address Compose asked for;
// the bridge learns it from the first frame.
func setMAC(nsPath, ifname, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("mac_address %q: not a MAC address: %w", mac, api.ErrInvalid)
	}
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("mac_address: open namespace: %w", err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("mac_address: %w", err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("mac_address: %s: %w", ifname, err)
	}
	if err := nl.LinkSetHardwareAddr(l, hw); err != nil {
		return fmt.Errorf("mac_address %s on %s: %w", mac, ifname, err)
	}
	return nil
}

// Detach undoes Attach: a DEL for each network, with the port mappings its
// ADD had, then the namespace goes. What is already gone is fine, so it can
// be retried and can run after a restart with a new Manager. If a DEL fails
// the namespace is kept so that a retry can still clean up in it.
func (m *Manager) Detach(ctx context.Context, req Request) error {
	if !cniName.MatchString(req.ID) {
		return fmt.Errorf("task id %q: must match %s: %w", req.ID, cniName, api.ErrInvalid)
	}
	path := m.NetNSPath(req.ID)
	nsPath := ""
	if isNetNS(path) {
		nsPath = path
	} else if ok, err := m.standInNetNS(req.ID, path); err != nil {
		m.log.Warn("namespace lost; masquerade rules may stay behind", "task", req.ID, "err", err)
	} else if ok {
		nsPath = path
	}
	var errs []error
	done := map[string]bool{} // "<cni network>/<ifname>"
	gw := gatewayIndex(req.Networks)
	for i := len(req.Networks) - 1; i >= 0; i-- {
		n := req.Networks[i]
		var ports []PortMapping
		if i == gw {
			ports = req.Ports
		}
		name := cniNetworkName(n.Name)
		done[name+"/"+ifName(i)] = true
		if err := m.del(ctx, req.ID, nsPath, name, ifName(i), &n, i == gw, ports); err != nil {
			errs = append(errs, fmt.Errorf("task %s: network %q (bridge %s) as %s: %w", req.ID, n.Name, n.Bridge, ifName(i), err))
		}
	}
	// Attachments the request did not name (a caller with a stale list)
	// are still in libcni's cache; they are released too.
	atts, err := m.cni.GetCachedAttachments(req.ID)
	if err != nil {
		errs = append(errs, fmt.Errorf("task %s: read CNI cache: %w", req.ID, err))
	}
	for _, a := range atts {
		if a.Network == loopbackName || done[a.Network+"/"+a.IfName] {
			continue
		}
		if err := m.del(ctx, req.ID, nsPath, a.Network, a.IfName, nil, false, nil); err != nil {
			errs = append(errs, fmt.Errorf("task %s: network %q as %s: %w", req.ID, a.Network, a.IfName, err))
		}
	}
	if lo, err := loopbackConf(); err == nil {
		if err := m.cni.DelNetwork(ctx, lo, &libcni.RuntimeConf{ContainerID: req.ID, NetNS: nsPath, IfName: "lo"}); err != nil {
			errs = append(errs, fmt.Errorf("task %s: loopback: %w", req.ID, err))
		}
	}
	if len(errs) == 0 {
		if err := removeNetNS(path); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", req.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.log.Debug("detached", "task", req.ID)
	return nil
}

// del runs one DEL. The list and capability args come from libcni's cache of
// the ADD when there is one; otherwise (the ADD failed, or the cache is gone
// after an earlier DEL) from n and ports, which is what the ADD was given.
func (m *Manager) del(ctx context.Context, id, nsPath, netName, ifname string, n *Network, primary bool, ports []PortMapping) error {
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: ifname, CapabilityArgs: capabilityArgs(ports)}
	cached, cachedRt, err := m.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: netName}, rt)
	var data []byte
	switch {
	case err == nil && cached != nil:
		data, rt = cached, cachedRt
	case n != nil:
		if err != nil {
			m.log.Warn("unreadable CNI cache; deleting with the request's configuration", "task", id, "network", netName, "err", err)
		}
		if data, err = m.buildConfList(*n, n.MTU, primary); err != nil {
			return err
		}
	default:
		return err // nothing to delete with
	}
	list, err := parseConfList(data)
	if err != nil {
		return fmt.Errorf("parse network list: %w", err)
	}
	return m.cni.DelNetworkList(ctx, list, rt)
}

// RemoveNetwork deletes a network's bridge and its address leases, once no
// task on this host uses it. A Network with only Bridge set (a stale bridge
// from Networks) removes just the bridge. Removing what is gone is fine.
func (m *Manager) RemoveNetwork(ctx context.Context, n Network) error {
	if n.Name == "" && n.Bridge == "" {
		return fmt.Errorf("remove network: name or bridge required: %w", api.ErrInvalid)
	}
	if n.Name != "" && !cniName.MatchString(n.Name) {
		return fmt.Errorf("network %q: name must match %s: %w", n.Name, cniName, api.ErrInvalid)
	}
	if n.Bridge == "" { // the bridge is in the network's list, if we have it
		if data, err := os.ReadFile(m.confListPath(n.Name)); err == nil {
			if stored, err := networkFromConfList(data); err == nil {
				n.Bridge = stored.Bridge
			}
		}
	}
	log := m.log.With("network", n.Name, "bridge", n.Bridge)
	if n.Name != "" {
		if atts, err := m.cni.GetCachedAttachments(""); err == nil {
			for _, a := range atts {
				if a.Network == cniNetworkName(n.Name) {
					log.Warn("removing a network that a task is still attached to", "task", a.ContainerID)
				}
			}
		}
	}
	if n.Bridge != "" {
		link, err := netlink.LinkByName(n.Bridge)
		var nf netlink.LinkNotFoundError
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return fmt.Errorf("network %q: look up bridge %s: %w", n.Name, n.Bridge, err)
		case link.Type() != "bridge":
			return fmt.Errorf("network %q: link %s is a %s, not a bridge; not deleting it: %w", n.Name, n.Bridge, link.Type(), api.ErrConflict)
		default:
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("network %q: delete bridge %s: %w", n.Name, n.Bridge, err)
			}
		}
		// After the bridge, so a live bridge is never without its rules.
		if err := m.removeIsolation(n.Bridge); err != nil {
			return fmt.Errorf("network %q: remove isolation rules of bridge %s: %w", n.Name, n.Bridge, err)
		}
	}
	if n.Name != "" {
		if err := os.RemoveAll(filepath.Join(m.ipamDir(), cniNetworkName(n.Name))); err != nil {
			return fmt.Errorf("network %q: remove address leases: %w", n.Name, err)
		}
		if err := os.Remove(m.confListPath(n.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("network %q: remove network list: %w", n.Name, err)
		}
	}
	log.Info("network removed")
	return nil
}

// Networks lists what this host has of Drover's networks: every network
// with a list under StateDir (whether or not its bridge exists now), and every
// bridge whose name starts with BridgePrefix, or that our isolation rules
// name, but has no list (Name empty).
// An agent compares it with what it should have and removes the rest with
// RemoveNetwork.
func (m *Manager) Networks() ([]Network, error) {
	var out []Network
	known := map[string]bool{}
	entries, err := os.ReadDir(m.confDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".conflist") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(m.confDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		n, err := networkFromConfList(data)
		if err != nil {
			m.log.Warn("skipping unreadable network list", "file", e.Name(), "err", err)
			continue
		}
		out = append(out, n)
		known[n.Bridge] = true
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() == "bridge" && strings.HasPrefix(name, BridgePrefix) && !known[name] {
			out = append(out, Network{Bridge: name})
			known[name] = true
		}
	}
	// Rules whose bridge and list are both gone (say, StateDir was wiped).
	for _, br := range m.isolatedBridges() {
		if !known[br] {
			out = append(out, Network{Bridge: br})
			known[br] = true
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Bridge < out[j].Bridge
	})
	return out, nil
}
