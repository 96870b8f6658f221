package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/platforms"

	"github.com/drover-org/drover/api"
)

// Options say which Compose files to read and how, as the flags of
// `docker compose` do.
type Options struct {
	Files       []string // -f FILE...; empty: Compose's default names (compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml, plus an override) in WorkingDir
	WorkingDir  string   // project dir; empty: dir of first file, or cwd
	ProjectName string   // -p; empty: COMPOSE_PROJECT_NAME, else `name:` in a file, else the dir's base name normalized as Compose does
	Profiles    []string // --profile; empty: COMPOSE_PROFILES
	EnvFiles    []string // --env-file; empty: .env in the project dir if present
	Environ     []string // os.Environ() style, for interpolation (the caller passes os.Environ())
	// Platform is the host's platform ("linux/amd64") that services'
	// platform: keys are checked against; empty: this machine's.
	Platform string
}

// Result is a loaded Compose project.
type Result struct {
	Spec     api.StackSpec
	Warnings []Warning
	Project  *types.Project // compose-go's normalized model, for `drover config`
	// Builds are the images to build, one per service with build:.
	Builds []BuildPlan
}

// Load reads the Compose files that opts name through compose-go
// (interpolation, .env, env_file, merging of several files, profiles,
// extends, include) and translates the project. Every failure that comes
// from the files is an *Error; a panic inside compose-go is one as well.
func Load(ctx context.Context, opts Options) (*Result, error) {
	files, displays, err := composeFiles(opts)
	if err != nil {
		return nil, err
	}
	src := make(sources, 0, len(files))
	for i, f := range files {
		content, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{File: displays[i], Message: readError(err)}
		}
		sf, err := parseSource(displays[i], content)
		if err != nil {
			return nil, err
		}
		if err := sf.checkTopLevel(); err != nil {
			return nil, err
		}
		src = append(src, sf)
	}

	project, err := loadProject(ctx, opts, files, displays[0])
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, toError(err, src, files, displays)
	}

	spec, warnings, err := Translate(project)
	if err == nil {
		err = readContents(project, &spec)
	}
	var builds []BuildPlan
	if err == nil {
		builds = BuildPlans(project)
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.File == "" {
			e.File, e.Line = locateKey(src, e.Service, e.Key, displays[0])
		}
		return nil, err
	}
	for i := range builds {
		if r := builds[i].Refusal; r != nil {
			r.File, r.Line = locateKey(src, r.Service, r.Key, displays[0])
			warnings = append(warnings, Warning{Service: r.Service, Key: r.Key, Message: r.Message + ": the image cannot be built here"})
		}
	}
	host := opts.Platform
	if host == "" {
		host = platforms.DefaultString()
	}
	warnings = append(warnings, platformWarnings(spec, host)...)
	sortWarnings(warnings)
	for i := range warnings {
		w := &warnings[i]
		w.File, w.Line = locateKey(src, w.Service, w.Key, "")
	}
	warnings = append(sourceWarnings(src), warnings...)
	return &Result{Spec: spec, Warnings: warnings, Project: project, Builds: builds}, nil
}

// loadProject runs compose-go with options in the order `docker compose`
// applies them: working dir, environment, .env files, then the name and
// profiles that the environment may set.
//
// compose-go has panicked on odd input before (type assertions on the raw
// model); a panic there becomes an *Error on the main file, so a hostile
// file cannot bring down a server that loads it.
func loadProject(ctx context.Context, opts Options, files []string, mainFile string) (project *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			project = nil
			err = &Error{File: mainFile, Message: fmt.Sprintf(
				"compose-go failed on this file (please report it, with the file): panic: %v", r)}
		}
	}()
	wd := opts.WorkingDir
	if wd == "" {
		wd = filepath.Dir(files[0])
	}
	po, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(wd),
		cli.WithEnv(opts.Environ),
		cli.WithEnvFiles(opts.EnvFiles...),
		cli.WithDotEnv,
		cli.WithName(opts.ProjectName),
		cli.WithDefaultProfiles(opts.Profiles...),
	)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

// composeFiles returns the absolute paths of the files to load and the
// names to show for them: as the user wrote them for -f files, relative to
// the current directory for files found by default.
func composeFiles(opts Options) (files, displays []string, err error) {
	if len(opts.Files) > 0 {
		for _, f := range opts.Files {
			if f == "-" {
				return nil, nil, &Error{File: f, Message: "reading a Compose file from standard input is not supported: save it to a file"}
			}
			abs, err := filepath.Abs(f)
			if err != nil {
				return nil, nil, &Error{File: f, Message: err.Error()}
			}
			files = append(files, abs)
			displays = append(displays, f)
		}
		return files, displays, nil
	}
	dir := opts.WorkingDir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return nil, nil, fmt.Errorf("compose: finding the current directory: %w", err)
		}
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, nil, &Error{File: opts.WorkingDir, Message: err.Error()}
	}
	main := firstExisting(dir, cli.DefaultFileNames)
	if main == "" {
		return nil, nil, &Error{File: dir, Message: fmt.Sprintf(
			"no Compose file found: looked for %s; name one with -f", strings.Join(cli.DefaultFileNames, ", "))}
	}
	files = append(files, main)
	if o := firstExisting(dir, cli.DefaultOverrideFileNames); o != "" {
		files = append(files, o)
	}
	cwd, _ := os.Getwd()
	for _, f := range files {
		d := f
		if rel, err := filepath.Rel(cwd, f); err == nil && cwd != "" && !strings.HasPrefix(rel, "..") {
			d = rel
		}
		displays = append(displays, d)
	}
	return files, displays, nil
}

func firstExisting(dir string, names []string) string {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

func readError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if errors.Is(err, os.ErrNotExist) {
			return "no such file"
		}
		return pe.Err.Error()
	}
	return err.Error()
}

// locateKey finds where a service key (or a top-level key when service is
// empty) is written, falling back to fallback with no line.
func locateKey(src sources, service, key, fallback string) (string, int) {
	var path []string
	if service != "" {
		path = append(path, "services", service)
	}
	if key != "" {
		path = append(path, strings.Split(key, ".")...)
	}
	if len(path) == 0 {
		return fallback, 0
	}
	if f, l, ok := src.locate(path...); ok {
		return f, l
	}
	return fallback, 0
}

// sourceWarnings are what only the source files show: keys compose-go
// reads and drops.
func sourceWarnings(src sources) []Warning {
	var out []Warning
	if src.has("version") {
		f, l, _ := src.locate("version")
		out = append(out, Warning{File: f, Line: l, Key: "version", Message: "is obsolete and ignored, as in Docker Compose"})
	}
	return out
}
