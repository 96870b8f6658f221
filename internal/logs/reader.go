package logs

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"time"
)

// ReadOptions select the entries Read sends.
type ReadOptions struct {
	// Follow keeps sending entries as they are written, until the context
	// is done (or Until has passed).
	Follow bool
	// Tail is how many of the newest existing entries (those that match
	// Since and Until) to send: -1, or any negative number, sends all of
	// them; 0 sends none, which with Follow means only new output. Note
	// that the zero ReadOptions therefore sends nothing.
	Tail int
	// Since, if set, drops entries older than it.
	Since time.Time
	// Until, if set, drops entries newer than it; a follower stops at the
	// first entry after Until, or once Until has passed and it has caught up.
	Until time.Time

	// pollEvery is how often a follower checks for new output; 0 means
	// defaultPoll. Tests shorten it.
	pollEvery time.Duration
}

const (
	defaultPoll = 150 * time.Millisecond
	// maxEntryBytes bounds the memory held for one line of a file. The
	// writer's entries are far smaller (MaxLineSize of text, escaped);
	// longer lines are corrupt and skipped.
	maxEntryBytes = 1 << 20
	// snapshotTries bounds how long Read waits for a rotation in progress to
	// finish, at snapshotRetry each.
	snapshotTries = 200
	snapshotRetry = 5 * time.Millisecond
)

// Read sends the entries of the log at path on out: first the existing ones,
// across rotated files and oldest first, as selected by opts, then, if
// opts.Follow, new ones as they are written, following rotations without
// losing or repeating entries. It returns nil when the context is done, when
// the existing entries have been sent (without Follow), or when a follower
// passes opts.Until; it never closes out. A log that does not exist has no
// entries; a follower waits for it to appear. Lines that are not valid
// entries are skipped.
func Read(ctx context.Context, path string, opts ReadOptions, out chan<- Entry) error {
	r := &reader{ctx: ctx, path: path, opts: opts, out: out}
	if r.opts.pollEvery <= 0 {
		r.opts.pollEvery = defaultPoll
	}
	defer r.closeCurrent()
	return r.run()
}

// reader is the state of one Read.
type reader struct {
	ctx  context.Context
	path string
	opts ReadOptions
	out  chan<- Entry

	cur     *os.File // newest file reached; nil before the log exists
	curInfo os.FileInfo
	lr      *lineReader
}

// errStop ends a Read early without an error: context done or Until passed.
var errStop = errors.New("stop")

func (r *reader) run() error {
	files, err := r.snapshot()
	for len(files) == 0 && err == nil && r.opts.Follow {
		if !r.sleep() {
			return nil
		}
		files, err = r.snapshot()
	}
	if err != nil || len(files) == 0 {
		return nil
	}
	if err := r.sendExisting(files); err != nil {
		return stopIsNil(err)
	}
	if !r.opts.Follow {
		return nil
	}
	return stopIsNil(r.follow())
}

func stopIsNil(err error) error {
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// sendExisting sends the entries in files (oldest first) that opts select,
// closing all but the newest, which becomes the current file.
func (r *reader) sendExisting(files []*os.File) error {
	var (
		tail []Entry // ring of the newest entries, when Tail > 0
		next int
	)
	keep := func(e Entry) error {
		if !r.inRange(e) {
			return nil
		}
		switch {
		case r.opts.Tail < 0:
			return r.send(e)
		case r.opts.Tail == 0:
			return nil
		case len(tail) < r.opts.Tail:
			tail = append(tail, e)
		default:
			tail[next] = e
			next = (next + 1) % len(tail)
		}
		return nil
	}
	for i, f := range files {
		lr := newLineReader(f)
		if err := lr.each(keep); err != nil {
			closeAll(files[i:])
			return err
		}
		if i < len(files)-1 {
			f.Close()
			continue
		}
		if err := r.setCurrent(f, lr); err != nil {
			return err
		}
	}
	for i := range tail {
		if err := r.send(tail[(next+i)%len(tail)]); err != nil {
			return err
		}
	}
	return nil
}

// follow sends new entries until the context is done or Until passes.
func (r *reader) follow() error {
	emit := func(e Entry) error {
		if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
			return errStop
		}
		if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
			return nil
		}
		return r.send(e)
	}
	for {
		progressed := false
		if r.lr != nil {
			n := r.lr.consumed
			if err := r.lr.each(emit); err != nil {
				return err
			}
			progressed = r.lr.consumed != n
		}
		if r.ctx.Err() != nil {
			return errStop
		}
		if r.cur != nil {
			if st, err := os.Stat(r.path); err == nil && os.SameFile(st, r.curInfo) {
				if !progressed && !r.idle() {
					return errStop
				}
				continue
			}
		}
		// PATH is not the file we are reading: it was rotated (or removed).
		files, err := r.snapshot()
		if err != nil {
			return err
		}
		idx := -1
		for i, f := range files {
			if st, err := f.Stat(); err == nil && r.curInfo != nil && os.SameFile(st, r.curInfo) {
				idx = i
				break
			}
		}
		if idx == len(files)-1 {
			// Nothing newer yet (a rotation midway, or nothing at all).
			closeAll(files)
			if !progressed && !r.idle() {
				return errStop
			}
			continue
		}
		closeAll(files[:idx+1])
		successors := files[idx+1:]
		// The writer closes a file before renaming it, so the current file
		// is complete: finish it before moving on.
		if r.lr != nil {
			if err := r.lr.each(emit); err != nil {
				closeAll(successors)
				return err
			}
		}
		r.closeCurrent()
		for i, f := range successors {
			lr := newLineReader(f)
			if i == len(successors)-1 {
				if err := r.setCurrent(f, lr); err != nil {
					return err
				}
				break // read on the next turn
			}
			err := lr.each(emit)
			f.Close()
			if err != nil {
				closeAll(successors[i+1:])
				return err
			}
		}
	}
}

// idle waits one poll interval after catching up; false means stop.
func (r *reader) idle() bool {
	if !r.opts.Until.IsZero() && time.Now().After(r.opts.Until) {
		return false
	}
	return r.sleep()
}

func (r *reader) setCurrent(f *os.File, lr *lineReader) error {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.cur, r.curInfo, r.lr = f, st, lr
	return nil
}

func (r *reader) closeCurrent() {
	if r.cur != nil {
		r.cur.Close()
	}
	r.cur, r.lr = nil, nil // curInfo stays: it still identifies the file
}

func (r *reader) inRange(e Entry) bool {
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return false
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		return false
	}
	return true
}

func (r *reader) send(e Entry) error {
	select {
	case <-r.ctx.Done():
		return errStop
	case r.out <- e:
		return nil
	}
}

func (r *reader) sleep() bool {
	t := time.NewTimer(r.opts.pollEvery)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// snapshot opens the log's files, oldest first, as they are at one moment:
// it retries while a rotation is in progress, and after snapshotTries takes
// what it has (a writer that died midway through a rotation never finishes).
func (r *reader) snapshot() ([]*os.File, error) {
	for try := 1; ; try++ {
		files, consistent := trySnapshot(r.path)
		if consistent || try >= snapshotTries {
			return files, nil
		}
		closeAll(files)
		t := time.NewTimer(snapshotRetry)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return nil, errStop
		case <-t.C:
		}
	}
}

// trySnapshot opens PATH.n .. PATH.1, PATH and reports whether the files it
// opened are still under those names, with PATH present, once all are open.
// A rotation always renames every file, so one that happened while files
// were being opened shows up as a mismatch; and since the writer renames
// from the oldest down, a consistent set is a run of files in write order.
func trySnapshot(path string) ([]*os.File, bool) {
	rotated := rotatedNames(path)
	nums := make([]int, 0, len(rotated))
	for n := range rotated {
		nums = append(nums, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(nums)))
	names := make([]string, 0, len(nums)+1)
	for _, n := range nums {
		names = append(names, rotated[n])
	}
	names = append(names, path)

	consistent := true
	var files []*os.File
	var opened []string
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			// Gone since listed (or PATH not yet recreated): only consistent
			// if nothing exists at all.
			consistent = false
			continue
		}
		files = append(files, f)
		opened = append(opened, name)
	}
	if len(files) == 0 {
		return nil, len(rotated) == 0
	}
	for i, f := range files {
		a, err1 := f.Stat()
		b, err2 := os.Stat(opened[i])
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			consistent = false
			break
		}
	}
	return files, consistent
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// lineReader reads the entries of one file, holding back a partial last line
// until the rest of it is written.
type lineReader struct {
	br       *bufio.Reader
	pending  []byte
	skipping bool  // inside a line longer than maxEntryBytes
	consumed int64 // bytes read so far
}

func newLineReader(f *os.File) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(f, 64<<10)}
}

// each calls fn for every complete, valid entry up to the current end of the
// file, stopping early if fn returns an error.
func (lr *lineReader) each(fn func(Entry) error) error {
	for {
		line, ok := lr.next()
		if !ok {
			return nil
		}
		if e, ok := decodeEntry(line); ok {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// next returns the next complete line, valid until the following call, or
// false at the end of the data written so far.
func (lr *lineReader) next() ([]byte, bool) {
	for {
		chunk, err := lr.br.ReadSlice('\n')
		lr.consumed += int64(len(chunk))
		if err == nil {
			if lr.skipping {
				lr.skipping = false
				continue
			}
			if len(lr.pending) == 0 {
				return chunk, true
			}
			line := append(lr.pending, chunk...)
			lr.pending = lr.pending[:0]
			return line, true
		}
		if !lr.skipping {
			lr.pending = append(lr.pending, chunk...)
			if len(lr.pending) > maxEntryBytes {
				lr.pending, lr.skipping = nil, true
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != io.EOF {
			// A read error on a local file: treat it as the end of the
			// data for now; a follower retries on its next turn.
			return nil, false
		}
		return nil, false
	}
}
