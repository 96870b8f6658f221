package containerd

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drover-org/drover/internal/runtime"
)

// maxSymlinks bounds the symlinks followed resolving one path, as the
// kernel's own limit.
const maxSymlinks = 40

// resolveIn resolves p as the container would see it, inside the directory
// rootDir: ".." stops at the root and symlinks, absolute ones too, resolve
// inside it (as github.com/cyphar/filepath-securejoin does). The result is
// relative to rootDir ("." for the root itself) and has no symlinks but,
// unless followLast, its last element. Parts that do not exist are kept as
// written.
//
// Resolution and use are two steps a process in the container could race;
// callers therefore open the result through an os.Root, which refuses any
// escape.
func resolveIn(rootDir, p string, followLast bool) (string, error) {
	var resolved []string
	rest := splitPath(p)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		next := append(slices.Clone(resolved), c)
		if len(rest) == 0 && !followLast {
			resolved = next
			break
		}
		fi, err := os.Lstat(filepath.Join(rootDir, filepath.Join(next...)))
		if errors.Is(err, fs.ErrNotExist) {
			resolved = next
			continue // the rest is taken as written
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(rootDir, filepath.Join(next...)))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			resolved = nil
		}
		rest = append(splitPath(target), rest...)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return path.Join(resolved...), nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }

// containerRoot returns the root directory of a running container's init
// process, as the host sees it.
func (d *Driver) containerRoot(ctx context.Context, id string) (string, error) {
	_, task, err := d.runningTask(ctx, id, true)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/%d/root", task.Pid()), nil
}

// CopyFrom writes a tar of path inside the running container to w, as
// `docker cp` does: the top entry is path's base name; a symlink at path is
// archived as the link; a path ending in "/" or "/." follows it.
func (d *Driver) CopyFrom(ctx context.Context, id, p string, w io.Writer) error {
	ctx = d.ctx(ctx)
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("copy from container %s: path %q must be absolute", id, p)
	}
	rootDir, err := d.containerRoot(ctx, id)
	if err != nil {
		return err
	}
	followLast := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	rel, err := resolveIn(rootDir, p, followLast)
	if err != nil {
		return fmt.Errorf("copy from container %s: %w", id, err)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return fmt.Errorf("copy from container %s: %w", id, err)
	}
	defer root.Close()
	if _, err := root.Lstat(rel); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy from container %s: %s: %w: no such file or directory", id, p, runtime.ErrNotFound)
		}
		return fmt.Errorf("copy from container %s: %w", id, err)
	}
	name := path.Base(path.Clean("/" + p))
	if name == "/" {
		name = "."
	}
	tw := tar.NewWriter(w)
	if err := archiveTree(ctx, tw, root, rel, name); err != nil {
		return fmt.Errorf("copy from container %s: %s: %w", id, p, err)
	}
	return tw.Close()
}

// archiveTree writes rel (a file, link or directory tree of root) to tw
// under name. Symlinks are archived, never followed.
func archiveTree(ctx context.Context, tw *tar.Writer, root *os.Root, rel, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := root.Lstat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		return err
	}
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = root.Readlink(rel); err != nil {
			return err
		}
	}
	if fi.Mode()&fs.ModeSocket != 0 {
		return nil // tar has no sockets
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	// The host's names for the IDs mean nothing in the container.
	hdr.Uname, hdr.Gname = "", ""
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	switch {
	case fi.Mode().IsRegular():
		f, err := root.Open(rel)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		// A file that changes meanwhile: its first Size bytes, padded if
		// it shrank, so that the archive stays well formed.
		n, err := io.CopyN(tw, f, hdr.Size)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n < hdr.Size {
			_, err = io.CopyN(tw, zeroReader{}, hdr.Size-n)
		}
		return err
	case fi.IsDir():
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		dir, err := root.Open(rel)
		if err != nil {
			return err
		}
		entries, err := dir.ReadDir(-1)
		dir.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := archiveTree(ctx, tw, root, path.Join(rel, e.Name()), path.Join(name, e.Name())); err != nil {
				return err
			}
		}
		return nil
	default: // symlinks, devices, fifos
		return tw.WriteHeader(hdr)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// CopyTo unpacks a tar into dir, an existing directory inside the running
// container. Entries keep their modes, owners and times. An entry whose
// path leaves dir ("..", absolute), or that would be written through a
// symlink leading out of the container, fails the copy.
func (d *Driver) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	ctx = d.ctx(ctx)
	if !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("copy to container %s: path %q must be absolute", id, dir)
	}
	rootDir, err := d.containerRoot(ctx, id)
	if err != nil {
		return err
	}
	rel, err := resolveIn(rootDir, dir, true)
	if err != nil {
		return fmt.Errorf("copy to container %s: %w", id, err)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return fmt.Errorf("copy to container %s: %w", id, err)
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy to container %s: %s: %w: no such directory", id, dir, runtime.ErrNotFound)
		}
		return fmt.Errorf("copy to container %s: %w", id, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("copy to container %s: %s is not a directory", id, dir)
	}
	if err := unpack(ctx, tar.NewReader(r), root, rel); err != nil {
		return fmt.Errorf("copy to container %s: %w", id, err)
	}
	return nil
}

// localName cleans a tar entry's name and checks that it stays below the
// directory it is unpacked in.
func localName(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("tar entry %q leaves the destination directory", name)
	}
	return clean, nil
}

// unpack writes a tar's entries below dir, a directory of root. os.Root
// refuses to follow any symlink out of root (absolute ones included).
func unpack(ctx context.Context, tr *tar.Reader, root *os.Root, dir string) error {
	type dirTimes struct {
		path string
		hdr  *tar.Header
	}
	var dirs []dirTimes // times set last: writing into a dir changes its mtime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the tar: %w", err)
		}
		name, err := localName(hdr.Name)
		if err != nil {
			return err
		}
		target := path.Join(dir, name)
		mode := hdr.FileInfo().Mode()
		if parent := path.Dir(target); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		// Replace what is there, except a directory by a directory.
		if fi, err := root.Lstat(target); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) && name != "." {
			if err := root.RemoveAll(target); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirTimes{target, hdr})
		case tar.TypeReg:
			f, err := root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, target); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			old, err := localName(hdr.Linkname)
			if err != nil {
				return err
			}
			if err := root.Link(path.Join(dir, old), target); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			continue // the link shares its target's metadata
		default:
			continue // devices and fifos are not copied
		}
		if err := root.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			continue
		}
		if err := root.Chmod(target, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := root.Chtimes(target, hdr.AccessTime, hdr.ModTime); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].path, dirs[i].hdr.AccessTime, dirs[i].hdr.ModTime)
	}
	return nil
}
