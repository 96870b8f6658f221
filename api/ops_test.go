package api

import (
	"bytes"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		kind byte
		p    string
	}{{FrameStdout, "hello"}, {FrameStdin, ""}, {FrameExit, "3"}} {
		if err := WriteFrame(&b, f.kind, []byte(f.p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"hello", "", "3"} {
		_, p, err := ReadFrame(&b)
		if err != nil || string(p) != want {
			t.Fatalf("got %q %v, want %q", p, err, want)
		}
	}
	if _, _, err := ReadFrame(&b); err == nil {
		t.Fatal("read past the end")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, 'h', 'i'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			if _, _, err := ReadFrame(r); err != nil {
				return
			}
		}
	})
}
