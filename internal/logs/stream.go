package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// MaxLineSize is the longest line stored as one entry; longer output lines
// are split into entries of at most this many bytes (cut between UTF-8
// characters where possible).
const MaxLineSize = 16 << 10

// StreamFrom reads lines from r until EOF and writes each as an entry of
// stream, timestamped when it is read. A last line without a newline is
// written too.
//
// A failed Write does not stop the reading: r is usually a container's
// output pipe, and a container blocks once its pipe is full, so a full disk
// must cost log lines, not stall the container. StreamFrom returns the first
// write error, or the read error, once r is done.
func (w *Writer) StreamFrom(stream string, r io.Reader) error {
	var (
		buf        = make([]byte, 2*MaxLineSize)
		start, end int
		writeErr   error
		readErr    error
	)
	emit := func(line []byte) {
		if err := w.Write(stream, line, time.Now()); err != nil && writeErr == nil {
			writeErr = err
		}
	}
	for {
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			n := i // length of the line, or of what we have of it
			if i < 0 {
				n = end - start
			}
			// A line of exactly MaxLineSize bytes waits for its newline, so it
			// is not followed by a spurious empty entry.
			if n > MaxLineSize {
				cut := runeCut(buf[start : start+MaxLineSize])
				emit(buf[start : start+cut])
				start += cut
				continue
			}
			if i < 0 {
				break
			}
			emit(buf[start : start+i])
			start += i + 1
		}
		if start > 0 {
			end = copy(buf, buf[start:end])
			start = 0
		}
		if readErr != nil {
			if end > 0 {
				emit(buf[:end])
			}
			if errors.Is(readErr, io.EOF) {
				readErr = nil
			} else {
				readErr = fmt.Errorf("reading %s: %w", stream, readErr)
			}
			return errors.Join(readErr, writeErr)
		}
		// end <= MaxLineSize here, so there is always room to read into.
		var n int
		n, readErr = r.Read(buf[end:])
		end += n
	}
}

// runeCut returns where to cut b so as not to split a UTF-8 character that
// is complete in the input: before a trailing incomplete character, if any.
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
