package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drover-org/drover/api"
)

// commonApplets are linked in /bin when the busybox binary cannot be run to
// list its own applets (for example a busybox for another architecture).
var commonApplets = []string{
	"[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd",
	"df", "dirname", "du", "echo", "env", "false", "find", "free", "grep",
	"head", "hostname", "httpd", "id", "ifconfig", "ip", "kill", "ln", "ls",
	"mkdir", "mount", "mv", "nc", "nslookup", "ping", "printf", "ps",
	"readlink", "realpath", "rm", "sed", "seq", "sh", "sleep", "sort", "stat",
	"sync", "tail", "tee", "test", "timeout", "top", "touch", "tr", "true",
	"umount", "uniq", "usleep", "vi", "wc", "wget", "which", "whoami",
	"xargs", "yes",
}

// appletDirs are where applet links may go; busybox also lists /linuxrc,
// which has no place in a container.
var appletDirs = []string{"bin/", "sbin/", "usr/bin/", "usr/sbin/"}

// applets returns the applet paths (relative, such as "usr/bin/wget") that
// the busybox binary reports, or /bin links for commonApplets if it cannot
// be run here.
func applets(busybox string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	var list []string
	if err == nil {
		for line := range strings.Lines(string(out)) {
			p := path.Clean(strings.TrimSpace(line))
			for _, dir := range appletDirs {
				if strings.HasPrefix(p, dir) && !strings.Contains(p[len(dir):], "/") && p != "bin/busybox" {
					list = append(list, p)
				}
			}
		}
	}
	if len(list) == 0 {
		for _, a := range commonApplets {
			list = append(list, "bin/"+a)
		}
	}
	sort.Strings(list)
	return list
}

// entry is one member of the root filesystem layer.
type entry struct {
	hdr  tar.Header
	data []byte
}

// tree is a root filesystem by relative path ("etc/passwd").
type tree map[string]*entry

func (t tree) dir(p string, mode int64, uid, gid int) {
	t[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode, Uid: uid, Gid: gid}}
}

func (t tree) file(p string, mode int64, data []byte) {
	t[p] = &entry{
		hdr:  tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data))},
		data: data,
	}
}

func (t tree) symlink(p, target string) {
	t[p] = &entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: target, Mode: 0o777}}
}

const passwd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
`

const group = `root:x:0:
nogroup:x:65534:
app:x:1000:
`

// rootFS lays out busybox, its applet links, a minimal /etc and the
// caller's files.
func rootFS(busybox []byte, appletPaths []string, files map[string]File) (tree, error) {
	t := tree{}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "www", "var", "home", "dev", "proc", "sys"} {
		t.dir(d, 0o755, 0, 0)
	}
	t.dir("tmp", 0o1777, 0, 0)
	t.dir("root", 0o700, 0, 0)
	t.dir("home/app", 0o755, 1000, 1000)
	t.file("bin/busybox", 0o755, busybox)
	for _, p := range appletPaths {
		t.symlink(p, "/bin/busybox")
	}
	t.file("etc/passwd", 0o644, []byte(passwd))
	t.file("etc/group", 0o644, []byte(group))
	// Placeholders the runtime bind-mounts over.
	t.file("etc/hosts", 0o644, nil)
	t.file("etc/resolv.conf", 0o644, nil)

	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := t.addFile(name, files[name]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addFile adds a caller's file, creating missing parent directories.
func (t tree) addFile(name string, f File) error {
	if !path.IsAbs(name) || path.Clean(name) != name || name == "/" {
		return fmt.Errorf("image file %q: want a clean absolute path such as /www/index.html: %w", name, api.ErrInvalid)
	}
	if f.Mode&^0o7777 != 0 {
		return fmt.Errorf("image file %q: mode %#o has bits other than permissions: %w", name, f.Mode, api.ErrInvalid)
	}
	p := name[1:]
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		e, ok := t[dir]
		if !ok {
			t.dir(dir, 0o755, 0, 0)
			continue
		}
		if e.hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("image file %q: parent /%s is not a directory: %w", name, dir, api.ErrInvalid)
		}
	}
	if e, ok := t[p]; ok && e.hdr.Typeflag == tar.TypeDir {
		return fmt.Errorf("image file %q: the image has a directory there: %w", name, api.ErrInvalid)
	}
	mode := f.Mode
	if mode == 0 {
		mode = 0o644
	}
	t.file(p, mode, f.Data)
	return nil
}

// tar writes the tree sorted by path (a parent sorts before its children),
// every entry stamped with the fixed epoch.
func (t tree) tar() ([]byte, error) {
	paths := make([]string, 0, len(t))
	for p := range t {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := t[p]
		hdr := e.hdr
		hdr.ModTime = epoch
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layer returns the tree as a gzip-compressed OCI layer.
func (t tree) layer() (v1.Layer, error) {
	b, err := t.tar()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
