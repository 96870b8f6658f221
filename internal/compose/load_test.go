package compose

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-org/drover/api"
)

// writeFiles writes name -> content into a new temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func service(t *testing.T, spec api.StackSpec, name string) api.ServiceSpec {
	t.Helper()
	for _, s := range spec.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %q in %+v", name, spec.Services)
	return api.ServiceSpec{}
}

func serviceNames(spec api.StackSpec) []string {
	var out []string
	for _, s := range spec.Services {
		out = append(out, s.Name)
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		line    int
		service string
		key     string
		msg     string // a part of the message
	}{
		{"yaml syntax", "services:\n  web:\n    image: nginx\n     ports: [\"80\"]\n", 4, "", "", "invalid YAML"},
		{"tab", "services:\n\tweb:\n    image: nginx\n", 2, "", "", "invalid YAML"},
		{"duplicate key", "services:\n  web:\n    image: nginx\n    image: other\n", 4, "", "", "already defined"},
		{"top level list", "- a\n- b\n", 1, "", "", "must be a mapping"},
		{"unknown service key", "services:\n  web:\n    image: nginx\n    imagee: foo\n", 4, "web", "imagee", "not a Compose key"},
		{"unknown top-level key", "services:\n  web:\n    image: nginx\nfoo: bar\n", 4, "", "foo", "not a Compose key"},
		{"wrong type", "services:\n  web:\n    image: nginx\n    environment: 12\n", 4, "web", "environment", "must be"},
		{"bad interpolation", "services:\n  web:\n    image: \"nginx:${TAG\"\n", 3, "web", "image", "invalid interpolation"},
		{"required variable", "services:\n  web:\n    image: \"nginx:${TAG:?set TAG}\"\n", 3, "web", "image", "set TAG"},
		{"unknown network", "services:\n  web:\n    image: nginx\n    networks: [front]\n", 4, "web", "networks", "undefined network front"},
		{"unknown dependency", "services:\n  web:\n    image: nginx\n    depends_on: [db]\n", 4, "web", "depends_on", "undefined service"},
		{"missing env_file", "services:\n  web:\n    image: nginx\n    env_file: missing.env\n", 4, "web", "env_file", "missing.env"},
		{"bad port", "services:\n  web:\n    image: nginx\n    ports: [\"99999:80\"]\n", 4, "web", "ports", "99999"},
		{"scale and replicas", "services:\n  web.v1:\n    image: nginx\n    scale: 2\n    deploy:\n      replicas: 3\n", 4, "web.v1", "scale", "distinct values"},
		{"no image", "services:\n  web:\n    command: [sh]\n", 2, "web", "image", "neither an image nor a build"},
		{"bad restart", "services:\n  web:\n    image: nginx\n    restart: sometimes\n", 4, "web", "restart", "not a restart policy"},
		{"bad restart condition", "services:\n  web:\n    image: nginx\n    deploy:\n      restart_policy:\n        condition: maybe\n", 6, "web", "deploy.restart_policy.condition", "not a restart condition"},
		{"sctp", "services:\n  web:\n    image: nginx\n    ports: [\"9:9/sctp\"]\n", 4, "web", "ports", "sctp"},
		{"empty file", "", 0, "", "", "empty"},
		{"missing secret file", "services:\n  web:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    file: ./nope.txt\n", 7, "", "secrets.s.file", "no such file"},
		{"secret variable unset", "services:\n  web:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s:\n    environment: DROVER_TEST_UNSET\n", 7, "", "secrets.s.environment", "DROVER_TEST_UNSET is not set"},
		{"secret is a directory", "services:\n  web:\n    image: nginx\n    configs: [c]\nconfigs:\n  c:\n    file: .\n", 7, "", "configs.c.file", "not a regular file"},
		{"volume driver", "services:\n  web:\n    image: nginx\n    volumes: [data:/d]\nvolumes:\n  data:\n    driver: rexray\n", 7, "", "volumes.data.driver", `driver "rexray" is not supported`},
		{"network_mode container", "services:\n  web:\n    image: nginx\n    network_mode: container:abc\n", 4, "web", "network_mode", "container:abc"},
		{"network_mode unknown", "services:\n  web:\n    image: nginx\n    network_mode: mynet\n", 4, "web", "network_mode", "use host, none or service:NAME"},
		{"tmpfs size", "services:\n  web:\n    image: nginx\n    tmpfs: [\"/run:size=lots\"]\n", 4, "web", "tmpfs", "not a size"},
		{"tmpfs mode", "services:\n  web:\n    image: nginx\n    tmpfs: [\"/run:mode=999\"]\n", 4, "web", "tmpfs", "octal"},
		{"log max-size", "services:\n  web:\n    image: nginx\n    logging:\n      options:\n        max-size: huge\n", 6, "web", "logging.options.max-size", "not a size"},
		{"log max-file", "services:\n  web:\n    image: nginx\n    logging:\n      options:\n        max-file: \"0\"\n", 6, "web", "logging.options.max-file", "number of files"},
		{"ipv4_address", "services:\n  web:\n    image: nginx\n    networks:\n      default:\n        ipv4_address: fd00::1\n", 6, "web", "networks.default.ipv4_address", "not an IPv4 address"},
		{"subnet", "services:\n  web:\n    image: nginx\nnetworks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.0.0.0/99\n", 7, "", "networks.default.ipam.config", "not a CIDR prefix"},
		{"ulimit soft above hard", "services:\n  web:\n    image: nginx\n    ulimits:\n      nofile: {soft: 20, hard: 10}\n", 4, "web", "ulimits", "soft limit 20"},
		{"oom_score_adj", "services:\n  web:\n    image: nginx\n    oom_score_adj: 2000\n", 4, "web", "oom_score_adj", "oom_score_adj"},
		// compose-go v2.16 recursed without end on this (found by FuzzLoad).
		{"recursive anchor", "x-a: &a\n  <<: *a\n  restart: always\nservices:\n  s:\n    <<: *a\n    image: x\n", 2, "", "", "recursive anchor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"compose.yaml": tt.yaml})
			file := filepath.Join(dir, "compose.yaml")
			_, err := Load(testContext(t), Options{Files: []string{file}})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *compose.Error", err, err)
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("errors.Is(err, api.ErrInvalid) = false")
			}
			if ce.File != file || ce.Line != tt.line || ce.Service != tt.service || ce.Key != tt.key {
				t.Errorf("got file=%q line=%d service=%q key=%q, want %q %d %q %q\n(%v)",
					ce.File, ce.Line, ce.Service, ce.Key, file, tt.line, tt.service, tt.key, err)
			}
			if !strings.Contains(ce.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", ce.Message, tt.msg)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(testContext(t), Options{Files: []string{filepath.Join(dir, "nope.yaml")}})
	var ce *Error
	if !errors.As(err, &ce) || ce.File == "" || !strings.Contains(ce.Message, "no such file") {
		t.Fatalf("err = %#v", err)
	}
	_, err = Load(testContext(t), Options{WorkingDir: dir})
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "no Compose file found") {
		t.Fatalf("err = %#v", err)
	}
}

func TestLoadWarningsLines(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yaml": `services:
  web:
    image: nginx
    healthcheck:
      test: ["CMD", "true"]
    userns_mode: host
    deploy:
      replicas: 1
      resources:
        reservations: {cpus: "0.5", devices: [{capabilities: [gpu]}]}
  db:
    image: postgres
    volumes:
      - data:/var/lib/postgresql/data
volumes:
  data:
    labels: {a: b}
    x-note: fine
models:
  m:
    model: ai/smollm2
`,
		"compose.override.yaml": `services:
  db:
    cap_add: [NET_ADMIN]
    mem_reservation: 1g
`,
	})
	res, err := Load(testContext(t), Options{WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	type loc struct {
		file    string
		line    int
		service string
		key     string
	}
	var got []loc
	for _, w := range res.Warnings {
		got = append(got, loc{filepath.Base(w.File), w.Line, w.Service, w.Key})
	}
	want := []loc{
		{"compose.yaml", 19, "", "models"},
		{"compose.override.yaml", 4, "db", "mem_reservation"},
		{"compose.yaml", 10, "web", "deploy.resources.reservations.devices"},
		{"compose.yaml", 6, "web", "userns_mode"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %v\nwant %v", got, want)
	}
	w := res.Warnings[3]
	if s := w.String(); !strings.HasSuffix(s, `compose.yaml:6: service "web": key "userns_mode" is not supported yet and is ignored`) {
		t.Errorf("String() = %q", s)
	}
}

func TestLoadMergesFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml": `services:
  web:
    image: nginx:1.25
    environment: [A=1, B=1]
    ports: ["80:80"]
  db:
    image: postgres
`,
		"prod.yaml": `services:
  web:
    image: nginx:1.27
    environment: [B=2]
    ports: ["443:443"]
    deploy:
      replicas: 3
`,
	})
	res, err := Load(testContext(t), Options{Files: []string{filepath.Join(dir, "base.yaml"), filepath.Join(dir, "prod.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	web := service(t, res.Spec, "web")
	if web.Image != "nginx:1.27" || web.Replicas != 3 {
		t.Errorf("image %q replicas %d", web.Image, web.Replicas)
	}
	if !slices.Equal(web.Env, []string{"A=1", "B=2"}) {
		t.Errorf("env %v", web.Env)
	}
	if len(web.Ports) != 2 {
		t.Errorf("ports %v, want 80 and 443", web.Ports)
	}
	if got := serviceNames(res.Spec); !slices.Equal(got, []string{"db", "web"}) {
		t.Errorf("services %v", got)
	}
	if res.Spec.Name != filepath.Base(dir) && res.Spec.Name != strings.ToLower(filepath.Base(dir)) {
		t.Errorf("name %q, want the dir name", res.Spec.Name)
	}
}

func TestLoadDotEnvAndEnvFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".env":     "TAG=1.27\nPORT=8080\nCOMPOSE_PROJECT_NAME=fromdotenv\n",
		"prod.env": "TAG=prod\n",
		"web.env":  "FROM_FILE=yes\nOVERRIDDEN=file\n",
		"compose.yaml": `services:
  web:
    image: nginx:${TAG}
    ports: ["${PORT:-80}:80"]
    env_file: [web.env]
    environment:
      OVERRIDDEN: environment
      SHELL_VAR: ${SHELL_VAR:-unset}
`,
	})
	res, err := Load(testContext(t), Options{WorkingDir: dir, Environ: []string{"SHELL_VAR=from-shell", "PORT=9090"}})
	if err != nil {
		t.Fatal(err)
	}
	web := service(t, res.Spec, "web")
	if web.Image != "nginx:1.27" {
		t.Errorf("image %q", web.Image)
	}
	// The process environment wins over .env, as in Compose.
	if len(web.Ports) != 1 || web.Ports[0].Published != 9090 {
		t.Errorf("ports %v", web.Ports)
	}
	wantEnv := []string{"FROM_FILE=yes", "OVERRIDDEN=environment", "SHELL_VAR=from-shell"}
	if !slices.Equal(web.Env, wantEnv) {
		t.Errorf("env %v, want %v", web.Env, wantEnv)
	}
	if res.Spec.Name != "fromdotenv" {
		t.Errorf("name %q, want COMPOSE_PROJECT_NAME from .env", res.Spec.Name)
	}

	// --env-file replaces .env.
	res, err = Load(testContext(t), Options{WorkingDir: dir, EnvFiles: []string{filepath.Join(dir, "prod.env")}, ProjectName: "explicit"})
	if err != nil {
		t.Fatal(err)
	}
	if web := service(t, res.Spec, "web"); web.Image != "nginx:prod" || web.Ports[0].Published != 80 {
		t.Errorf("with --env-file: image %q ports %v", web.Image, web.Ports)
	}
	if res.Spec.Name != "explicit" {
		t.Errorf("name %q", res.Spec.Name)
	}
}

func TestLoadProjectName(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"My App/compose.yaml":  "services:\n  web:\n    image: nginx\n",
		"named/compose.yaml":   "name: from-file\nservices:\n  web:\n    image: nginx\n",
		"invalid/compose.yaml": "services:\n  web:\n    image: nginx\n",
	})
	cases := []struct {
		opts Options
		want string
	}{
		{Options{WorkingDir: filepath.Join(dir, "My App")}, "myapp"},
		{Options{WorkingDir: filepath.Join(dir, "named")}, "from-file"},
		{Options{WorkingDir: filepath.Join(dir, "named"), Environ: []string{"COMPOSE_PROJECT_NAME=from-env"}}, "from-env"},
		{Options{WorkingDir: filepath.Join(dir, "named"), ProjectName: "flag", Environ: []string{"COMPOSE_PROJECT_NAME=from-env"}}, "flag"},
	}
	for _, c := range cases {
		res, err := Load(testContext(t), c.opts)
		if err != nil {
			t.Fatalf("%+v: %v", c.opts, err)
		}
		if res.Spec.Name != c.want {
			t.Errorf("%+v: name %q, want %q", c.opts, res.Spec.Name, c.want)
		}
	}
	_, err := Load(testContext(t), Options{WorkingDir: filepath.Join(dir, "invalid"), ProjectName: "Not Valid"})
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "invalid project name") {
		t.Errorf("invalid -p: err = %v", err)
	}
}

func TestLoadProfiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{"compose.yaml": `services:
  web:
    image: nginx
  debug:
    image: busybox
    profiles: [debug]
  metrics:
    image: prom/prometheus
    profiles: [ops]
`})
	cases := []struct {
		opts Options
		want []string
	}{
		{Options{WorkingDir: dir}, []string{"web"}},
		{Options{WorkingDir: dir, Profiles: []string{"debug"}}, []string{"debug", "web"}},
		{Options{WorkingDir: dir, Environ: []string{"COMPOSE_PROFILES=debug,ops"}}, []string{"debug", "metrics", "web"}},
		{Options{WorkingDir: dir, Profiles: []string{"ops"}, Environ: []string{"COMPOSE_PROFILES=debug"}}, []string{"metrics", "web"}},
		{Options{WorkingDir: dir, Profiles: []string{"*"}}, []string{"debug", "metrics", "web"}},
	}
	for _, c := range cases {
		res, err := Load(testContext(t), c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := serviceNames(res.Spec); !slices.Equal(got, c.want) {
			t.Errorf("profiles %v env %v: services %v, want %v", c.opts.Profiles, c.opts.Environ, got, c.want)
		}
	}
}

func TestLoadDefaultFilesAndOverride(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"docker-compose.yml":          "services:\n  web:\n    image: nginx:old\n",
		"compose.yaml":                "services:\n  web:\n    image: nginx:1.27\n",
		"docker-compose.override.yml": "services:\n  web:\n    hostname: overridden\n",
	})
	res, err := Load(testContext(t), Options{WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	web := service(t, res.Spec, "web")
	if web.Image != "nginx:1.27" || web.Hostname != "overridden" {
		t.Errorf("image %q hostname %q: want compose.yaml merged with its override", web.Image, web.Hostname)
	}
	if n := len(res.Project.ComposeFiles); n != 2 {
		t.Errorf("compose files %v", res.Project.ComposeFiles)
	}
}

func TestConfigYAML(t *testing.T) {
	dir := writeFiles(t, map[string]string{".env": "TAG=9\n", "compose.yaml": "name: demo\nservices:\n  web:\n    image: nginx:${TAG}\n    ports: [\"8080:80\"]\n"})
	res, err := Load(testContext(t), Options{WorkingDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ConfigYAML(res.Project)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: demo", "image: nginx:9", "published: \"8080\"", "target: 80"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config output lacks %q:\n%s", want, b)
		}
	}
	if _, err := ConfigYAML(nil); err == nil {
		t.Error("ConfigYAML(nil) did not fail")
	}
}

func TestTranslateNil(t *testing.T) {
	if _, _, err := Translate(nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Translate(nil) = %v", err)
	}
}
