package logs

import (
	"bytes"
	"encoding/json"
	"time"
)

// Entry is one line of a container's output.
type Entry struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Line   string // without its trailing newline
}

// Stream names.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// record is an Entry as it is stored on disk, one JSON object a line.
type record struct {
	T string `json:"t"`
	S string `json:"s"`
	L string `json:"l"`
}

// encodeEntry appends the on-disk form of an entry, newline included, to dst.
// Invalid UTF-8 in line is stored as U+FFFD, as encoding/json does.
func encodeEntry(dst *bytes.Buffer, stream string, line []byte, t time.Time) error {
	enc := json.NewEncoder(dst)
	// Container output is not HTML; keep <, > and & readable in the files.
	enc.SetEscapeHTML(false)
	// Encode appends the newline that terminates the entry.
	return enc.Encode(record{T: t.UTC().Format(time.RFC3339Nano), S: stream, L: string(line)})
}

// decodeEntry parses one line of a log file, with or without its newline. It
// reports false for anything that is not a complete, valid entry.
func decodeEntry(b []byte) (Entry, bool) {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	if len(b) == 0 || b[0] != '{' {
		return Entry{}, false
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Entry{}, false
	}
	if r.S != Stdout && r.S != Stderr {
		return Entry{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, r.T)
	if err != nil {
		return Entry{}, false
	}
	return Entry{Time: t, Stream: r.S, Line: r.L}, true
}
