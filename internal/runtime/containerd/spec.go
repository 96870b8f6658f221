package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/moby/sys/signal"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/internal/runtime"
)

// specOpts builds the OCI spec of a container from its image config and the
// spec, following Docker where the two differ.
func specOpts(imgConfig imageConfig, spec runtime.ContainerSpec) ([]oci.SpecOpts, error) {
	entrypoint, command := spec.Entrypoint, spec.Command
	// Compose's `entrypoint: []` / `command: []`: empty, yet given.
	if spec.ClearEntrypoint && entrypoint == nil {
		entrypoint = []string{}
	}
	if spec.ClearCommand && command == nil {
		command = []string{}
	}
	args, err := processArgs(imgConfig.Entrypoint, imgConfig.Cmd, entrypoint, command)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", spec.Image, err)
	}
	hostNet := spec.NetNSPath == "host"
	hostname := spec.Hostname
	if hostname == "" {
		hostname = defaultHostname(spec.ID)
		if hostNet {
			// Docker: a container on the host's network has its name.
			if h, err := os.Hostname(); err == nil {
				hostname = h
			}
		}
	}
	opts := []oci.SpecOpts{
		// Docker's device set (/dev/pts, /dev/console, mknod allowed).
		oci.WithDefaultUnixDevices,
		imgConfig.opt, // env, cwd, user, args of the image
		oci.WithProcessArgs(args...),
		oci.WithHostname(hostname),
		// Docker sets HOSTNAME; the spec's own Env comes after and wins.
		oci.WithEnv(append([]string{"HOSTNAME=" + hostname}, spec.Env...)),
		// containerd defaults to no_new_privs; Docker does not, and images
		// with setuid programs (su, ping) expect Docker's behaviour.
		oci.WithNewPrivileges,
		oci.WithRlimit(&specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}),
	}
	if spec.WorkingDir != "" {
		if !filepath.IsAbs(spec.WorkingDir) {
			return nil, fmt.Errorf("working dir %q: must be an absolute path", spec.WorkingDir)
		}
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.User != "" {
		// Resolves names against the image's /etc/passwd and /etc/group.
		name, _, _ := strings.Cut(spec.User, ":")
		opts = append(opts, oci.WithUser(spec.User), oci.WithAdditionalGIDs(name))
	}
	if spec.NetNSPath != "" && !hostNet {
		if _, err := os.Stat(spec.NetNSPath); err != nil {
			return nil, fmt.Errorf("network namespace %s: %w", spec.NetNSPath, err)
		}
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{
			Type: specs.NetworkNamespace,
			Path: spec.NetNSPath,
		}))
	}
	mounts, err := specMounts(spec.Mounts)
	if err != nil {
		return nil, err
	}
	opts = append(opts, oci.WithMounts(mounts))
	sopts, err := settingsOpts(spec.Settings, hostNet)
	if err != nil {
		return nil, err
	}
	// Rlimits are clamped last, after the settings' ulimits.
	opts = append(append(opts, sopts...), clampRlimits)
	return opts, nil
}

// processArgs applies Docker's rule for overriding ENTRYPOINT and CMD: an
// entrypoint given drops the image's CMD; a command given alone runs after
// the image's ENTRYPOINT.
func processArgs(imageEntrypoint, imageCmd, entrypoint, command []string) ([]string, error) {
	var args []string
	switch {
	case entrypoint != nil:
		args = append(append(args, entrypoint...), command...)
	case command != nil:
		args = append(append(args, imageEntrypoint...), command...)
	default:
		args = append(append(args, imageEntrypoint...), imageCmd...)
	}
	if len(args) == 0 {
		return nil, errors.New("no command to run: the image has no ENTRYPOINT or CMD and none was given")
	}
	return args, nil
}

// defaultHostname is the container's hostname when the spec names none: its
// ID, cut to the 63 characters a host name label may have.
func defaultHostname(id string) string {
	if len(id) > 63 {
		return id[:63]
	}
	return id
}

// specMounts turns the spec's mounts into OCI mounts: binds, whose source
// must exist (a typo in a path should fail the start, not make an empty
// dir), and tmpfs, with Docker's nosuid, nodev and noexec unless the options
// say otherwise (later options win).
func specMounts(in []runtime.Mount) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range in {
		if !filepath.IsAbs(m.Target) {
			return nil, fmt.Errorf("mount target %q: must be an absolute path", m.Target)
		}
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		switch m.Type {
		case "", "bind":
			if !filepath.IsAbs(m.Source) {
				return nil, fmt.Errorf("bind mount %s:%s: the source must be an absolute path", m.Source, m.Target)
			}
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("bind mount %s:%s: %w", m.Source, m.Target, err)
			}
			out = append(out, specs.Mount{
				Destination: m.Target,
				Type:        "bind",
				Source:      m.Source,
				Options:     append([]string{"rbind", "rprivate", mode}, m.Options...),
			})
		case "tmpfs":
			out = append(out, specs.Mount{
				Destination: m.Target,
				Type:        "tmpfs",
				Source:      "tmpfs",
				Options:     append([]string{"nosuid", "nodev", "noexec", mode}, m.Options...),
			})
		default:
			return nil, fmt.Errorf("mount %s: type %q is not supported (bind or tmpfs)", m.Target, m.Type)
		}
	}
	return out, nil
}

// rlimitResources maps OCI rlimit names to the host's resource numbers.
var rlimitResources = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// clampRlimits lowers every rlimit to the host's hard limit: without
// CAP_SYS_RESOURCE runc cannot raise a limit past it and the start fails.
func clampRlimits(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process == nil {
		return nil
	}
	for i := range s.Process.Rlimits {
		rl := &s.Process.Rlimits[i]
		res, ok := rlimitResources[rl.Type]
		if !ok {
			continue
		}
		var host unix.Rlimit
		if err := unix.Getrlimit(res, &host); err != nil {
			continue
		}
		rl.Hard = min(rl.Hard, host.Max)
		rl.Soft = min(rl.Soft, rl.Hard)
	}
	return nil
}

// parseSignal reads a stop signal: a name with or without SIG (SIGTERM,
// TERM, sigquit) or a number.
func parseSignal(s string) (syscall.Signal, error) {
	sig, err := signal.ParseSignal(s)
	if err != nil {
		return 0, fmt.Errorf("stop signal %q: not a signal name (SIGTERM, TERM) or number", s)
	}
	if sig <= 0 || sig > 64 {
		return 0, fmt.Errorf("stop signal %q: out of range", s)
	}
	return sig, nil
}
