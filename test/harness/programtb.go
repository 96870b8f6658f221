package harness

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

// ProgramTB lets a main program (a benchmark) use the harness, which takes
// a testing.TB. The embedded (nil) testing.TB only supplies the interface's
// unexported method; every method the harness calls is implemented here.
// Fatal and Skip end the benchmark by panicking with FatalError, which main
// recovers before it runs the cleanups.
type ProgramTB struct {
	testing.TB
	name     string
	log      *slog.Logger
	cleanups []func()
	failed   bool
	// keep makes Failed report true, so the harness keeps the server's
	// data dir and log.
	keep bool
}

// FatalError is what Fatal and Skip panic with.
type FatalError struct{ msg string }

func (e FatalError) Error() string { return e.msg }

// NewProgramTB makes a TB for the program called name; keep makes the
// harness keep the server's data dir and log.
func NewProgramTB(name string, log *slog.Logger, keep bool) *ProgramTB {
	return &ProgramTB{name: name, log: log, keep: keep}
}

func (t *ProgramTB) Helper()                           {}
func (t *ProgramTB) Name() string                      { return t.name }
func (t *ProgramTB) Log(args ...any)                   { t.log.Info(fmt.Sprint(args...)) }
func (t *ProgramTB) Logf(format string, args ...any)   { t.log.Info(fmt.Sprintf(format, args...)) }
func (t *ProgramTB) Error(args ...any)                 { t.failed = true; t.Log(args...) }
func (t *ProgramTB) Errorf(format string, args ...any) { t.failed = true; t.Logf(format, args...) }
func (t *ProgramTB) Fail()                             { t.failed = true }
func (t *ProgramTB) Failed() bool                      { return t.failed || t.keep }
func (t *ProgramTB) FailNow()                          { t.fatal("FailNow") }
func (t *ProgramTB) Fatal(args ...any)                 { t.fatal(fmt.Sprint(args...)) }
func (t *ProgramTB) Fatalf(format string, args ...any) { t.fatal(fmt.Sprintf(format, args...)) }
func (t *ProgramTB) Skip(args ...any)                  { t.fatal("skip: " + fmt.Sprint(args...)) }
func (t *ProgramTB) Skipf(format string, args ...any) {
	t.fatal("skip: " + fmt.Sprintf(format, args...))
}
func (t *ProgramTB) SkipNow()                 { t.fatal("skip") }
func (t *ProgramTB) Skipped() bool            { return false }
func (t *ProgramTB) Cleanup(f func())         { t.cleanups = append(t.cleanups, f) }
func (t *ProgramTB) Setenv(key, value string) { _ = os.Setenv(key, value) }
func (t *ProgramTB) fatal(msg string)         { t.failed = true; panic(FatalError{msg}) }

// TempDir makes a directory that the cleanups remove.
func (t *ProgramTB) TempDir() string {
	dir, err := os.MkdirTemp("", t.name+"-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// RunCleanups runs the registered cleanups, last first, each to the end
// even if one of them fails or panics.
func (t *ProgramTB) RunCleanups() {
	for len(t.cleanups) > 0 {
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.failed = true
					t.log.Error("cleanup failed", "err", r, "stack", string(debug.Stack()))
				}
			}()
			f()
		}()
	}
}
