package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/drover-org/drover/api"
)

// Paths of the init process inside a container (Docker's).
const initPath = "/sbin/docker-init"

// initCandidates are the host binaries that can serve as the container's
// init, best first: static ones run in any image, Debian's dynamic
// /usr/bin/tini only in images with glibc.
var initCandidates = []string{
	"/usr/bin/tini-static",
	"/usr/bin/docker-init",
	"/usr/libexec/docker/docker-init",
	"/usr/local/bin/tini-static",
}

// findInit returns the host binary to bind-mount as the container's init.
func findInit() (string, error) {
	for _, p := range initCandidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("tini"); err == nil {
		return p, nil
	}
	return "", errors.New("init: true needs tini on the node (apt-get install tini)")
}

// securityOpts is what security_opt asks for.
type securityOpts struct {
	noNewPrivileges   bool
	seccompUnconfined bool
	seccompProfile    *specs.LinuxSeccomp // a custom profile (JSON or a file on the node)
	apparmor          string              // "" : none asked; "unconfined"
	systemPathsOpen   bool                // systempaths=unconfined
}

// parseSecurityOpts reads Docker's security_opt entries: key=value or the
// legacy key:value.
func parseSecurityOpts(in []string) (securityOpts, error) {
	var o securityOpts
	for _, opt := range in {
		key, value, ok := strings.Cut(opt, "=")
		if !ok {
			key, value, ok = strings.Cut(opt, ":")
		}
		switch key {
		case "no-new-privileges":
			switch {
			case !ok || value == "true":
				o.noNewPrivileges = true
			case value == "false":
				o.noNewPrivileges = false
			default:
				return o, fmt.Errorf("security_opt %q: no-new-privileges takes true or false", opt)
			}
		case "seccomp":
			switch {
			case !ok || value == "":
				return o, fmt.Errorf("security_opt %q: seccomp needs a value (unconfined, builtin or a profile)", opt)
			case value == "unconfined":
				o.seccompUnconfined = true
			case value == "builtin" || value == "default":
				o.seccompUnconfined, o.seccompProfile = false, nil
			default:
				data := []byte(value)
				if !strings.HasPrefix(strings.TrimSpace(value), "{") {
					b, err := os.ReadFile(value)
					if err != nil {
						return o, fmt.Errorf("security_opt %q: reading the seccomp profile: %w", opt, err)
					}
					data = b
				}
				var p specs.LinuxSeccomp
				if err := json.Unmarshal(data, &p); err != nil {
					return o, fmt.Errorf("security_opt %q: the seccomp profile is not valid JSON: %w", opt, err)
				}
				o.seccompProfile = &p
			}
		case "apparmor":
			if !ok || value == "" {
				return o, fmt.Errorf("security_opt %q: apparmor needs a profile name or unconfined", opt)
			}
			o.apparmor = value
		case "label":
			// SELinux labels: this platform runs without SELinux; Docker
			// also ignores them where SELinux is off.
		case "systempaths":
			if value != "unconfined" {
				return o, fmt.Errorf("security_opt %q: systempaths takes only unconfined", opt)
			}
			o.systemPathsOpen = true
		default:
			return o, fmt.Errorf("security_opt %q: unknown option (no-new-privileges, seccomp, apparmor, label, systempaths)", opt)
		}
	}
	return o, nil
}

// normalizeCaps turns capability names as Compose takes them ("net_admin",
// "CAP_NET_ADMIN", "ALL") into the spec's form, rejecting unknown ones.
func normalizeCaps(in []string, what string) ([]string, error) {
	known := cap.Known()
	var out []string
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "ALL" {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(known, c) {
			return nil, fmt.Errorf("%s: unknown capability %q", what, c)
		}
		out = append(out, c)
	}
	return out, nil
}

// capabilities computes the capability set as Docker does: cap_add ALL
// gives every capability but the dropped ones; cap_drop ALL keeps only the
// added ones; otherwise the defaults less the dropped plus the added.
func capabilities(defaults, add, drop []string) ([]string, error) {
	add, err := normalizeCaps(add, "cap_add")
	if err != nil {
		return nil, err
	}
	drop, err = normalizeCaps(drop, "cap_drop")
	if err != nil {
		return nil, err
	}
	var caps []string
	switch {
	case slices.Contains(add, "ALL"):
		all, err := cap.Current()
		if err != nil {
			return nil, fmt.Errorf("cap_add ALL: %w", err)
		}
		for _, c := range all {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = slices.DeleteFunc(slices.Clone(add), func(c string) bool { return c == "ALL" })
	default:
		for _, c := range defaults {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range add {
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
	}
	slices.Sort(caps)
	return slices.Compact(caps), nil
}

// ulimitNames maps Compose's ulimit names to OCI rlimit types.
var ulimitNames = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
	"msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
	"nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

// rlimits turns Compose ulimits into OCI rlimits. A hard limit of 0 with a
// soft one set is Compose's single-value form (both the same); -1 means
// unlimited.
func rlimits(in []api.Ulimit) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	conv := func(v int64) uint64 {
		if v < 0 {
			return ^uint64(0) // RLIM_INFINITY
		}
		return uint64(v)
	}
	for _, u := range in {
		typ, ok := ulimitNames[strings.ToLower(u.Name)]
		if !ok {
			return nil, fmt.Errorf("ulimits: unknown limit %q", u.Name)
		}
		soft, hard := u.Soft, u.Hard
		if hard == 0 && soft != 0 {
			hard = soft
		}
		if conv(soft) > conv(hard) {
			return nil, fmt.Errorf("ulimits: %s: the soft limit %d is above the hard limit %d", u.Name, soft, hard)
		}
		out = append(out, specs.POSIXRlimit{Type: typ, Soft: conv(soft), Hard: conv(hard)})
	}
	return out, nil
}

// withRlimits sets rlimits, replacing any of the same type.
func withRlimits(rls []specs.POSIXRlimit) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, rl := range rls {
			s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(o specs.POSIXRlimit) bool { return o.Type == rl.Type })
			s.Process.Rlimits = append(s.Process.Rlimits, rl)
		}
		return nil
	}
}

// memswapSupported tells whether the memory cgroup accounts swap (v1's
// memsw files; v2's memory.swap.max): runc fails to set a swap limit
// without it.
func memswapSupported() bool {
	for _, p := range []string{
		"/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
		"/sys/fs/cgroup/unified/memory.swap.max",
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	// Pure v2: the root has no swap file, but a child has if enabled.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control"); err == nil {
			return strings.Contains(string(b), "memory")
		}
	}
	return false
}

// settingsOpts applies the Compose container settings, after the image's and
// the spec's own options. hostNet means the host's network namespace.
func settingsOpts(st api.ContainerSettings, hostNet bool) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	sec, err := parseSecurityOpts(st.SecurityOpt)
	if err != nil {
		return nil, err
	}

	// Capabilities, then devices.
	if st.Privileged {
		// Every capability we have: the agent itself may lack some (no
		// CAP_SYS_RESOURCE on some hosts), and runc cannot grant those.
		opts = append(opts,
			oci.WithAllCurrentCapabilities,
			oci.WithMaskedPaths(nil),
			oci.WithReadonlyPaths(nil),
			oci.WithWriteableSysfs,
			oci.WithWriteableCgroupfs,
			oci.WithHostDevices,
			oci.WithAllDevicesAllowed,
		)
	} else if len(st.CapAdd) > 0 || len(st.CapDrop) > 0 {
		caps, err := capabilities(defaultCaps, st.CapAdd, st.CapDrop)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oci.WithCapabilities(caps))
	}
	for _, d := range st.Devices {
		if d.Host == "" {
			return nil, errors.New("devices: an entry without a host path")
		}
		ctr, perms := d.Container, d.Permissions
		if ctr == "" {
			ctr = d.Host
		}
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, fmt.Errorf("devices: %s: permissions %q: only r, w and m", d.Host, perms)
		}
		if _, err := os.Stat(d.Host); err != nil {
			return nil, fmt.Errorf("devices: %w", err)
		}
		opts = append(opts, oci.WithDevices(d.Host, ctr, perms))
	}

	if len(st.Sysctls) > 0 {
		sysctls := maps.Clone(st.Sysctls)
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux.Sysctl == nil {
				s.Linux.Sysctl = map[string]string{}
			}
			maps.Copy(s.Linux.Sysctl, sysctls)
			return nil
		})
	}
	if len(st.Ulimits) > 0 {
		rls, err := rlimits(st.Ulimits)
		if err != nil {
			return nil, err
		}
		opts = append(opts, withRlimits(rls))
	}

	// Namespaces and /dev/shm.
	switch st.Pid {
	case "":
	case "host":
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	default:
		return nil, fmt.Errorf("pid %q: only host is supported", st.Pid)
	}
	switch st.Ipc {
	case "", "private", "shareable":
		if st.ShmSize < 0 {
			return nil, fmt.Errorf("shm_size %d: must not be negative", st.ShmSize)
		}
		if st.ShmSize > 0 {
			opts = append(opts, oci.WithDevShmSize((st.ShmSize+1023)/1024))
		}
	case "host":
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace), withHostShm)
	default:
		return nil, fmt.Errorf("ipc %q: only host, private and shareable are supported", st.Ipc)
	}
	if hostNet {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
	}

	if st.ReadOnly {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if st.Domainname != "" {
		// runc 1.1 ignores the spec's domainname; the UTS namespace's
		// sysctl sets it with any runc.
		dn := st.Domainname
		opts = append(opts, oci.WithDomainname(dn), func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux.Sysctl == nil {
				s.Linux.Sysctl = map[string]string{}
			}
			if _, set := s.Linux.Sysctl["kernel.domainname"]; !set {
				s.Linux.Sysctl["kernel.domainname"] = dn
			}
			return nil
		})
	}
	// MacAddress: the container's interface is made by the agent's CNI
	// plugins, which own its MAC; nothing to do in the OCI spec.
	if st.OomScoreAdj != 0 {
		if st.OomScoreAdj < -1000 || st.OomScoreAdj > 1000 {
			return nil, fmt.Errorf("oom_score_adj %d: must be within -1000 and 1000", st.OomScoreAdj)
		}
		adj := st.OomScoreAdj
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.OOMScoreAdj = &adj
			return nil
		})
	}
	if st.Tty {
		opts = append(opts, oci.WithTTY, withDefaultEnv("TERM=xterm"))
	}

	// Resources.
	if st.MemLimit < 0 || st.CPUs < 0 || st.CPUShares < 0 {
		return nil, errors.New("mem_limit, cpus and cpu_shares must not be negative")
	}
	if st.MemLimit > 0 {
		if st.MemLimit < 6*1024*1024 {
			return nil, fmt.Errorf("mem_limit %d: the least memory limit is 6MB", st.MemLimit)
		}
		opts = append(opts, oci.WithMemoryLimit(uint64(st.MemLimit)))
		swap := st.MemswapLimit
		if swap == 0 {
			swap = 2 * st.MemLimit // Docker: as much swap as memory
		}
		if swap > 0 && swap < st.MemLimit {
			return nil, fmt.Errorf("memswap_limit %d: must be at least mem_limit %d (or -1 for unlimited swap)", swap, st.MemLimit)
		}
		if memswapSupported() {
			opts = append(opts, oci.WithMemorySwap(swap))
		}
	} else if st.MemswapLimit > 0 {
		return nil, errors.New("memswap_limit needs mem_limit as well")
	}
	if st.CPUs > 0 {
		const period = 100000
		quota := int64(st.CPUs * period)
		if quota < 1000 {
			return nil, fmt.Errorf("cpus %g: the least is 0.01", st.CPUs)
		}
		opts = append(opts, oci.WithCPUCFS(quota, period))
	}
	if st.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(st.CPUShares)))
	}
	if st.PidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(st.PidsLimit))
	}
	if len(st.GroupAdd) > 0 {
		// Names resolve against the image's /etc/group.
		opts = append(opts, oci.WithAppendAdditionalGroups(st.GroupAdd...))
	}

	if st.Init {
		bin, err := findInit()
		if err != nil {
			return nil, err
		}
		opts = append(opts, withInit(bin))
	}

	// Security: after capabilities, which the default seccomp profile
	// reads.
	if sec.noNewPrivileges {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if sec.systemPathsOpen {
		opts = append(opts, oci.WithMaskedPaths(nil), oci.WithReadonlyPaths(nil))
	}
	switch {
	case st.Privileged || sec.seccompUnconfined:
		opts = append(opts, oci.WithSeccompUnconfined)
	case sec.seccompProfile != nil:
		p := sec.seccompProfile
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.Seccomp = p
			return nil
		})
	default:
		opts = append(opts, seccomp.WithDefaultProfile())
	}
	// AppArmor profiles only where the kernel has AppArmor; elsewhere the
	// option means nothing, as with Docker.
	if sec.apparmor != "" && sec.apparmor != "unconfined" && !st.Privileged && apparmor.HostSupports() {
		opts = append(opts, oci.WithApparmorProfile(sec.apparmor))
	}
	return opts, nil
}

// defaultCaps is Docker's default capability set (containerd's too).
var defaultCaps = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
	"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// withHostShm replaces the container's /dev/shm by the host's, for ipc:
// host.
func withHostShm(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	for i, m := range s.Mounts {
		if m.Destination == "/dev/shm" {
			s.Mounts[i] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
			return nil
		}
	}
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "nosuid", "noexec", "nodev"}})
	return nil
}

// withInit runs the process under the init binary, bind-mounted read-only
// at Docker's path.
func withInit(bin string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: initPath, Type: "bind", Source: bin,
			Options: []string{"rbind", "ro", "rprivate"},
		})
		s.Process.Args = append([]string{initPath, "--"}, s.Process.Args...)
		return nil
	}
}

// withDefaultEnv adds KEY=VALUE unless the environment sets KEY.
func withDefaultEnv(kv string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		key, _, _ := strings.Cut(kv, "=")
		for _, e := range s.Process.Env {
			if strings.HasPrefix(e, key+"=") {
				return nil
			}
		}
		s.Process.Env = append(s.Process.Env, kv)
		return nil
	}
}
