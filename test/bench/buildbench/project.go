package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// threeStageDockerfile is the image of parts (a) and (b). The first two
// stages do not depend on each other, so BuildKit runs them at once; each
// takes a little CPU (hashing, a shell loop) and writes files; the third
// copies from both. BASE is the FROM image, loaded into drover.
const threeStageDockerfile = `# Stages "hashes" and "counts" are independent: BuildKit runs them at once.
FROM BASE AS hashes
COPY data/ /in/
RUN mkdir /out \
 && for i in $(seq 1 20); do dd if=/dev/zero bs=64k count=16 2>/dev/null | sha256sum > /out/zero-$i.sum; done \
 && head -c 1048576 /dev/urandom > /out/random.bin \
 && sha256sum /in/* > /out/in.sums

FROM BASE AS counts
COPY data/ /in/
RUN i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done \
 && mkdir /out \
 && for f in /in/*; do wc -c "$f" > "/out/$(basename "$f").len"; done

FROM BASE
COPY --from=hashes /out/ /hashes/
COPY --from=counts /out/ /counts/
CMD ["sleep", "3600"]
`

// serviceDockerfile is each service's image in part (c): the context, a
// hash of it and a short loop. Every run writes a new nonce into the
// context, so COPY and RUN are built again, as after a change to the code.
const serviceDockerfile = `FROM BASE
COPY . /app/
RUN sha256sum /app/* > /app.sums \
 && i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done
CMD ["sleep", "3600"]
`

// Names of what the benchmark builds. The images built by hand have
// names of their own: an image of the same name in the cluster's store
// would be fetched from there instead of run from the node's copy.
const (
	threeProject = "bb-three"
	threeImage   = "buildbench/three:latest"     // drover build
	threeCtl     = "buildbench/three-ctl:latest" // buildctl build
)

// upSide is one way of getting the 5-service project running.
type upSide struct {
	key     string // row key
	project string // -p
	image   string // image name pattern, %d is the service number
	build   bool   // the Compose file has build:
}

var (
	sideDrover = upSide{"drover", "bb-up", "buildbench/up-s%d:latest", true}
	sideHand   = upSide{"hand", "bb-hand", "buildbench/hand-s%d:latest", true}
	sideLocal  = upSide{"local", "bb-local", "buildbench/local-s%d:latest", false}
)

func (s upSide) imageOf(i int) string { return fmt.Sprintf(s.image, i) }

// fullName is the name containerd and the cluster's store give an image
// (what drover's CLI passes to BuildKit's exporters).
func fullName(ref string) string { return "docker.io/" + ref }

// writeFile writes content to dir/rel, making the directories.
func writeFile(dir, rel, content string) error {
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), 0o644)
}

// contextData is a few small deterministic text files for a build
// context.
func contextData(dir string, n int) error {
	for i := 1; i <= n; i++ {
		var b strings.Builder
		for line := 0; line < 64; line++ {
			fmt.Fprintf(&b, "file %d line %d: the quick brown fox jumps over the lazy dog\n", i, line)
		}
		if err := writeFile(dir, fmt.Sprintf("data/f%02d.txt", i), b.String()); err != nil {
			return err
		}
	}
	return nil
}

// writeThree writes the 3-stage project into dir: compose.yaml (service
// app, which drover builds, and ctl, buildctl's image, only run once to
// check it), Dockerfile and 48 context files.
func writeThree(dir, base string) error {
	compose := fmt.Sprintf("services:\n  app:\n    build: .\n    image: %s\n  ctl:\n    image: %s\n", threeImage, threeCtl)
	if err := writeFile(dir, "compose.yaml", compose); err != nil {
		return err
	}
	if err := writeFile(dir, "Dockerfile", strings.ReplaceAll(threeStageDockerfile, "BASE", base)); err != nil {
		return err
	}
	return contextData(dir, 48)
}

// writeUp writes a side's 5-service project into dir: compose.yaml and,
// per service, sN/ with the Dockerfile and 8 context files (the nonce is
// written before each run).
func writeUp(dir, base string, s upSide, n int) error {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  s%d:\n", i)
		if s.build {
			fmt.Fprintf(&b, "    build: ./s%d\n", i)
		}
		// SIGKILL only keeps down from waiting out the grace period (sleep
		// as PID 1 ignores SIGTERM); it does not touch up.
		fmt.Fprintf(&b, "    image: %s\n    stop_signal: SIGKILL\n", s.imageOf(i))
	}
	if err := writeFile(dir, "compose.yaml", b.String()); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		sdir := filepath.Join(dir, fmt.Sprintf("s%d", i))
		if err := writeFile(sdir, "Dockerfile", strings.ReplaceAll(serviceDockerfile, "BASE", base)); err != nil {
			return err
		}
		if err := contextData(sdir, 8); err != nil {
			return err
		}
	}
	return nil
}

// writeNonces gives every service's context of dir a new nonce file.
//
// Each file gets an mtime of its own, 10 ms apart: BuildKit keeps one
// copy of every context named "context" for all sessions without a
// shared key (drover's and buildctl's) and sends only the files whose
// size or mtime differ from that copy. The nonces of one run have the
// same size and, written within a few ms, the same coarse mtime, so
// without this a service would be built with the previous service's
// nonce.
func writeNonces(dir, nonce string, n int) error {
	base := time.Now()
	for i := 1; i <= n; i++ {
		rel := fmt.Sprintf("s%d/nonce", i)
		if err := writeFile(dir, rel, fmt.Sprintf("%s s%d\n", nonce, i)); err != nil {
			return err
		}
		mt := base.Add(time.Duration(i) * 10 * time.Millisecond)
		if err := os.Chtimes(filepath.Join(dir, rel), mt, mt); err != nil {
			return err
		}
	}
	return nil
}
