package logs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

func TestStreamFrom(t *testing.T) {
	exact := strings.Repeat("e", MaxLineSize)
	long := strings.Repeat("0123456789", 4000) // 40000 bytes: 16384 + 16384 + 7232
	// A multi-byte character straddling the split point stays whole.
	straddle := strings.Repeat("a", MaxLineSize-1) + "é" + "tail"
	input := "first\n\nwindows\r\n" + exact + "\n" + long + "\n" + straddle + "\nno newline at end"

	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(input),
		"one byte": iotest.OneByteReader(strings.NewReader(input)),
		"halves":   iotest.HalfReader(strings.NewReader(input)),
	} {
		t.Run(name, func(t *testing.T) {
			w, path := newTestWriter(t, WriterOptions{MaxFiles: 10})
			if err := w.StreamFrom(Stderr, r); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, path, ReadOptions{Tail: -1})
			want := []string{
				"first", "", "windows\r", exact,
				long[:MaxLineSize], long[MaxLineSize : 2*MaxLineSize], long[2*MaxLineSize:],
				strings.Repeat("a", MaxLineSize-1), "é" + "tail",
				"no newline at end",
			}
			equalLines(t, lines(got), want)
			for _, e := range got {
				if e.Stream != Stderr {
					t.Fatalf("stream %q", e.Stream)
				}
				if !utf8.ValidString(e.Line) {
					t.Fatalf("invalid UTF-8 in %q", e.Line[:20])
				}
			}
		})
	}
}

func TestStreamFromKeepsReadingAfterWriteErrors(t *testing.T) {
	w, _ := newTestWriter(t, WriterOptions{})
	w.Close()
	r := strings.NewReader(strings.Repeat("line\n", 1000))
	err := w.StreamFrom(Stdout, r)
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("err %v, want ErrClosed", err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left unread", r.Len())
	}
}

func TestStreamFromReadError(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{})
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("a\npartial"), iotest.ErrReader(boom))
	if err := w.StreamFrom(Stdout, r); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	equalLines(t, lines(readAll(t, path, ReadOptions{Tail: -1})), []string{"a", "partial"})
}

func TestRuneCut(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
	}{
		{[]byte("abc"), 3},
		{[]byte("ab\xc3"), 2},         // first byte of é
		{[]byte("ab\xe2\x82"), 2},     // two of €'s three
		{[]byte("ab\xe2\x82\xac"), 5}, // whole €
		{[]byte("\xc3"), 1},           // nothing before it: cut anyway
		{[]byte("ab\x80\x80\x80\x80"), 6},
		{bytes.Repeat([]byte{0xff}, 4), 4},
	} {
		if got := runeCut(tc.in); got != tc.want {
			t.Errorf("runeCut(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
