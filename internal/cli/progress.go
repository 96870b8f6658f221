package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// uploadProgress counts the bytes of an upload as the HTTP client reads
// them and shows them: redrawn in place on a terminal, a single line at
// the end otherwise (logs and CI get no carriage returns).
type uploadProgress struct {
	r     io.Reader
	total int64 // -1 if unknown (standard input)
	out   io.Writer
	tty   bool
	start time.Time

	mu   sync.Mutex
	n    int64
	last time.Time
}

func newUploadProgress(r io.Reader, total int64, out io.Writer, tty bool) *uploadProgress {
	return &uploadProgress{r: r, total: total, out: out, tty: tty, start: time.Now()}
}

func (p *uploadProgress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	p.n += int64(n)
	if p.tty && time.Since(p.last) >= 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.out, "\rSent %s", p.amount())
	}
	p.mu.Unlock()
	return n, err
}

func (p *uploadProgress) amount() string {
	if p.total >= 0 {
		return fmt.Sprintf("%s / %s", humanBytes(p.n), humanBytes(p.total))
	}
	return humanBytes(p.n)
}

// finish prints the final count, on the progress line of a terminal.
func (p *uploadProgress) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	took := time.Since(p.start).Round(100 * time.Millisecond)
	prefix := ""
	if p.tty {
		prefix = "\r"
	}
	if ok {
		fmt.Fprintf(p.out, "%sSent %s in %s\n", prefix, p.amount(), took)
	} else if p.tty {
		fmt.Fprintln(p.out)
	}
}

// isTerminal says whether w is a terminal (not a pipe, file or buffer).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
