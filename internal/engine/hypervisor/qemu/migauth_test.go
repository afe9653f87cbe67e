package qemu

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestMigrationAuth: a target's listener hands over only the peer that
// proves the cluster's key for this migration. A silent peer that
// connected first, a peer with another key, one proving another
// migration and a plain-text stream are all refused, and do not delay
// the real source (handshakes run in parallel).
func TestMigrationAuth(t *testing.T) {
	key, other := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	ln, err := ListenMigration("127.0.0.1", key, "HVCLUSTER/WEB01/7")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 8)
	ln.Refused = func(_ string, err error) { refused <- err }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		n   int
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		f, err := ln.Accept(ctx)
		if err != nil {
			accepted <- result{err: err}
			return
		}
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			accepted <- result{err: err}
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		n, err := c.Read(b)
		if string(b[:n]) != "QEVM!" {
			err = errors.New("read " + strconv.Quote(string(b[:n])))
		}
		accepted <- result{n, err}
	}()
	addr := "127.0.0.1:" + strconv.Itoa(ln.Port())
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = plain.Write(append([]byte("QEVM\x00\x00\x00\x03"), make([]byte, 64)...))
	_ = plain.Close()
	if _, err := DialMigration(ctx, "127.0.0.1", ln.Port(), other, "HVCLUSTER/WEB01/7"); !errors.Is(err, ErrMigrationAuth) {
		t.Fatalf("another cluster's key: %v", err)
	}
	if _, err := DialMigration(ctx, "127.0.0.1", ln.Port(), key, "HVCLUSTER/WEB01/6"); !errors.Is(err, ErrMigrationAuth) {
		t.Fatalf("another migration: %v", err)
	}
	t0 := time.Now()
	f, err := DialMigration(ctx, "127.0.0.1", ln.Port(), key, "HVCLUSTER/WEB01/7")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > HandshakeTimeout/2 {
		t.Fatalf("the source waited %s behind the silent peer", d)
	}
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("QEVM!")); err != nil {
		t.Fatal(err)
	}
	if r := <-accepted; r.err != nil {
		t.Fatalf("target: %v", r.err)
	}
	for i := 0; i < 3; i++ { // plain text, wrong key, wrong migration
		if err := <-refused; !errors.Is(err, ErrMigrationAuth) {
			t.Fatalf("refused: %v", err)
		}
	}
	// The listener is gone once the source is in.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatal("the target still listens after its source connected")
	}
}

// TestMigrationAcceptEndsWithContext: a target no source reaches stops
// listening when its request's context ends.
func TestMigrationAcceptEndsWithContext(t *testing.T) {
	ln, err := ListenMigration("127.0.0.1", bytes.Repeat([]byte{1}, 32), "x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := ln.Accept(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("Accept returned after %s", d)
	}
}
