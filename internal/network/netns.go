package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNetNS makes a new network namespace and pins it by bind-mounting it
// at path, so it lives on without any process in it and after we exit.
//
// Switching namespaces is per OS thread, so the work runs on a goroutine
// locked to its thread. If the thread cannot be put back into its original
// namespace it stays locked, and Go discards it when the goroutine ends:
// no other goroutine ever runs in the wrong namespace.
func createNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	_ = f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // unshare failed, the thread is unchanged
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		mountErr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(mountErr, fmt.Errorf("return to the original network namespace: %w", err))
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount network namespace at %s: %w", path, mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		_ = removeNetNS(path)
		return err
	}
	return nil
}

// removeNetNS unmounts and deletes a namespace made by createNetNS. A path
// that is not mounted or does not exist is fine.
func removeNetNS(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether path is a mounted namespace (nsfs). A file left
// without its mount (after a reboot, say) is not: plugins must not be given it.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// standInNetNS handles a task whose namespace is gone (deleted by hand, or
// the host rebooted while StateDir persisted) but whose attachments are still
// in libcni's cache. Without a namespace the bridge plugin's DEL only frees
// the address: it learns which masquerade rules to delete from the addresses
// on the task's interface. So we build a namespace at path with a stand-in
// interface per cached attachment, carrying the cached addresses, and let the
// normal DEL clean up in it. It reports whether it made one.
func (m *Manager) standInNetNS(id, path string) (bool, error) {
	atts, err := m.cni.GetCachedAttachments(id)
	if err != nil {
		return false, err
	}
	type iface struct {
		name  string
		addrs []net.IPNet
	}
	var ifaces []iface
	for _, a := range atts {
		if a.Network == loopbackName {
			continue
		}
		list, err := parseConfList(a.Config)
		if err != nil {
			continue
		}
		r, err := m.cni.GetNetworkListCachedResult(list, &libcni.RuntimeConf{ContainerID: id, IfName: a.IfName})
		if err != nil || r == nil {
			continue
		}
		cur, err := types100.GetResult(r)
		if err != nil {
			continue
		}
		f := iface{name: a.IfName}
		for _, ipc := range cur.IPs {
			if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(cur.Interfaces) &&
				cur.Interfaces[*ipc.Interface].Name != a.IfName {
				continue
			}
			f.addrs = append(f.addrs, ipc.Address)
		}
		ifaces = append(ifaces, f)
	}
	if len(ifaces) == 0 {
		return false, nil
	}
	if err := removeNetNS(path); err != nil { // a file left without its mount
		return false, err
	}
	if err := createNetNS(path); err != nil {
		return false, err
	}
	err = func() error {
		h, err := netns.GetFromPath(path)
		if err != nil {
			return err
		}
		defer h.Close()
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			return err
		}
		defer nl.Close()
		for _, f := range ifaces {
			// A veth pair rather than a dummy: kernels without the dummy
			// driver exist, and veth is there wherever the bridge plugin works.
			link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: f.name}, PeerName: f.name + "-p"}
			if err := nl.LinkAdd(link); err != nil {
				return fmt.Errorf("add stand-in %s: %w", f.name, err)
			}
			for _, a := range f.addrs {
				if err := nl.AddrAdd(link, &netlink.Addr{IPNet: &a}); err != nil {
					return fmt.Errorf("add %s to stand-in %s: %w", a.String(), f.name, err)
				}
			}
		}
		return nil
	}()
	if err != nil {
		_ = removeNetNS(path)
		return false, err
	}
	m.log.Info("namespace was lost; deleting through a stand-in", "task", id, "interfaces", len(ifaces))
	return true, nil
}
