package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A service's runtime (Compose's runtime:) maps onto containerd as
// follows:
//
//   - "" and "runc": the runc shim (io.containerd.runc.v2) with runc;
//   - a containerd shim name, io.containerd.NAME.vN: that shim, with its
//     own defaults (containerd finds containerd-shim-NAME-vN on its PATH);
//   - any other name: the runc shim running the OCI runtime binary of that
//     name found on the node's PATH (crun, runsc, youki, ...), with a state
//     root of its own.
//
// The node decides: a name it cannot resolve fails the task, whatever the
// host that ran `drover up` has installed.

// ociRuntime is what a service's runtime resolves to on this node.
type ociRuntime struct {
	typ  string // containerd runtime type
	opts any    // the shim's options; nil: its defaults
	// specVersion, when set, is the older OCI spec version the runtime
	// implements, which the container's spec then claims (crun 1.8
	// refuses a spec whose ociVersion is not 1.0.x).
	specVersion string
}

// runtimeFor resolves a service's runtime, or says why the node cannot
// run it.
func (d *Driver) runtimeFor(name string) (ociRuntime, error) {
	switch {
	case name == "" || name == "runc":
		if d.runcOpts == nil {
			return ociRuntime{typ: runcRuntime}, nil
		}
		return ociRuntime{typ: runcRuntime, opts: d.runcOpts}, nil
	case strings.HasPrefix(name, "io.containerd."):
		return ociRuntime{typ: name}, nil
	case strings.ContainsRune(name, '/'):
		return ociRuntime{}, fmt.Errorf("runtime %q: give the name of an OCI runtime on the node's PATH, not a path", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return ociRuntime{}, fmt.Errorf("runtime %q: this node has no OCI runtime binary %q on its PATH: install it on the node, or remove runtime: to use runc", name, name)
	}
	opts := &options.Options{BinaryName: path}
	if d.runcOpts != nil {
		opts.Root = filepath.Join(filepath.Dir(d.runcOpts.Root), name)
	}
	if filepath.Base(path) == "crun" && hybridWithV2Controllers() {
		if opts.BinaryName, err = d.crunLegacyWrapper(path); err != nil {
			return ociRuntime{}, fmt.Errorf("runtime %q: %w", name, err)
		}
	}
	return ociRuntime{typ: runcRuntime, opts: opts, specVersion: d.specVersionOf(path)}, nil
}

// specVersionOf is the OCI spec version that the runtime binary says it
// implements ("spec: 1.0.0" in its --version, as runc and crun print it)
// when that is older than the version the containerd client writes, else
// "". Asked once per binary.
func (d *Driver) specVersionOf(binary string) string {
	if v, ok := d.specVersions.Load(binary); ok {
		return v.(string)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, binary, "--version").Output()
	v := olderSpecVersion(string(out), specs.Version)
	d.specVersions.Store(binary, v)
	return v
}

// olderSpecVersion reads the "spec: X.Y.Z" line of a runtime's --version
// and returns X.Y.Z if its major.minor is below ours, else "".
func olderSpecVersion(versionOutput, ours string) string {
	for _, line := range strings.Split(versionOutput, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "spec:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		theirs, ok1 := majorMinor(v)
		mine, ok2 := majorMinor(ours)
		if ok1 && ok2 && (theirs[0] < mine[0] || theirs[0] == mine[0] && theirs[1] < mine[1]) {
			return v
		}
		return ""
	}
	return ""
}

func majorMinor(v string) ([2]int, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return [2]int{major, minor}, err1 == nil && err2 == nil
}

// withOCIVersion makes the spec claim the version the runtime implements.
func withOCIVersion(v string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Version = v
		return nil
	}
}

// CheckRuntime reports whether this node can run containers with the
// runtime, before anything is prepared for them.
func (d *Driver) CheckRuntime(name string) error {
	_, err := d.runtimeFor(name)
	return err
}

// hybridWithV2Controllers reports whether the host mounts cgroup v1
// controllers and a unified (v2) hierarchy at /sys/fs/cgroup/unified that
// holds a controller of its own. crun (1.8) refuses to start containers
// there ("cgroups in hybrid mode not supported, drop all controllers from
// cgroupv2"), whichever cgroup manager it is given; runc uses the v1
// controllers.
func hybridWithV2Controllers() bool {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return false
	}
	if unix.Statfs("/sys/fs/cgroup/unified", &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

// crunLegacyWrapper writes (once) and returns an executable that runs crun
// in a mount namespace of its own without the unified hierarchy: crun then
// sees a cgroup v1 host and puts the container in the v1 controllers, as
// runc does on this host. Only crun's own view changes: the host's mounts,
// the container's namespaces and its cgroups are as with runc.
func (d *Driver) crunLegacyWrapper(crun string) (string, error) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return "", fmt.Errorf("crun refuses this host's hybrid cgroups, and running it without the unified hierarchy needs unshare (util-linux), which is not on PATH")
	}
	dir := d.cfg.DataDir
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "runtimes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	script := fmt.Sprintf(`#!/bin/sh
# Written by Drover: crun without the host's cgroup v2 hierarchy, which
# crun refuses when v1 controllers are mounted beside it (hybrid mode).
exec %s --mount --propagation private /bin/sh -c 'umount -l /sys/fs/cgroup/unified && exec "$0" "$@"' %s "$@"
`, unshare, crun)
	path := filepath.Join(dir, "crun-cgroup-v1")
	if old, err := os.ReadFile(path); err == nil && string(old) == script {
		return path, nil
	}
	f, err := os.CreateTemp(dir, ".crun-*")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(script)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return path, nil
}
