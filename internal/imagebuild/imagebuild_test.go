package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/testenv"
)

func requireBusybox(t *testing.T) {
	t.Helper()
	testenv.RequireFile(t, DefaultBusybox, "apt-get install busybox-static")
}

func build(t *testing.T, opts Options) v1.Image {
	t.Helper()
	requireBusybox(t)
	img, err := Build(opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return img
}

// layerEntries reads a layer's tar headers (and the data of small files).
func layerEntries(t *testing.T, l v1.Layer) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdrs := map[string]*tar.Header{}
	data := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(h.Name, "/")
		if _, dup := hdrs[p]; dup {
			t.Errorf("duplicate layer entry %s", p)
		}
		hdrs[p] = h
		if h.Typeflag == tar.TypeReg && h.Size <= 1<<16 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[p] = b
		}
	}
	return hdrs, data
}

func TestBuildRootFS(t *testing.T) {
	img := build(t, Options{Files: map[string]File{
		"/www/index.html":     {Data: []byte("hello\n")},
		"/opt/app/run.sh":     {Mode: 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		"/etc/resolv.conf":    {Data: []byte("nameserver 10.0.0.2\n")},
		"/usr/local/bin/tool": {Mode: 0o4755, Data: []byte("x")},
	}})
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	hdrs, data := layerEntries(t, layers[0])

	bb := hdrs["bin/busybox"]
	if bb == nil || bb.Typeflag != tar.TypeReg || bb.Mode != 0o755 {
		t.Fatalf("bin/busybox = %+v, want an executable regular file", bb)
	}
	if fi, err := os.Stat(DefaultBusybox); err == nil && bb.Size != fi.Size() {
		t.Errorf("bin/busybox size = %d, want %d", bb.Size, fi.Size())
	}
	for _, applet := range []string{"bin/sh", "bin/ls", "bin/echo", "bin/sleep"} {
		h := hdrs[applet]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s = %+v, want a symlink to /bin/busybox", applet, h)
		}
	}
	// httpd, wget and nc sit where busybox --list-full puts them.
	for _, applet := range []string{"httpd", "wget", "nc"} {
		found := false
		for _, dir := range []string{"bin", "sbin", "usr/bin", "usr/sbin"} {
			if h := hdrs[dir+"/"+applet]; h != nil && h.Linkname == "/bin/busybox" {
				found = true
			}
		}
		if !found {
			t.Errorf("no link for applet %s", applet)
		}
	}
	if h := hdrs["tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("tmp = %+v, want a 1777 directory", h)
	}
	for _, d := range []string{"www", "var", "root", "etc", "home/app", "opt", "opt/app", "usr/local", "usr/local/bin"} {
		if h := hdrs[d]; h == nil || h.Typeflag != tar.TypeDir {
			t.Errorf("%s = %+v, want a directory", d, h)
		}
	}
	if h := hdrs["home/app"]; h != nil && (h.Uid != 1000 || h.Gid != 1000) {
		t.Errorf("home/app owned by %d:%d, want 1000:1000", h.Uid, h.Gid)
	}
	for _, want := range []string{"root:x:0:0:", "nobody:x:65534:65534:", "app:x:1000:1000:"} {
		if !bytes.Contains(data["etc/passwd"], []byte(want)) {
			t.Errorf("etc/passwd lacks %q:\n%s", want, data["etc/passwd"])
		}
	}
	if !bytes.Contains(data["etc/group"], []byte("app:x:1000:")) {
		t.Errorf("etc/group lacks app:\n%s", data["etc/group"])
	}
	if h := hdrs["etc/hosts"]; h == nil || h.Size != 0 {
		t.Errorf("etc/hosts = %+v, want an empty placeholder", h)
	}
	if got := string(data["etc/resolv.conf"]); got != "nameserver 10.0.0.2\n" {
		t.Errorf("etc/resolv.conf = %q, want the caller's file to replace the placeholder", got)
	}
	if got := string(data["www/index.html"]); got != "hello\n" || hdrs["www/index.html"].Mode != 0o644 {
		t.Errorf("www/index.html = %q mode %#o, want hello with mode 0644", got, hdrs["www/index.html"].Mode)
	}
	if h := hdrs["opt/app/run.sh"]; h == nil || h.Mode != 0o755 {
		t.Errorf("opt/app/run.sh = %+v, want mode 0755", h)
	}
	if h := hdrs["usr/local/bin/tool"]; h == nil || h.Mode != 0o4755 {
		t.Errorf("usr/local/bin/tool = %+v, want mode 04755", h)
	}
	for p, h := range hdrs {
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s mtime = %v, want the epoch", p, h.ModTime)
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform = %s/%s", cf.OS, cf.Architecture)
	}
	if !reflect.DeepEqual(cf.Config.Cmd, []string{"sh"}) || !reflect.DeepEqual(cf.Config.Env, DefaultEnv) {
		t.Errorf("config Cmd %q Env %q, want the defaults", cf.Config.Cmd, cf.Config.Env)
	}
}

func TestBuildConfig(t *testing.T) {
	hc := &Healthcheck{
		Test:        []string{"CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"},
		Interval:    2 * time.Second,
		Timeout:     time.Second,
		StartPeriod: 500 * time.Millisecond,
		Retries:     3,
	}
	img := build(t, Options{
		Env:          []string{"A=1"},
		Entrypoint:   []string{"httpd", "-f"},
		WorkingDir:   "/www",
		ExposedPorts: []string{"80/tcp", "53/udp", "8080"},
		Healthcheck:  hc,
	})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.Cmd != nil {
		t.Errorf("Cmd = %q, want none when only an Entrypoint is set", c.Cmd)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"httpd", "-f"}) || c.WorkingDir != "/www" || !reflect.DeepEqual(c.Env, []string{"A=1"}) {
		t.Errorf("config = %+v", c)
	}
	wantPorts := map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8080/tcp": {}}
	if !reflect.DeepEqual(c.ExposedPorts, wantPorts) {
		t.Errorf("ExposedPorts = %v, want %v", c.ExposedPorts, wantPorts)
	}
	want := v1.HealthConfig{Test: hc.Test, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod, Retries: hc.Retries}
	if c.Healthcheck == nil || !reflect.DeepEqual(*c.Healthcheck, want) {
		t.Errorf("Healthcheck = %+v, want %+v", c.Healthcheck, want)
	}
	// Docker's encoding: durations in nanoseconds under capitalised keys.
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Config struct {
			Healthcheck map[string]any
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Config.Healthcheck["Interval"]; got != float64(2e9) {
		t.Errorf("raw Healthcheck.Interval = %v, want 2e9 nanoseconds (config %s)", got, raw)
	}
	if got := doc.Config.Healthcheck["Retries"]; got != float64(3) {
		t.Errorf("raw Healthcheck.Retries = %v, want 3", got)
	}
}

func TestBuildInvalid(t *testing.T) {
	requireBusybox(t)
	for name, opts := range map[string]Options{
		"relative file":      {Files: map[string]File{"www/x": {}}},
		"unclean file":       {Files: map[string]File{"/www/../x": {}}},
		"file over dir":      {Files: map[string]File{"/etc": {}}},
		"file under file":    {Files: map[string]File{"/etc/passwd/x": {}}},
		"file type bits":     {Files: map[string]File{"/x": {Mode: 0o100644}}},
		"bad port":           {ExposedPorts: []string{"http"}},
		"bad protocol":       {ExposedPorts: []string{"80/icmp"}},
		"negative padding":   {Padding: -1},
		"negative retries":   {Healthcheck: &Healthcheck{Retries: -1}},
		"port out of range":  {ExposedPorts: []string{"70000"}},
		"missing dir parent": {Files: map[string]File{"/bin/busybox/x": {}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Build(opts); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Build(%+v) = %v, want ErrInvalid", opts, err)
			}
		})
	}
	if _, err := Build(Options{Busybox: filepath.Join(t.TempDir(), "busybox")}); err == nil {
		t.Error("Build with a missing busybox succeeded")
	}
}

func TestBuildDeterministic(t *testing.T) {
	opts := Options{Files: map[string]File{"/www/a": {Data: []byte("a")}, "/www/b": {Data: []byte("b")}}, Padding: 4096}
	d1, err := build(t, opts).Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := build(t, opts).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("same options gave digests %s and %s", d1, d2)
	}
	d3, err := build(t, Options{Padding: 4096}).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d3 == d1 {
		t.Errorf("different files gave the same digest %s", d1)
	}

	var a1, a2 bytes.Buffer
	if err := WriteOCIArchive(&a1, build(t, opts), ""); err != nil {
		t.Fatal(err)
	}
	if err := WriteOCIArchive(&a2, build(t, opts), ""); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a1.Bytes(), a2.Bytes()) {
		t.Error("the same image gave two different OCI archives")
	}
}

func TestBuildPadding(t *testing.T) {
	const size = 1<<20 + 123 // not a multiple of the tar block
	img := build(t, Options{Padding: size})
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("got %d layers, want 2", len(layers))
	}
	hdrs, _ := layerEntries(t, layers[1])
	h := hdrs[strings.TrimPrefix(PaddingPath, "/")]
	if len(hdrs) != 1 || h == nil || h.Size != size {
		t.Fatalf("padding layer = %v, want only %s of %d bytes", hdrs, PaddingPath, size)
	}
	// Incompressible: the compressed blob is no smaller than the data.
	if got, err := layers[1].Size(); err != nil || got < size {
		t.Errorf("padding layer compressed size = %d, %v; want at least %d", got, err, size)
	}
	// The padding really is hard to compress, not just stored without
	// compression.
	rc, err := layers[1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var zbuf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zbuf, gzip.BestCompression)
	if _, err := io.Copy(zw, rc); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if zbuf.Len() < size {
		t.Errorf("padding gzips to %d bytes, want at least %d", zbuf.Len(), size)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
		t.Errorf("config has %d diff IDs and %d history entries, want 2 and 2", len(cf.RootFS.DiffIDs), len(cf.History))
	}
}

// untar extracts an archive into a new directory.
func untar(t *testing.T, r io.Reader) string {
	t.Helper()
	dir := t.TempDir()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected archive member %s of type %c", h.Name, h.Typeflag)
		}
	}
}

func TestWriteOCIArchive(t *testing.T) {
	img := build(t, Options{Padding: 1000})
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ref, refName, imageName string }{
		{"", DefaultRef, DefaultRef},
		{DefaultRef, DefaultRef, DefaultRef},
		{"busybox", "busybox:latest", "docker.io/library/busybox:latest"},
		{"me/web:1.2", "me/web:1.2", "docker.io/me/web:1.2"},
		{"localhost:5000/x/y:dev", "localhost:5000/x/y:dev", "localhost:5000/x/y:dev"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteOCIArchive(&buf, img, tc.ref); err != nil {
				t.Fatal(err)
			}
			dir := untar(t, &buf)
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != 1 {
				t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
			}
			desc := im.Manifests[0]
			if desc.Digest != want {
				t.Errorf("index names %s, want %s", desc.Digest, want)
			}
			if got := desc.Annotations[AnnotationRefName]; got != tc.refName {
				t.Errorf("%s = %q, want %q", AnnotationRefName, got, tc.refName)
			}
			if got := desc.Annotations[AnnotationImageName]; got != tc.imageName {
				t.Errorf("%s = %q, want %q", AnnotationImageName, got, tc.imageName)
			}
			got, err := layout.Path(dir).Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkReadBack(t, got, config, 2)
		})
	}
}

func TestWriteDockerArchive(t *testing.T) {
	img := build(t, Options{})
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ref, repoTag string }{
		{"", DefaultRef},
		{"busybox", "busybox:latest"},
		{"docker.io/library/busybox:1", "busybox:1"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteDockerArchive(&buf, img, tc.ref); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
			m, err := tarball.LoadManifest(opener)
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 1 || !reflect.DeepEqual(m[0].RepoTags, []string{tc.repoTag}) {
				t.Fatalf("manifest.json = %+v, want RepoTags [%s]", m, tc.repoTag)
			}
			tag, err := name.NewTag(tc.repoTag)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tarball.Image(opener, &tag)
			if err != nil {
				t.Fatal(err)
			}
			checkReadBack(t, got, config, 1)
		})
	}
}

// checkReadBack checks an image read back from an archive: its layers are
// intact and the first holds busybox and sh.
func checkReadBack(t *testing.T, img v1.Image, wantConfig v1.Hash, wantLayers int) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != wantLayers {
		t.Fatalf("read back %d layers, want %d", len(layers), wantLayers)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if diffID != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff ID %s, config says %s", i, diffID, cf.RootFS.DiffIDs[i])
		}
	}
	hdrs, _ := layerEntries(t, layers[0])
	if hdrs["bin/busybox"] == nil || hdrs["bin/sh"] == nil {
		t.Errorf("read-back layer lacks bin/busybox or bin/sh")
	}
	// The docker format rebuilds the manifest, so compare configs: both
	// formats keep the config blob as written.
	got, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if got != wantConfig {
		t.Errorf("read back config %s, want %s", got, wantConfig)
	}
}

func TestWriteInvalidRef(t *testing.T) {
	img := build(t, Options{})
	for _, ref := range []string{"busybox/Upper", "busybox@sha256:" + strings.Repeat("a", 64), "bad ref"} {
		if err := WriteOCIArchive(io.Discard, img, ref); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("WriteOCIArchive(%q) = %v, want ErrInvalid", ref, err)
		}
		if err := WriteDockerArchive(io.Discard, img, ref); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("WriteDockerArchive(%q) = %v, want ErrInvalid", ref, err)
		}
	}
}

func TestAppletsFallback(t *testing.T) {
	// A busybox that cannot run here (another architecture, say) still
	// gets links for the common applets.
	got := applets(filepath.Join(t.TempDir(), "busybox"))
	for _, want := range []string{"bin/sh", "bin/httpd", "bin/wget", "bin/sleep"} {
		if !slices.Contains(got, want) {
			t.Errorf("fallback applets lack %s: %v", want, got)
		}
	}
}
