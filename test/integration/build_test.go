package integration

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/harness"
)

const buildSecret = "s3cret-build-token-7731"

// TestBuild builds with the real BuildKit on the server's own containerd:
// a multi-stage Dockerfile FROM the loaded busybox image (RUN, COPY, ARG,
// a target, .dockerignore), dockerfile_inline, a build secret readable in
// RUN and absent from the image, the cache on a second build, up building
// a missing image, up --build recreating exactly the rebuilt service, and
// a failing RUN refused with its line and output with nothing deployed.
func TestBuild(t *testing.T) {
	testenv.RequireBinary(t, "buildkitd")
	s := harness.StartServer(t)
	dir := harness.WriteProject(t, "bld", fmt.Sprintf(`
services:
  app:
    build:
      context: ./app
      target: final
      args:
        GREETING: from-args
      secrets: [token]
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  inline:
    build:
      dockerfile_inline: |
        FROM %[1]s
        RUN echo inline-built > /inline
    command: ["sleep", "3600"]
    stop_grace_period: 1s
secrets:
  token:
    file: ./token.txt
`, harness.Image))
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("token.txt", buildSecret)
	write("app/Dockerfile", fmt.Sprintf(`ARG BASE=%s
FROM $BASE AS base
ARG GREETING=default
RUN echo "$GREETING" > /greeting
FROM base AS final
COPY . /src/
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secret-len
FROM base AS unused
RUN exit 9
`, harness.Image))
	write("app/.dockerignore", "ignored.txt\n")
	write("app/kept.txt", "v1\n")
	write("app/ignored.txt", "must not be copied\n")

	// drover config reads it; up builds what is missing and runs it.
	s.MustDrover(dir, "config")
	out := s.MustDrover(dir, "up", "-d")
	if !strings.Contains(out, "Service app  Built") || !strings.Contains(out, "Service inline  Built") {
		t.Fatalf("up did not build both images:\n%s", out)
	}
	exec := func(svc string, cmd ...string) (string, error) {
		return s.DroverIn(dir, append([]string{"exec", "-T", svc}, cmd...)...)
	}
	for _, c := range []struct {
		svc, path, want string
	}{
		{"app", "/greeting", "from-args"},
		{"app", "/src/kept.txt", "v1"},
		{"app", "/secret-len", fmt.Sprint(len(buildSecret))},
		{"inline", "/inline", "inline-built"},
	} {
		if got, err := exec(c.svc, "cat", c.path); err != nil || strings.TrimSpace(got) != c.want {
			t.Errorf("%s: cat %s = %q, %v; want %q", c.svc, c.path, got, err, c.want)
		}
	}
	if out, err := exec("app", "ls", "/src"); err != nil || strings.Contains(out, "ignored.txt") || !strings.Contains(out, "kept.txt") {
		t.Errorf(".dockerignore not honoured: ls /src = %q, %v", out, err)
	}
	if out, err := exec("app", "ls", "/run/secrets/token"); err == nil {
		t.Errorf("the build secret is in the image: %q", out)
	}
	if where := findInBlobs(t, filepath.Join(s.DataDir, "content")); where != "" {
		t.Errorf("the build secret's value is in the stored image (%s)", where)
	}

	// The second build of an unchanged context comes from the cache.
	if out := s.MustDrover(dir, "build", "--build-progress", "plain", "app"); !strings.Contains(out, "CACHED") {
		t.Errorf("second build of an unchanged context used no cache:\n%s", out)
	}

	// up --build after a change to app's context recreates app alone.
	before := containerIDs(s, dir)
	write("app/kept.txt", "v2\n")
	s.MustDrover(dir, "up", "-d", "--build")
	after := containerIDs(s, dir)
	if before["app"] == after["app"] || before["inline"] != after["inline"] {
		t.Errorf("up --build after a change to app: containers %v -> %v; want app replaced, inline kept", before, after)
	}
	if got, _ := exec("app", "cat", "/src/kept.txt"); strings.TrimSpace(got) != "v2" {
		t.Errorf("rebuilt app has kept.txt %q, want v2", got)
	}

	// A failing RUN: its line and output, and nothing deployed.
	bad := harness.WriteProject(t, "bldfail", `
services:
  web:
    image: drover.local/never-built:1
    build:
      context: .
    command: ["sleep", "3600"]
`)
	if err := os.WriteFile(filepath.Join(bad, "Dockerfile"), []byte("FROM "+harness.Image+"\nRUN echo step-one\nRUN echo failing-output-here && exit 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := s.DroverIn(bad, "up", "-d", "--build-progress", "plain")
	for _, want := range []string{"failing-output-here", "exit code: 3", "RUN echo failing-output-here && exit 3", `service "web"`, "nothing of project"} {
		if !strings.Contains(out, want) {
			t.Errorf("failed build: output lacks %q:\n%s", want, out)
		}
	}
	if err == nil {
		t.Error("up of a failing build succeeded")
	}
	if ls := s.MustDrover("", "ls"); strings.Contains(ls, "bldfail") {
		t.Errorf("a project whose build failed was deployed:\n%s", ls)
	}
	if images := s.MustDrover("", "image", "ls"); strings.Contains(images, "never-built") {
		t.Errorf("a failed build left an image:\n%s", images)
	}
}

// containerIDs maps each service of the project to its container's ID.
func containerIDs(s *harness.Server, dir string) map[string]string {
	out := map[string]string{}
	for _, c := range s.PS(dir) {
		out[fmt.Sprint(c["Service"])] = fmt.Sprint(c["ID"])
	}
	return out
}

// findInBlobs looks for the build secret's value in every blob of a
// content store (layers decompressed), returning where it is.
func findInBlobs(t *testing.T, root string) string {
	t.Helper()
	found := ""
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
				if u, err := io.ReadAll(zr); err == nil {
					b = u
				}
			}
		}
		if bytes.Contains(b, []byte(buildSecret)) {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the content store: %v", err)
	}
	return found
}
