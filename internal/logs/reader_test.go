package logs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadTailAcrossRotatedFiles(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{MaxSize: 512, MaxFiles: 100})
	writeNumbered(t, w, 0, 300)
	if _, err := os.Stat(fileName(path, 10)); err != nil {
		t.Fatalf("want many rotated files: %v", err)
	}
	for _, tc := range []struct {
		tail int
		want []string
	}{
		{-1, numbered(0, 300)},
		{-7, numbered(0, 300)},
		{0, nil},
		{1, numbered(299, 300)},
		{25, numbered(275, 300)}, // spans several files
		{299, numbered(1, 300)},
		{300, numbered(0, 300)},
		{100000, numbered(0, 300)},
	} {
		t.Run(fmt.Sprint(tc.tail), func(t *testing.T) {
			equalLines(t, lines(readAll(t, path, ReadOptions{Tail: tc.tail})), tc.want)
		})
	}
}

func TestReadSinceUntil(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{MaxSize: 512, MaxFiles: 100})
	writeNumbered(t, w, 0, 100) // line i at t0 + i s
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for _, tc := range []struct {
		name string
		opts ReadOptions
		want []string
	}{
		{"since", ReadOptions{Tail: -1, Since: at(90)}, numbered(90, 100)},
		{"since between", ReadOptions{Tail: -1, Since: at(90).Add(-time.Millisecond)}, numbered(90, 100)},
		{"until", ReadOptions{Tail: -1, Until: at(9)}, numbered(0, 10)},
		{"both", ReadOptions{Tail: -1, Since: at(40), Until: at(59)}, numbered(40, 60)},
		{"both with tail", ReadOptions{Tail: 5, Since: at(40), Until: at(59)}, numbered(55, 60)},
		{"since after all", ReadOptions{Tail: -1, Since: at(1000)}, nil},
		{"follow until past", ReadOptions{Tail: -1, Follow: true, Until: at(3)}, numbered(0, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equalLines(t, lines(readAll(t, path, tc.opts)), tc.want)
		})
	}
}

func TestReadMissingLog(t *testing.T) {
	if got := readAll(t, filepath.Join(t.TempDir(), "nope.log"), ReadOptions{Tail: -1}); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

func TestReadSkipsCorruptLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	entry := func(l string) string {
		return fmt.Sprintf(`{"t":"2025-03-01T12:00:00Z","s":"stdout","l":%q}`+"\n", l)
	}
	rotated := entry("one") + "garbage\n" + `{"t":"2025-03-01T12:00:00Z","s":"stdout"` // crashed mid-entry
	current := "\n" + entry("two") +
		`{"t":"not a time","s":"stdout","l":"x"}` + "\n" +
		`{"t":"2025-03-01T12:00:00Z","s":"stdin","l":"x"}` + "\n" +
		"\x00\x00\x00\n" +
		strings.Repeat("z", 3*maxEntryBytes) + "\n" +
		entry("three") +
		`{"t":"2025-03-01T12:00:00Z","s":"stdout","l":"unfinished`
	os.WriteFile(fileName(path, 1), []byte(rotated), 0o640)
	os.WriteFile(path, []byte(current), 0o640)
	equalLines(t, lines(readAll(t, path, ReadOptions{Tail: -1})), []string{"one", "two", "three"})
}

// follower reads path in the background, counting what it has received.
type follower struct {
	cancel   context.CancelFunc
	out      chan Entry
	errc     chan error
	got      []string
	received atomic.Int64
	done     chan struct{}
}

func follow(t *testing.T, path string, opts ReadOptions) *follower {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	f := &follower{cancel: cancel, out: make(chan Entry), errc: make(chan error, 1), done: make(chan struct{})}
	opts.Follow = true
	go func() { f.errc <- Read(ctx, path, opts, f.out) }()
	go func() {
		defer close(f.done)
		for {
			select {
			case e := <-f.out:
				f.got = append(f.got, e.Line)
				f.received.Add(1)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(cancel)
	return f
}

// waitFor polls until the follower has n entries.
func (f *follower) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f.received.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("follower has %d entries after 30s, want %d", f.received.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// stop cancels the follower and returns what it got; Read must return nil.
func (f *follower) stop(t *testing.T) []string {
	t.Helper()
	f.cancel()
	<-f.done
	select {
	case err := <-f.errc:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
	return f.got
}

// The follower keeps up with a writer that rotates every ~14 lines and keeps
// only three files; the writer stays at most a few lines ahead, so no file is
// deleted before the follower has finished it, and every line must arrive
// exactly once, in order.
func TestFollowAcrossRotationsLosesAndRepeatsNothing(t *testing.T) {
	const n, window = 10000, 8
	w, path := newTestWriter(t, WriterOptions{MaxSize: 1024, MaxFiles: 3})
	writeNumbered(t, w, 0, 50) // history, partly rotated away already
	f := follow(t, path, ReadOptions{Tail: 10, pollEvery: time.Millisecond})
	f.waitFor(t, 10)

	errc := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(50 * time.Second)
		for i := 50; i < n; i++ {
			for int64(i-50+10)-f.received.Load() > window {
				if time.Now().After(deadline) {
					errc <- fmt.Errorf("follower stuck at %d entries", f.received.Load())
					return
				}
				time.Sleep(50 * time.Microsecond)
			}
			if err := w.Write(Stdout, []byte(fmt.Sprintf("line %05d", i)), time.Now()); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, n-40)
	time.Sleep(20 * time.Millisecond) // nothing more may arrive
	equalLines(t, f.stop(t), numbered(40, n))
}

// Without pacing, against a writer that rotates often but deletes nothing,
// the follower still sees every line exactly once.
func TestFollowFastWriter(t *testing.T) {
	const n = 10000
	w, path := newTestWriter(t, WriterOptions{MaxSize: 4096, MaxFiles: 1000})
	f := follow(t, path, ReadOptions{Tail: -1, pollEvery: 2 * time.Millisecond})
	writeNumbered(t, w, 0, n)
	f.waitFor(t, n)
	time.Sleep(20 * time.Millisecond)
	equalLines(t, f.stop(t), numbered(0, n))
}

func TestFollowTailZeroSendsOnlyNewLines(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{})
	writeNumbered(t, w, 0, 5)
	f := follow(t, path, ReadOptions{Tail: 0, pollEvery: time.Millisecond})
	time.Sleep(20 * time.Millisecond) // let it reach the end of the file
	writeNumbered(t, w, 5, 8)
	f.waitFor(t, 3)
	equalLines(t, f.stop(t), numbered(5, 8))
}

func TestFollowWaitsForLogAndSurvivesMaxFilesOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "late", "out.log")
	f := follow(t, path, ReadOptions{Tail: -1, pollEvery: time.Millisecond})
	time.Sleep(10 * time.Millisecond)
	w, err := NewWriter(path, WriterOptions{MaxSize: 200, MaxFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 30; i++ {
		writeNumbered(t, w, i, i+1)
		f.waitFor(t, i+1)
	}
	equalLines(t, f.stop(t), numbered(0, 30))
}

func TestFollowPartialEntryIsCompletedLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	full := `{"t":"2025-03-01T12:00:00Z","s":"stdout","l":"slow writer"}` + "\n"
	os.WriteFile(path, []byte(full[:20]), 0o640)
	f := follow(t, path, ReadOptions{Tail: -1, pollEvery: time.Millisecond})
	time.Sleep(20 * time.Millisecond)
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString(full[20:])
	fh.Close()
	f.waitFor(t, 1)
	equalLines(t, f.stop(t), []string{"slow writer"})
}

func TestFollowStopsAfterUntil(t *testing.T) {
	w, path := newTestWriter(t, WriterOptions{})
	until := time.Now().Add(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make(chan Entry, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(ctx, path, ReadOptions{Follow: true, Tail: -1, Until: until, pollEvery: time.Millisecond}, out)
	}()
	w.Write(Stdout, []byte("in time"), time.Now())
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("follower did not stop after Until")
	}
	if len(out) != 1 {
		t.Fatalf("%d entries, want 1", len(out))
	}
}
