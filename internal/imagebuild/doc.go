// Package imagebuild makes small, reproducible container images from the
// static busybox binary, so tests, examples and benchmarks have images to run
// on a machine with no registry.
//
// Build assembles a linux image whose root filesystem is busybox, a link for
// each applet and a minimal /etc (root, nobody and an "app" user); extra files
// and an incompressible padding layer can be added. The same Options always
// give the same image digest: timestamps are fixed and the padding comes from
// a seeded stream. WriteOCIArchive and WriteDockerArchive write the image in
// the two archive formats that `drover image load` and containerd import.
package imagebuild
