package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Each host has a UTS namespace of its own, so that os.Hostname in an
// agent says h1, h2, ... rather than the machine's name for every node.
// Like `ip netns add`, it is pinned by a bind mount, here under utsDir,
// named after the host's network namespace.
var utsDir = filepath.Join(stateDir, "uts")

func (h *Host) utsPath() string { return filepath.Join(utsDir, h.NetNS) }

// createUTS makes a UTS namespace whose hostname is hostname and pins it at
// path. The work runs on a locked thread; a thread that cannot return to
// its own namespace stays locked and is discarded with its goroutine.
func createUTS(path, hostname string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/uts", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare UTS namespace: %w", err)
			return
		}
		err = unix.Sethostname([]byte(hostname))
		if err == nil {
			err = unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/uts", unix.Gettid()), path, "none", unix.MS_BIND, "")
		}
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWUTS); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the original UTS namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = removeUTS(path)
		return fmt.Errorf("UTS namespace at %s: %w", path, err)
	}
	return nil
}

// removeUTS unpins and deletes a namespace made by createUTS; one that is
// not there is fine.
func removeUTS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeUTSOf removes the UTS namespaces of cluster id.
func removeUTSOf(id string) []error {
	var errs []error
	entries, _ := os.ReadDir(utsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+id+"-") {
			if err := removeUTS(filepath.Join(utsDir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}
