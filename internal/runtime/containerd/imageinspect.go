package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/runtime"
)

var _ runtime.ImageInspector = (*Driver)(nil)

// dockerHealthConfig is the Healthcheck of a Docker image config; the OCI
// image config has no such field. Durations are in nanoseconds.
type dockerHealthConfig struct {
	Test          []string `json:",omitempty"`
	Interval      int64    `json:",omitempty"`
	Timeout       int64    `json:",omitempty"`
	StartPeriod   int64    `json:",omitempty"`
	StartInterval int64    `json:",omitempty"`
	Retries       int      `json:",omitempty"`
}

// ImageHealthcheck returns the image's HEALTHCHECK, nil if it has none.
// HEALTHCHECK NONE comes back as a disabled check.
func (d *Driver) ImageHealthcheck(ctx context.Context, ref string) (*api.Healthcheck, error) {
	ctx = d.ctx(ctx)
	img, err := d.ensureImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	desc, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s: its config: %w", ref, err)
	}
	b, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading its config: %w", ref, err)
	}
	var cfg struct {
		Config struct {
			Healthcheck *dockerHealthConfig
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: its config is not valid JSON: %w", ref, err)
	}
	return healthcheckFromImage(cfg.Config.Healthcheck), nil
}

func healthcheckFromImage(h *dockerHealthConfig) *api.Healthcheck {
	if h == nil || len(h.Test) == 0 {
		return nil
	}
	hc := &api.Healthcheck{
		Test:          append([]string(nil), h.Test...),
		Interval:      api.Duration(time.Duration(h.Interval)),
		Timeout:       api.Duration(time.Duration(h.Timeout)),
		StartPeriod:   api.Duration(time.Duration(h.StartPeriod)),
		StartInterval: api.Duration(time.Duration(h.StartInterval)),
		Retries:       h.Retries,
	}
	if h.Test[0] == "NONE" {
		hc.Disable = true
	}
	return hc
}

// SeedVolume copies the image's directory at p into dir, an empty
// directory, keeping owners, modes, times and symlinks (as links): Docker
// fills a new volume this way. A path the image lacks, or that is not a
// directory there, copies nothing; so does a dir that is not empty.
// Symlinks in p resolve inside the image.
func (d *Driver) SeedVolume(ctx context.Context, ref, p, dir string) error {
	ctx = d.ctx(ctx)
	if !filepath.IsAbs(p) {
		return fmt.Errorf("seeding volume from image %s: path %q must be absolute", ref, p)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("seeding volume: %w", err)
	}
	if len(entries) > 0 {
		return nil
	}
	img, err := d.ensureImage(ctx, ref)
	if err != nil {
		return err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return fmt.Errorf("image %s: its layers: %w", ref, err)
	}
	ctx, done, err := d.client.WithLease(ctx, leases.WithRandomID(), leases.WithExpiration(10*time.Minute))
	if err != nil {
		return fmt.Errorf("seeding volume from image %s: %w", ref, err)
	}
	defer done(context.WithoutCancel(ctx))
	sn := d.client.SnapshotService(d.cfg.Snapshotter)
	key := "drover-seed-" + randomHex(8)
	mounts, err := sn.View(ctx, key, identity.ChainID(diffIDs).String())
	if err != nil {
		return fmt.Errorf("image %s: a view of its files: %w", ref, err)
	}
	defer func() {
		if err := sn.Remove(context.WithoutCancel(ctx), key); err != nil {
			d.logger.Debug("removing seed view", "key", key, "err", err)
		}
	}()
	err = mount.WithReadonlyTempMount(ctx, mounts, func(rootDir string) error {
		rel, err := resolveIn(rootDir, p, true)
		if err != nil {
			return err
		}
		root, err := os.OpenRoot(rootDir)
		if err != nil {
			return err
		}
		defer root.Close()
		fi, err := root.Stat(rel)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := copyTree(ctx, root, rel, dir); err != nil {
			return err
		}
		return copyMeta(dir, fi)
	})
	if err != nil {
		return fmt.Errorf("seeding volume from image %s at %s: %w", ref, p, err)
	}
	return nil
}

// copyTree copies the contents of directory rel of root into the host
// directory dst, which we made: nothing in it is followed.
func copyTree(ctx context.Context, root *os.Root, rel, dst string) error {
	f, err := root.Open(rel)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, to := path.Join(rel, e.Name()), filepath.Join(dst, e.Name())
		fi, err := root.Lstat(src)
		if err != nil {
			return err
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			if err := copyTree(ctx, root, src, to); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(root, src, to); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			target, err := root.Readlink(src)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case mode&(fs.ModeDevice|fs.ModeNamedPipe) != 0:
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				continue
			}
			if err := unix.Mknod(to, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		default:
			continue // sockets
		}
		if err := copyMeta(to, fi); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(root *os.Root, src, to string) error {
	in, err := root.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyMeta gives to the owner, mode and times of fi, without following a
// symlink at to.
func copyMeta(to string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		// After chown, which clears setuid and setgid.
		if err := unix.Chmod(to, st.Mode&0o7777); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, to, ts, unix.AT_SYMLINK_NOFOLLOW)
}
