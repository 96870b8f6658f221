package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PaddingPath is the file that holds Options.Padding bytes.
const PaddingPath = "/padding.bin"

// paddingSeed makes the padding reproducible: random enough that no
// compressor shrinks it, yet the same bytes (and digest) on every build.
var paddingSeed = [32]byte([]byte("drover imagebuild padding seed!!"))

// paddingLayer returns a layer holding PaddingPath with size incompressible
// bytes. The tar stream is generated on each read rather than held in
// memory, so a multi-gigabyte padding costs CPU, not RAM.
func paddingLayer(size int64) (v1.Layer, error) {
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     PaddingPath[1:],
		Mode:     0o644,
		Size:     size,
		ModTime:  epoch,
		Format:   tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	// WriteHeader has flushed the header; the data, its padding to a
	// 512-byte block and the two zero blocks that end an archive follow.
	header := hdr.Bytes()
	trailer := make([]byte, (512-size%512)%512+1024)
	opener := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(
			bytes.NewReader(header),
			io.LimitReader(rand.NewChaCha8(paddingSeed), size),
			bytes.NewReader(trailer),
		)), nil
	}
	// The data cannot shrink, so storing it uncompressed inside gzip is as
	// small as compressing it and many times faster.
	return tarball.LayerFromOpener(opener,
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.NoCompression))
}
