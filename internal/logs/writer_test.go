package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestWriter(t *testing.T, opts WriterOptions) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctr", "output.log")
	w, err := NewWriter(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

func writeNumbered(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Write(Stdout, []byte(fmt.Sprintf("line %05d", i)), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads every entry of path without following.
func readAll(t *testing.T, path string, opts ReadOptions) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Entry)
	errc := make(chan error, 1)
	go func() { errc <- Read(ctx, path, opts, out) }()
	var got []Entry
	for {
		select {
		case e := <-out:
			got = append(got, e)
		case err := <-errc:
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			return got
		}
	}
}

func lines(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Line
	}
	return out
}

func numbered(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %05d", i))
	}
	return out
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d\nfirst got: %q\nfirst want: %q", len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func head(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func TestRotationKeepsMaxFilesAndBoundsSize(t *testing.T) {
	for _, maxFiles := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(maxFiles), func(t *testing.T) {
			const maxSize = 1024
			w, path := newTestWriter(t, WriterOptions{MaxSize: maxSize, MaxFiles: maxFiles})
			writeNumbered(t, w, 0, 2000)

			for i := 0; i < maxFiles; i++ {
				st, err := os.Stat(fileName(path, i))
				if err != nil {
					t.Fatalf("file %d: %v", i, err)
				}
				if st.Size() > maxSize {
					t.Errorf("%s is %d bytes, over MaxSize %d", fileName(path, i), st.Size(), maxSize)
				}
				if i > 0 && st.Size() < maxSize/2 {
					t.Errorf("rotated %s is only %d bytes", fileName(path, i), st.Size())
				}
			}
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != maxFiles {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("files %v, want %d", names, maxFiles)
			}
			// What is kept is the newest output, contiguous.
			got := lines(readAll(t, path, ReadOptions{Tail: -1}))
			if len(got) == 0 {
				t.Fatal("no entries kept")
			}
			var first int
			fmt.Sscanf(got[0], "line %d", &first)
			equalLines(t, got, numbered(first, 2000))
		})
	}
}

func TestDefaults(t *testing.T) {
	w, _ := newTestWriter(t, WriterOptions{})
	if w.opts.MaxSize != 10<<20 || w.opts.MaxFiles != 3 {
		t.Fatalf("defaults: %+v", w.opts)
	}
	if _, err := NewWriter(filepath.Join(t.TempDir(), "x"), WriterOptions{MaxFiles: -1}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("negative MaxFiles: %v", err)
	}
}

func TestOversizedEntryGetsFileOfItsOwn(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{MaxSize: 100, MaxFiles: 10})
	writeNumbered(t, w, 0, 1)
	long := strings.Repeat("x", 500)
	if err := w.Write(Stderr, []byte(long), t0); err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 1, 2)
	got := lines(readAll(t, path, ReadOptions{Tail: -1}))
	equalLines(t, got, []string{"line 00000", long, "line 00001"})
	if _, err := os.Stat(fileName(path, 2)); err != nil {
		t.Fatalf("want three files: %v", err)
	}
}

func TestWriteValidatesAndTrimsNewline(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{})
	if err := w.Write("stdin", []byte("x"), t0); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("stream stdin: %v", err)
	}
	if err := w.Write(Stderr, []byte("a\nb <&>\n"), t0); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, path, ReadOptions{Tail: -1})
	if len(got) != 1 || got[0].Line != "a\nb <&>" || got[0].Stream != Stderr || !got[0].Time.Equal(t0) {
		t.Fatalf("got %+v", got)
	}
	raw, _ := os.ReadFile(path)
	if want := `{"t":"2025-03-01T12:00:00Z","s":"stderr","l":"a\nb <&>"}` + "\n"; string(raw) != want {
		t.Fatalf("on disk %q, want %q", raw, want)
	}
}

func TestWriteAfterClose(t *testing.T) {
	w, _ := newTestWriter(t, WriterOptions{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Stdout, []byte("x"), t0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestReopenEndsPartialEntryAndDropsExtraFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	good := `{"t":"2025-03-01T12:00:00Z","s":"stdout","l":"before crash"}` + "\n"
	if err := os.WriteFile(path, []byte(good+`{"t":"2025-03-01T12:00:01Z","s":"std`), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 4} {
		os.WriteFile(fileName(path, n), nil, 0o640)
	}
	os.WriteFile(path+".other", nil, 0o640)
	w, err := NewWriter(path, WriterOptions{MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(Stdout, []byte("after restart"), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	equalLines(t, lines(readAll(t, path, ReadOptions{Tail: -1})), []string{"before crash", "after restart"})
	for n, want := range map[int]bool{1: true, 2: true, 3: false, 4: false} {
		if _, err := os.Stat(fileName(path, n)); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", fileName(path, n), err == nil, want)
		}
	}
	if _, err := os.Stat(path + ".other"); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
}

func TestConcurrentWriteFromStdoutAndStderr(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{MaxSize: 4096, MaxFiles: 1000})
	const n = 2000
	var wg sync.WaitGroup
	for _, stream := range []string{Stdout, Stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := w.Write(stream, []byte(fmt.Sprintf("%s %d", stream, i)), time.Now()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := readAll(t, path, ReadOptions{Tail: -1})
	next := map[string]int{}
	for _, e := range got {
		if want := fmt.Sprintf("%s %d", e.Stream, next[e.Stream]); e.Line != want {
			t.Fatalf("got %q, want %q", e.Line, want)
		}
		next[e.Stream]++
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Fatalf("counts %v, want %d each", next, n)
	}
}

func TestOptionsBesideRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "container.log")
	if got := OptionsBeside(path); got != (WriterOptions{}) {
		t.Fatalf("no file: %+v, want defaults", got)
	}
	want := WriterOptions{MaxSize: 1 << 20, MaxFiles: 5}
	if err := WriteOptionsBeside(path, want); err != nil {
		t.Fatal(err)
	}
	if got := OptionsBeside(path); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
