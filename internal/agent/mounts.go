package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/drover-org/drover/api"
	drt "github.com/drover-org/drover/internal/runtime"
)

// volumeDir is where a named volume's data lives on this node.
func (a *Agent) volumeDir(fullName string) string {
	return filepath.Join(a.cfg.DataDir, "volumes", fullName, "_data")
}

// prepareMounts turns a task's volumes, tmpfs, secrets and configs into
// runtime mounts, creating what is missing.
func (a *Agent) prepareMounts(ctx context.Context, t api.Task) ([]drt.Mount, error) {
	var out []drt.Mount
	for i, m := range t.Spec.Mounts {
		switch m.Type {
		case api.MountBind:
			if _, err := os.Stat(m.Source); errors.Is(err, fs.ErrNotExist) {
				if !m.CreateHostPath {
					return nil, fmt.Errorf("volumes: bind source %s does not exist (and bind.create_host_path is false)", m.Source)
				}
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, fmt.Errorf("volumes: create bind source: %w", err)
				}
			}
			out = append(out, drt.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		case api.MountVolume:
			dir, err := a.ensureVolume(ctx, t, i, m)
			if err != nil {
				return nil, err
			}
			src := dir
			if m.Subpath != "" {
				src = filepath.Join(dir, filepath.Clean("/"+m.Subpath))
				if err := os.MkdirAll(src, 0o755); err != nil {
					return nil, fmt.Errorf("volumes: subpath %s: %w", m.Subpath, err)
				}
			}
			out = append(out, drt.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly})
		case api.MountTmpfs:
			opts := []string{"nosuid", "nodev"}
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			if m.TmpfsMode != 0 {
				opts = append(opts, fmt.Sprintf("mode=%o", m.TmpfsMode))
			}
			out = append(out, drt.Mount{Type: "tmpfs", Source: "tmpfs", Target: m.Target, ReadOnly: m.ReadOnly, Options: opts})
		}
	}
	files, err := a.writeSecretFiles(ctx, t)
	if err != nil {
		return nil, err
	}
	return append(out, files...), nil
}

// ensureVolume creates a named (or anonymous) volume on first use: a
// directory under the data dir, or the mount its driver_opts describe, with
// the image's data copied in unless nocopy.
func (a *Agent) ensureVolume(ctx context.Context, t api.Task, i int, m api.Mount) (string, error) {
	var vol api.Volume
	var dir string
	if m.Source == "" {
		dir = filepath.Join(a.taskDir(t.ID), fmt.Sprintf("anon-%d", i))
	} else {
		for _, v := range t.Volumes {
			if v.Name == m.Source {
				vol = v
			}
		}
		if vol.FullName == "" {
			return "", fmt.Errorf("volumes: volume %q is not declared", m.Source)
		}
		dir = a.volumeDir(vol.FullName)
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if vol.External {
		return "", fmt.Errorf("volumes: external volume %q does not exist on this node", vol.FullName)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("volumes: create %s: %w", dir, err)
	}
	if typ := vol.DriverOpts["type"]; typ != "" || vol.DriverOpts["device"] != "" {
		if err := mountDriverOpts(vol, dir); err != nil {
			_ = os.Remove(dir)
			return "", err
		}
	}
	if !m.NoCopy {
		if ins, ok := a.cfg.Driver.(drt.ImageInspector); ok {
			if err := ins.SeedVolume(ctx, t.Spec.Image, m.Target, dir); err != nil {
				a.log.Warn("could not copy the image's data into the new volume", "volume", vol.FullName, "err", err)
			}
		}
	}
	a.log.Info("volume created", "volume", vol.FullName, "dir", dir)
	return dir, nil
}

// mountDriverOpts mounts as the local driver does: type, o and device.
func mountDriverOpts(v api.Volume, dir string) error {
	typ, dev, opts := v.DriverOpts["type"], v.DriverOpts["device"], v.DriverOpts["o"]
	var flags uintptr
	var data []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "bind":
			flags |= syscall.MS_BIND
		case "rbind":
			flags |= syscall.MS_BIND | syscall.MS_REC
		case "ro":
			flags |= syscall.MS_RDONLY
		default:
			data = append(data, o)
		}
	}
	if typ == "" || typ == "none" {
		typ = ""
	}
	if err := syscall.Mount(dev, dir, typ, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("volumes: volume %q: mount %s (type %q, o %q): %w", v.FullName, dev, typ, opts, err)
	}
	return nil
}

// deleteVolumes removes named volumes a `down -v` asked for, unless a task
// here still uses them.
func (a *Agent) deleteVolumes(names []string) {
	a.mu.Lock()
	inUse := map[string]bool{}
	for _, w := range a.workers {
		if w.removed {
			continue
		}
		for _, v := range w.latest.Volumes {
			inUse[v.FullName] = true
		}
	}
	a.mu.Unlock()
	for _, n := range names {
		if inUse[n] || strings.Contains(n, "/") || n == "" || n == "." || n == ".." {
			continue
		}
		root := filepath.Dir(a.volumeDir(n))
		if _, err := os.Stat(root); err != nil {
			continue
		}
		_ = syscall.Unmount(a.volumeDir(n), syscall.MNT_DETACH)
		if err := os.RemoveAll(root); err != nil {
			a.log.Warn("cannot delete volume", "volume", n, "err", err)
			continue
		}
		a.log.Info("volume deleted", "volume", n)
	}
}

// writeSecretFiles writes the task's secrets and configs into its
// directory (readable by root only on the host) and mounts them read-only.
func (a *Agent) writeSecretFiles(ctx context.Context, t api.Task) ([]drt.Mount, error) {
	var out []drt.Mount
	for _, kind := range []string{"secret", "config"} {
		refs := t.Spec.Secrets
		if kind == "config" {
			refs = t.Spec.Configs
		}
		for _, r := range refs {
			content, err := a.cfg.Server.StackFile(ctx, t.Stack, kind, r.Source)
			if err != nil {
				return nil, fmt.Errorf("%ss: %q: %w", kind, r.Source, err)
			}
			dir := filepath.Join(a.taskDir(t.ID), "files")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, err
			}
			p := filepath.Join(dir, kind+"-"+r.Source)
			mode := os.FileMode(0o444)
			if r.Mode != 0 {
				mode = os.FileMode(r.Mode) & os.ModePerm
			}
			if err := os.WriteFile(p, content, 0o600); err != nil {
				return nil, err
			}
			uid, gid := atoiOr(r.UID, 0), atoiOr(r.GID, 0)
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, fmt.Errorf("%ss: %q: chown: %w", kind, r.Source, err)
			}
			if err := os.Chmod(p, mode); err != nil {
				return nil, err
			}
			target := r.Target
			switch {
			case target == "" && kind == "secret":
				target = "/run/secrets/" + r.Source
			case target == "":
				target = "/" + r.Source
			case kind == "secret" && !strings.HasPrefix(target, "/"):
				target = "/run/secrets/" + target
			}
			out = append(out, drt.Mount{Source: p, Target: target, ReadOnly: true})
		}
	}
	return out, nil
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}
