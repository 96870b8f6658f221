package logs

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeEntry feeds arbitrary lines to the decoder, which reads files
// that a crashed writer or a full disk may have left in any state. It must
// never panic, and whatever it accepts must survive a round trip.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []string{
		`{"t":"2025-03-01T12:00:00.123456789Z","s":"stdout","l":"hello"}` + "\n",
		`{"t":"2025-03-01T12:00:00+02:00","s":"stderr","l":"a\nb\u0000\"<>"}`,
		`{"t":"2025-03-01T12:00:00Z","s":"stdout"`,
		`{"t":"x","s":"stdout","l":"y"}`,
		`{"t":"2025-03-01T12:00:00Z","s":"stdin","l":"y"}`,
		`{"t":"2025-03-01T12:00:00Z","s":"stdout","l":"y","extra":[1,2]}`,
		`[]`, `null`, "", "\n", "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := decodeEntry(b)
		if !ok {
			return
		}
		if e.Stream != Stdout && e.Stream != Stderr {
			t.Fatalf("accepted stream %q", e.Stream)
		}
		var buf bytes.Buffer
		if err := encodeEntry(&buf, e.Stream, []byte(e.Line), e.Time); err != nil {
			t.Fatal(err)
		}
		if bytes.Count(buf.Bytes(), []byte{'\n'}) != 1 {
			t.Fatalf("encoded entry %q is not one line", buf.Bytes())
		}
		e2, ok := decodeEntry(buf.Bytes())
		if !ok || e2.Stream != e.Stream || e2.Line != e.Line || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", b, e, buf.Bytes(), e2, ok)
		}
	})
}

// FuzzEncodeEntry checks that any output line is stored as one line of the
// file and read back as written (invalid UTF-8 being replaced by U+FFFD).
func FuzzEncodeEntry(f *testing.F) {
	f.Add([]byte("hello"), int64(0), true)
	f.Add([]byte("a\r\n\x00\xff<&>\u2028"), int64(1<<62), false)
	f.Fuzz(func(t *testing.T, line []byte, nanos int64, stdout bool) {
		stream := Stderr
		if stdout {
			stream = Stdout
		}
		tm := time.Unix(0, nanos)
		var buf bytes.Buffer
		if err := encodeEntry(&buf, stream, line, tm); err != nil {
			t.Fatal(err)
		}
		if i := bytes.IndexByte(buf.Bytes(), '\n'); i != buf.Len()-1 {
			t.Fatalf("entry %q has a newline at %d", buf.Bytes(), i)
		}
		e, ok := decodeEntry(buf.Bytes())
		if !ok {
			t.Fatalf("cannot decode %q", buf.Bytes())
		}
		if e.Stream != stream || !e.Time.Equal(tm) {
			t.Fatalf("round trip: %+v, want %s at %v", e, stream, tm)
		}
		if utf8.Valid(line) && e.Line != string(line) {
			t.Fatalf("round trip: line %q, want %q", e.Line, line)
		}
		if !utf8.ValidString(e.Line) {
			t.Fatalf("decoded line %q is not UTF-8", e.Line)
		}
	})
}
