package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

// benchTB lets a main program use the integration harness, which takes a
// testing.TB. The embedded (nil) testing.TB only supplies the interface's
// unexported method; every method the harness calls is implemented here.
// Fatal and Skip end the benchmark by panicking with fatalError, which main
// recovers before it runs the cleanups.
type benchTB struct {
	testing.TB
	log      *slog.Logger
	cleanups []func()
	failed   bool
	// keep makes Failed report true, so the harness keeps the server's
	// data dir and log.
	keep bool
}

type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }

func (t *benchTB) Helper()                           {}
func (t *benchTB) Name() string                      { return "parity" }
func (t *benchTB) Log(args ...any)                   { t.log.Info(fmt.Sprint(args...)) }
func (t *benchTB) Logf(format string, args ...any)   { t.log.Info(fmt.Sprintf(format, args...)) }
func (t *benchTB) Error(args ...any)                 { t.failed = true; t.Log(args...) }
func (t *benchTB) Errorf(format string, args ...any) { t.failed = true; t.Logf(format, args...) }
func (t *benchTB) Fail()                             { t.failed = true }
func (t *benchTB) Failed() bool                      { return t.failed || t.keep }
func (t *benchTB) FailNow()                          { t.fatal("FailNow") }
func (t *benchTB) Fatal(args ...any)                 { t.fatal(fmt.Sprint(args...)) }
func (t *benchTB) Fatalf(format string, args ...any) { t.fatal(fmt.Sprintf(format, args...)) }
func (t *benchTB) Skip(args ...any)                  { t.fatal("skip: " + fmt.Sprint(args...)) }
func (t *benchTB) Skipf(format string, args ...any)  { t.fatal("skip: " + fmt.Sprintf(format, args...)) }
func (t *benchTB) SkipNow()                          { t.fatal("skip") }
func (t *benchTB) Skipped() bool                     { return false }
func (t *benchTB) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) Setenv(key, value string)          { _ = os.Setenv(key, value) }
func (t *benchTB) fatal(msg string)                  { t.failed = true; panic(fatalError{msg}) }

// TempDir makes a directory that the cleanups remove.
func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "parity-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// runCleanups runs the registered cleanups, last first, each to the end
// even if one of them fails or panics.
func (t *benchTB) runCleanups() {
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
