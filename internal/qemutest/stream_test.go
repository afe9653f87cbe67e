package qemutest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedEcho is an echo server whose echo can be held (a guest stopped
// for a migration's downtime) or garbled.
type gatedEcho struct {
	ln      net.Listener
	mu      sync.Mutex
	hold    chan struct{} // non-nil: echoing waits until it closes
	garble  bool
	stopped sync.WaitGroup
}

func newGatedEcho(t *testing.T) *gatedEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedEcho{ln: ln}
	g.stopped.Add(1)
	go func() {
		defer g.stopped.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			g.mu.Lock()
			hold, garble := g.hold, g.garble
			g.mu.Unlock()
			if hold != nil {
				<-hold
			}
			if garble {
				buf[0] ^= 0xff
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); g.stopped.Wait() })
	return g
}

// A held echo shows as the window's stall, the bytes keep counting, the
// connection stays; a byte changed on the way back ends the stream with an
// error naming the record.
func TestStreamStallAndCheck(t *testing.T) {
	g := newGatedEcho(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := DialStream(ctx, g.ln.Addr().String(), 2*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(100 * time.Millisecond)
	s.Mark()
	time.Sleep(50 * time.Millisecond)
	hold := make(chan struct{})
	g.mu.Lock()
	g.hold = hold
	g.mu.Unlock()
	time.Sleep(400 * time.Millisecond)
	g.mu.Lock()
	g.hold = nil
	g.mu.Unlock()
	close(hold)
	if err := s.WaitEchoed(ctx, s.Echoed()); err != nil {
		t.Fatal(err)
	}
	echoed, stall, err := s.Window()
	if err != nil {
		t.Fatal(err)
	}
	if stall < 350*time.Millisecond || stall > 2*time.Second {
		t.Fatalf("stall %v, want about the 400 ms the echo was held", stall)
	}
	if echoed < StreamRecord {
		t.Fatalf("%d bytes echoed in the window", echoed)
	}
	// A fresh window sees no stall of that size.
	s.Mark()
	time.Sleep(100 * time.Millisecond)
	if _, stall, _ := s.Window(); stall > 250*time.Millisecond {
		t.Fatalf("stall %v in a window with a steady echo", stall)
	}
	g.mu.Lock()
	g.garble = true
	g.mu.Unlock()
	err = s.WaitEchoed(ctx, s.Echoed()+1<<20)
	if err == nil || !strings.Contains(err.Error(), "echoed record") {
		t.Fatalf("a garbled echo: %v", err)
	}
	if _, _, werr := s.Window(); werr == nil {
		t.Fatal("Window reports no error after a garbled echo")
	}
}
