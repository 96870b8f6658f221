package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CI reports whether the tests run under CI (CI=true).
func CI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test for a missing prerequisite, or fails it under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	missing(t, format, args...)
}

// missing skips the test, or fails it under CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("prerequisite missing under CI=true: "+format, args...)
	}
	t.Skipf("prerequisite missing: "+format, args...)
}

// RequireRoot needs the test to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "test needs root")
	}
}

// RequireBinary needs a program on PATH and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found on PATH (install it with apt-get)", name)
	}
	return p
}

// CNIPluginDirs are where the standard CNI plugins are looked for.
var CNIPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// RequireCNI needs the standard CNI plugins and returns their directory.
func RequireCNI(t testing.TB) string {
	t.Helper()
	for _, d := range CNIPluginDirs {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			return d
		}
	}
	missing(t, "CNI plugins not found in %v (apt-get install containernetworking-plugins)", CNIPluginDirs)
	return ""
}

// RequireContainerd needs root, containerd and runc.
func RequireContainerd(t testing.TB) {
	t.Helper()
	RequireRoot(t)
	RequireBinary(t, "containerd")
	RequireBinary(t, "runc")
	RequireBinary(t, "containerd-shim-runc-v2")
}

// RequireFile needs a file, such as /bin/busybox.
func RequireFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%s not found (%s)", path, hint)
	}
}
