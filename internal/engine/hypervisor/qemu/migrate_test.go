package qemu

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWritePSK: under umask 000 the key file is 0600 in a 0700
// directory, in QEMU's "user:hexkey" form, and a changed key replaces it.
func TestWritePSK(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0))
	dir := filepath.Join(t.TempDir(), "tls", "HVCLUSTER")
	for _, key := range [][]byte{bytes.Repeat([]byte{0xab}, 16), bytes.Repeat([]byte{0xcd}, 16)} {
		tls, err := WritePSK(dir, "kayo", key)
		if err != nil {
			t.Fatal(err)
		}
		if tls.Dir != dir || tls.User != "kayo" {
			t.Fatalf("TLS %+v", tls)
		}
		b, err := os.ReadFile(filepath.Join(dir, PSKFile))
		want := "kayo:" + string(bytes.Repeat([]byte{"0123456789abcdef"[key[0]>>4], "0123456789abcdef"[key[0]&15]}, 16)) + "\n"
		if err != nil || string(b) != want {
			t.Fatalf("keys.psk = %q %v, want %q", b, err, want)
		}
		for p, m := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, PSKFile): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != m {
				t.Fatalf("%s: %v %v, want %o", p, fi.Mode(), err, m)
			}
		}
	}
	if _, err := WritePSK(dir, "kayo", []byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}
