package compose

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"
)

// compose-go reports most problems as wrapped fmt errors whose only
// structure is their text ("validating FILE: services.web.ports.0 must be
// a string", `service "web" refers to undefined network front: invalid
// compose project`). It exports no error types with a path or a position,
// so toError reads the text to fill in file, service and key, then looks
// the key (or failing that, the value the message names) up in the source
// files for a line. What it cannot find stays empty; the message is kept.

var (
	// Prefixes with which compose-go names the file at fault.
	filePrefixes = []*regexp.Regexp{
		regexp.MustCompile(`^validating (.+?): `),
		regexp.MustCompile(`^failed to parse (.+?): `),
		regexp.MustCompile(`^compose file "(.+?)" is invalid: `),
	}
	// A dotted path into the model: services.web.ports.0, networks.front.ipam.
	modelPathRE = regexp.MustCompile(`\b(?:services|networks|volumes|secrets|configs|jobs|models|include)\.[A-Za-z0-9._\[\]-]*[A-Za-z0-9_\]-]`)
	// `service "web"` or `service web` in consistency errors.
	serviceRE = regexp.MustCompile(`\bservice "?([A-Za-z0-9._-]+)"?`)
	// JSON schema: `additional properties 'foo' not allowed`.
	additionalRE = regexp.MustCompile(`additional propert(?:y|ies) '([^']+)'`)
	// compose-go's refusal of container_name with replicas, which names
	// the key where the service belongs and the service where the key does.
	uniqueNameRE = regexp.MustCompile(`services\.(scale|deploy\.replicas): can't set container_name and ([A-Za-z0-9._-]+) as container name must be unique`)
	// mapstructure's path of a value compose-go could not decode:
	// 'services[web].deploy.update_config.delay' time: invalid duration "x".
	decodePathRE  = regexp.MustCompile(`'([a-z_]+)\[([^\]']+)\]((?:\.[A-Za-z0-9_-]+|\[[0-9]+\])*)' `)
	decodeIndexRE = regexp.MustCompile(`\[([0-9]+)\]`)
	// Absolute paths in messages about files that do not open.
	absPathRE = regexp.MustCompile(`(?:^|[\s"'])(/[^\s:"']+)`)
	// Which key an error is about, by its wording.
	keyWords = []struct {
		re  *regexp.Regexp
		key string
	}{
		{regexp.MustCompile(`undefined network|network_mode. and .networks`), "networks"},
		{regexp.MustCompile(`undefined volume`), "volumes"},
		{regexp.MustCompile(`undefined (build )?secret`), "secrets"},
		{regexp.MustCompile(`undefined config`), "configs"},
		{regexp.MustCompile(`undefined model`), "models"},
		{regexp.MustCompile(`depends on undefined|cannot depend on`), "depends_on"},
		{regexp.MustCompile(`for network_mode`), "network_mode"},
		{regexp.MustCompile(`neither an image nor a build`), "image"},
		{regexp.MustCompile(`'scale' and 'deploy.replicas'`), "scale"},
		{regexp.MustCompile(`'cpus' and`), "cpus"},
		{regexp.MustCompile(`'mem_limit' and`), "mem_limit"},
		{regexp.MustCompile(`'mem_reservation' and`), "mem_reservation"},
		{regexp.MustCompile(`'pids_limit' and`), "pids_limit"},
		{regexp.MustCompile(`container_name`), "container_name"},
		{regexp.MustCompile(`dockerfile_inline|additional contexts`), "build"},
		{regexp.MustCompile(`healthcheck\.test`), "healthcheck"},
	}
)

const notAKey = "is not a Compose key (misspelled, or at the wrong level?)"

// toError converts an error from compose-go into an *Error located as
// precisely as the error and the source files allow. files are the
// absolute paths of the source files, displays their names as shown.
func toError(err error, src sources, files, displays []string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{}
	msg := err.Error()
	var loadErrs *yaml.LoadErrors
	if errors.As(err, &loadErrs) && len(loadErrs.Errors) > 0 {
		ce := loadErrs.Errors[0]
		out.Line = ce.Line
		msg = "invalid YAML: " + ce.Err.Error()
		if l := lineOf(ce.Err.Error()); l > 0 {
			out.Line = l
		}
	}

	// The file, named at the front of the message.
	for stripped := true; stripped; {
		stripped = false
		for _, re := range filePrefixes {
			if m := re.FindStringSubmatchIndex(msg); m != nil {
				out.File = displayName(msg[m[2]:m[3]], files, displays)
				msg = msg[m[1]:]
				stripped = true
			}
		}
	}
	msg = strings.TrimSpace(strings.TrimSuffix(msg, ": invalid compose project"))
	if out.Line == 0 && strings.HasPrefix(msg, "yaml: ") {
		out.Line = lineOf(msg)
		msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	}
	if msg == "" {
		msg = "invalid Compose file"
	}

	// A value that failed to decode: written as a model path, so that the
	// service, key and line are found as for a schema error.
	if rest, ok := strings.CutPrefix(msg, "decoding failed due to the following error(s):"); ok {
		msg = strings.TrimSpace(rest)
		msg = decodePathRE.ReplaceAllStringFunc(msg, func(m string) string {
			sub := decodePathRE.FindStringSubmatch(m)
			return sub[1] + "." + sub[2] + decodeIndexRE.ReplaceAllString(sub[3], ".$1") + ": "
		})
	}
	// compose-go checks the schema on the model marshalled to JSON, which
	// has no NaN or infinity: find the value that holds one.
	var path []string
	if v, ok := strings.CutPrefix(msg, "json: unsupported value: "); ok {
		msg = v + ": want a finite number"
		if h, ok := src.findScalar(nonFinite); ok {
			out.File, out.Line, path = h.file, h.line, h.path
			msg = h.value + ": want a finite number"
		}
	}
	if m := uniqueNameRE.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("services.%s.container_name: cannot be set with %s above 1: a container name must be unique; remove container_name or run one replica", m[2], m[1])
	}

	// The service and key: from a model path, else from the wording.
	if m := modelPathRE.FindString(msg); m != "" {
		path = splitModelPath(m, src)
		// "services.web: can't ..." repeats what Service and Key say.
		if rest, ok := strings.CutPrefix(msg, m+": "); ok {
			msg = rest
		}
	}
	if m := additionalRE.FindStringSubmatch(msg); m != nil {
		path = append(path, m[1])
		msg = notAKey
	}
	if strings.HasSuffix(msg, " false schema") && len(path) > 0 {
		msg = notAKey
	}
	if len(path) < 2 || path[0] != "services" {
		if m := serviceRE.FindStringSubmatch(msg); m != nil {
			path = []string{"services", m[1]}
			msg = strings.TrimPrefix(msg, m[0]+" ")
		}
	}
	if len(path) == 2 && path[0] == "services" {
		for _, kw := range keyWords {
			if kw.re.MatchString(msg) {
				path = append(path, kw.key)
				break
			}
		}
	}

	// A line for the key, else for a value the message names.
	if len(path) > 0 && out.Line == 0 {
		if file, line, ok := locateIn(src, out.File, path); ok {
			out.File, out.Line = file, line
		}
	}
	if len(path) == 0 && out.Line == 0 {
		if h, ok := findNamedValue(src, msg); ok {
			out.File, out.Line, path = h.file, h.line, h.path
		}
	}

	switch {
	case len(path) >= 2 && path[0] == "services":
		out.Service = path[1]
		if len(path) >= 3 {
			out.Key = strings.Join(trimIndexes(path[2:]), ".")
		}
	case len(path) > 0:
		out.Key = strings.Join(trimIndexes(path), ".")
	}

	for i, f := range files {
		msg = strings.ReplaceAll(msg, f, displays[i])
	}
	out.Message = msg
	if out.File == "" && len(displays) > 0 {
		out.File = displays[0]
	}
	return out
}

// nonFinite reports whether a scalar reads as NaN or an infinity, in
// YAML (.nan, -.inf) or to strconv.ParseFloat (NaN, Inf), as compose-go
// casts interpolated strings.
func nonFinite(v string) bool {
	switch strings.ToLower(strings.TrimLeft(v, "+-")) {
	case ".nan", "nan", ".inf", "inf", "infinity":
		return true
	}
	return false
}

func trimIndexes(p []string) []string {
	var out []string
	for _, s := range p {
		if s == "[]" || strings.Trim(s, "0123456789") == "" {
			break
		}
		out = append(out, s)
	}
	return out
}

// findNamedValue looks in the source for a value that the message names:
// a file path that did not open, or the text after its last colon.
func findNamedValue(src sources, msg string) (scalarHit, bool) {
	for _, m := range absPathRE.FindAllStringSubmatch(msg, -1) {
		abs := m[1]
		h, ok := src.findScalar(func(v string) bool {
			v = strings.TrimPrefix(v, "./")
			return v != "" && (v == abs || strings.HasSuffix(abs, "/"+v))
		})
		if ok {
			return h, true
		}
	}
	i := strings.LastIndex(msg, ": ")
	if i < 0 {
		return scalarHit{}, false
	}
	tail := strings.Trim(msg[i+2:], `"' `)
	if len(tail) < 2 || strings.ContainsAny(tail, " \n") {
		return scalarHit{}, false
	}
	return src.findScalar(func(v string) bool { return strings.Contains(v, tail) })
}

// locateIn looks for path in the file named (when it holds it), else in all.
func locateIn(src sources, file string, path []string) (string, int, bool) {
	if file != "" {
		for _, f := range src {
			if f.name == file {
				if fn, l, ok := (sources{f}).locate(path...); ok {
					return fn, l, true
				}
			}
		}
	}
	return src.locate(path...)
}

// splitModelPath splits a dotted path into its keys. Service (and network,
// volume...) names may hold dots, so the second element is matched against
// the names written in the files.
func splitModelPath(p string, src sources) []string {
	parts := strings.Split(p, ".")
	if len(parts) < 2 {
		return parts
	}
	top := parts[0]
	rest := strings.Join(parts[1:], ".")
	best := ""
	for _, name := range src.keys(top) {
		if (rest == name || strings.HasPrefix(rest, name+".")) && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return parts
	}
	out := []string{top, best}
	if tail := strings.TrimPrefix(rest, best); tail != "" {
		out = append(out, strings.Split(strings.TrimPrefix(tail, "."), ".")...)
	}
	return out
}

func displayName(path string, files, displays []string) string {
	for i, f := range files {
		if f == path {
			return displays[i]
		}
	}
	return path
}
