package compose

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
)

// Warning is a Compose setting that Drover ignores or honours only in part.
// File and Line locate the key when it was found in the source files; Key
// is a dotted path below the service (or below the file's top level when
// Service is empty), such as "healthcheck" or "deploy.resources".
type Warning struct {
	File    string
	Line    int
	Service string
	Key     string
	Message string
}

// String renders the warning as
// `compose.yaml:12: service "web": key "healthcheck" is not supported yet and is ignored`.
func (w Warning) String() string {
	var b strings.Builder
	writeLocation(&b, w.File, w.Line, w.Service)
	if w.Key != "" {
		fmt.Fprintf(&b, "key %q ", w.Key)
	}
	b.WriteString(w.Message)
	return b.String()
}

// Error is a Compose file that Drover refuses: invalid YAML, a schema
// violation, a bad interpolation, a reference to something undefined, or a
// service Drover cannot run. It matches api.ErrInvalid under errors.Is.
type Error struct {
	File    string
	Line    int
	Service string
	Key     string
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	writeLocation(&b, e.File, e.Line, e.Service)
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap makes every Compose error an api.ErrInvalid: the file, not the
// server, is at fault.
func (e *Error) Unwrap() error { return api.ErrInvalid }

func writeLocation(b *strings.Builder, file string, line int, service string) {
	if file != "" {
		b.WriteString(file)
		if line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(line))
		}
		b.WriteString(": ")
	}
	if service != "" {
		fmt.Fprintf(b, "service %q: ", service)
	}
}

// notSupported is the message of a warning for a key Drover ignores.
const notSupported = "is not supported yet and is ignored"
