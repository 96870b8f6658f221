// Command drover-mkimage builds a busybox image archive for tests, examples
// and benchmarks on machines without a registry:
//
//	drover-mkimage -o FILE|- [-t REF] [-busybox PATH] [-format oci|docker] [-padding BYTES]
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drover-org/drover/internal/imagebuild"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "drover-mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("drover-mkimage", flag.ContinueOnError)
	out := fs.String("o", "", "archive to write, or - for standard output (required)")
	ref := fs.String("t", imagebuild.DefaultRef, "image reference recorded in the archive")
	busybox := fs.String("busybox", imagebuild.DefaultBusybox, "path of the static busybox binary")
	format := fs.String("format", "oci", "archive format: oci (OCI image layout) or docker (docker save)")
	padding := fs.Int64("padding", 0, "add a layer of this many incompressible bytes")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: drover-mkimage -o FILE|- [-t REF] [-busybox PATH] [-format oci|docker] [-padding BYTES]")
		fs.PrintDefaults()
	}
	// Parse errors come back as the one-line error main prints; usage is
	// shown only for -h.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	if *out == "" {
		return errors.New("-o FILE or -o - is required")
	}
	var write func(io.Writer, v1.Image, string) error
	switch *format {
	case "oci":
		write = imagebuild.WriteOCIArchive
	case "docker":
		write = imagebuild.WriteDockerArchive
	default:
		return fmt.Errorf("-format %q: want oci or docker", *format)
	}

	img, err := imagebuild.Build(imagebuild.Options{Busybox: *busybox, Padding: *padding})
	if err != nil {
		return err
	}
	if *out == "-" {
		bw := bufio.NewWriter(stdout)
		if err := write(bw, img, *ref); err != nil {
			return err
		}
		return bw.Flush()
	}
	return writeFile(*out, func(w io.Writer) error { return write(w, img, *ref) })
}

// writeFile writes path through a temporary file in the same directory, so
// a failed run never leaves a truncated archive behind.
func writeFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("creating %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
