package cli

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func cpCommand(g *Globals) *cobra.Command {
	var index int
	cmd := &cobra.Command{
		Use:   "cp [flags] SERVICE:SRC_PATH DEST_PATH | SRC_PATH SERVICE:DEST_PATH",
		Short: "Copy files between a service's container and the local filesystem",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.target(cmd.Context())
			if err != nil {
				return err
			}
			src, dst := args[0], args[1]
			svcSrc, pathSrc, fromContainer := splitContainerPath(src)
			svcDst, pathDst, toContainer := splitContainerPath(dst)
			if fromContainer == toContainer {
				return fmt.Errorf("cp: exactly one of the paths must be SERVICE:PATH")
			}
			svc := svcSrc
			if toContainer {
				svc = svcDst
			}
			task, err := t.running(cmd.Context(), svc, index)
			if err != nil {
				return err
			}
			id := task.ID
			if fromContainer {
				rc, err := t.c.ArchiveGet(cmd.Context(), id, pathSrc)
				if err != nil {
					return err
				}
				defer rc.Close()
				return untarLocal(rc, dst)
			}
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(tarLocal(pw, src, path.Base(pathDst), strings.HasSuffix(pathDst, "/"))) }()
			dir := pathDst
			if !strings.HasSuffix(pathDst, "/") {
				dir = path.Dir(pathDst)
			}
			return t.c.ArchivePut(cmd.Context(), id, dir, pr)
		},
	}
	cmd.Flags().IntVar(&index, "index", 0, "replica to copy from or to (default 1)")
	return cmd
}

func splitContainerPath(s string) (string, string, bool) {
	if i := strings.Index(s, ":"); i > 0 && !strings.ContainsAny(s[:i], `/\.`) {
		return s[:i], s[i+1:], true
	}
	return "", s, false
}

// tarLocal writes a tar of a local file or directory; its top entry is
// named name unless into (copy into the destination directory, keeping the
// source's base name).
func tarLocal(w io.Writer, src, name string, into bool) error {
	tw := tar.NewWriter(w)
	base := filepath.Clean(src)
	top := name
	if into {
		top = filepath.Base(base)
	}
	err := filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		hdrName := path.Join(top, filepath.ToSlash(rel))
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = hdrName
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// untarLocal unpacks a tar from a container to dst: into dst when it is an
// existing directory, otherwise as dst.
func untarLocal(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	into := false
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		into = true
	}
	var top string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		if strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(name) {
			return fmt.Errorf("cp: refusing archive entry %q outside the destination", hdr.Name)
		}
		if top == "" {
			top = strings.SplitN(name, "/", 2)[0]
		}
		var target string
		if into {
			target = filepath.Join(dst, filepath.FromSlash(name))
		} else {
			rest := strings.TrimPrefix(strings.TrimPrefix(name, top), "/")
			target = filepath.Join(dst, filepath.FromSlash(rest))
		}
		mode := os.FileMode(hdr.Mode) & os.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		}
	}
}
