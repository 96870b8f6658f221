package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/test/harness"
)

// A registry that wants a login: `up` of its image fails naming the image
// until `drover login`, works after it, and fails again (for an image the
// node has not pulled yet) after `drover logout`.
func TestLogin(t *testing.T) {
	s := harness.StartServer(t)
	// A password that shows nowhere by chance, so that finding it in a
	// listing, an event or the server's log means a leak.
	const password = "pw-Zq81x"

	var authed, refused atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != password {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="drover-test"`)
			http.Error(w, "login needed", http.StatusUnauthorized)
			return
		}
		authed.Add(1)
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://") // 127.0.0.1:PORT

	img, err := imagebuild.Build(imagebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"1", "2"} {
		pushImage(t, srv.URL, "busybox", tag, img, "u", password)
	}

	project := func(dirName, tag string) string {
		return harness.WriteProject(t, dirName, fmt.Sprintf(`
services:
  app:
    image: %s/busybox:%s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
`, host, tag))
	}
	image1 := host + "/busybox:1"
	dir1 := project("login1", "1")

	out, err := s.DroverIn(dir1, "up", "-d")
	if err == nil || !strings.Contains(out, image1) || !strings.Contains(strings.ToLower(out), "auth") {
		t.Fatalf("up without a login: want a failure naming %s and the auth; got %v\n%s", image1, err, out)
	}
	if refused.Load() == 0 {
		t.Fatalf("the registry was never asked")
	}

	// Bad arguments are refused, saying what is wrong.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"login", host, "-p", password}, "username"},
		{[]string{"login", host, "-u", "u"}, "password"},
		{[]string{"login", "bad_host", "-u", "u", "-p", "p"}, "bad_host"},
		{[]string{"login", host, "-u", "u", "-p", "p", "--password-stdin"}, "exclusive"},
		{[]string{"login", "a", "b", "-u", "u", "-p", "p"}, "accepts at most 1 arg"},
	} {
		if out, err := s.Drover(c.args...); err == nil || !strings.Contains(out, c.want) {
			t.Errorf("drover %s: want an error saying %q; got %v\n%s", strings.Join(c.args, " "), c.want, err, out)
		}
	}

	out = s.MustDrover("", "login", host, "-u", "u", "-p", password)
	if !strings.Contains(out, host) {
		t.Errorf("login output: %s", out)
	}
	// The failed container stays failed while the service is unchanged:
	// recreate it.
	s.MustDrover(dir1, "up", "-d", "--force-recreate")
	if authed.Load() == 0 {
		t.Fatalf("the pull never logged in")
	}
	if ps := s.PS(dir1); len(ps) != 1 || ps[0]["State"] != "running" {
		t.Errorf("ps after up with a login: %v", ps)
	}
	// The login shows in no listing or event.
	for _, args := range [][]string{{"ps", "--format", "json"}, {"images"}, {"ls"}} {
		if out, _ := s.DroverIn(dir1, args...); strings.Contains(out, password) {
			t.Errorf("drover %s shows the login: %s", strings.Join(args, " "), out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := s.Client.Events(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := io.ReadAll(rc)
	rc.Close()
	if strings.Contains(string(events), password) {
		t.Errorf("events carry the login: %s", events)
	}
	if b, err := os.ReadFile(s.LogPath); err != nil || bytes.Contains(b, []byte(password)) {
		t.Errorf("the server log carries the login (or is unreadable: %v)", err)
	}

	// --password-stdin, as scripts log in: the trailing newline is not
	// part of the password.
	cmd := exec.Command(s.Bin, "login", host, "-u", "u2", "--password-stdin")
	cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+s.Sock)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("login --password-stdin: %v\n%s", err, out)
	}
	if l, err := s.Client.RegistryCredentials(ctx, host); err != nil || l.Username != "u2" || l.Password != password {
		t.Fatalf("credentials after login --password-stdin: %q/%q %v", l.Username, l.Password, err)
	}

	out = s.MustDrover("", "logout", host)
	if !strings.Contains(out, "Removed login for "+host) {
		t.Errorf("logout output: %s", out)
	}
	if out = s.MustDrover("", "logout", host); !strings.Contains(out, "Not logged in to "+host) {
		t.Errorf("second logout output: %s", out)
	}
	image2 := host + "/busybox:2"
	out, err = s.DroverIn(project("login2", "2"), "up", "-d")
	if err == nil || !strings.Contains(out, image2) {
		t.Fatalf("up of an image not pulled yet after logout: want a failure naming %s; got %v\n%s", image2, err, out)
	}
}

// pushImage uploads img as repo:tag to the registry at base, each blob in
// one POST and then the manifest, as the distribution spec allows. (The
// go-containerregistry client would pull the Docker CLI's credential code
// into the module for a test alone.)
func pushImage(t *testing.T, base, repo, tag string, img v1.Image, user, pass string) {
	t.Helper()
	send := func(method, path, contentType string, body []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, pass)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("push %s:%s: %v", repo, tag, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("push %s:%s: %s %s: %s\n%s", repo, tag, method, path, resp.Status, b)
		}
	}
	blob := func(d v1.Hash, body []byte) {
		send(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", body)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	blob(cfgName, cfg)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		blob(d, b)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	send(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, string(mt), manifest)
}
