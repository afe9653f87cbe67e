package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// StreamRecord is the size of one record of a Stream.
const StreamRecord = 256

// Stream is a TCP connection to a guest's echo port (guest/init serves
// port 7 with cat) carrying numbered records of StreamRecord bytes at a
// steady pace. Its reader checks that the echo is exactly what was sent,
// in order, and keeps the bytes echoed and the longest time without an
// echoed byte since Mark: what a client of the guest sees of a live
// migration. It never reconnects: an error ends it (Window reports it).
type Stream struct {
	conn  net.Conn
	every time.Duration
	stop  chan struct{}
	wg    sync.WaitGroup

	mu        sync.Mutex
	sent      int64
	echoed    int64
	lastAt    time.Time // the last echoed byte
	markAt    time.Time
	markBytes int64
	worst     time.Duration // the longest gap since markAt
	err       error
	closed    bool
}

// DialStream connects to addr (host:port), retrying until ctx ends (the
// guest may still be taking its address), starts the stream with one
// record every every, and returns once the first record came back.
func DialStream(ctx context.Context, addr string, every time.Duration) (*Stream, error) {
	var conn net.Conn
	for conn == nil {
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the guest's echo port %s: %w", addr, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	now := time.Now()
	s := &Stream{conn: conn, every: every, stop: make(chan struct{}), lastAt: now, markAt: now}
	s.wg.Add(2)
	go s.write()
	go s.read()
	if err := s.WaitEchoed(ctx, 0); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// record is record number seq: its number, padded, a newline.
func record(seq int64) []byte {
	b := fmt.Appendf(make([]byte, 0, StreamRecord), "kayo-stream %012d ", seq)
	b = append(b, bytes.Repeat([]byte{'.'}, StreamRecord-1-len(b))...)
	return append(b, '\n')
}

func (s *Stream) write() {
	defer s.wg.Done()
	t := time.NewTicker(s.every)
	defer t.Stop()
	for seq := int64(0); ; seq++ {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if _, err := s.conn.Write(record(seq)); err != nil {
			s.fail(fmt.Errorf("writing record %d: %w", seq, err))
			return
		}
		s.mu.Lock()
		s.sent += StreamRecord
		s.mu.Unlock()
	}
}

func (s *Stream) read() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	var pending []byte
	var seq int64
	for {
		n, err := s.conn.Read(buf)
		if n > 0 {
			now := time.Now()
			s.mu.Lock()
			s.worst = max(s.worst, now.Sub(later(s.lastAt, s.markAt)))
			s.lastAt = now
			s.echoed += int64(n)
			s.mu.Unlock()
			pending = append(pending, buf[:n]...)
			for len(pending) >= StreamRecord {
				if want := record(seq); !bytes.Equal(pending[:StreamRecord], want) {
					s.fail(fmt.Errorf("echoed record %d is %q, want %q", seq, pending[:StreamRecord], want))
					return
				}
				pending, seq = pending[StreamRecord:], seq+1
			}
		}
		if err != nil {
			s.fail(fmt.Errorf("reading the echo after record %d: %w", seq, err))
			return
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fail records the first error, unless Close ended the stream.
func (s *Stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && !s.closed {
		s.err = err
	}
}

// Mark starts a window: bytes and the longest stall count from now.
func (s *Stream) Mark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markAt, s.markBytes, s.worst = time.Now(), s.echoed, 0
}

// Echoed is the number of bytes echoed so far.
func (s *Stream) Echoed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoed
}

// Window is what the stream saw since Mark: bytes echoed, the longest
// time without an echoed byte (the gap still open counted up to now),
// and the error that ended the connection, if one did.
func (s *Stream) Window() (echoed int64, stall time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.echoed - s.markBytes, max(s.worst, time.Since(later(s.lastAt, s.markAt))), s.err
}

// WaitEchoed waits until more than n bytes were echoed in all; an error
// when the connection ended or ctx did first.
func (s *Stream) WaitEchoed(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		echoed, err := s.echoed, s.err
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if echoed > n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream to %s: %d bytes echoed, waiting for more than %d: %w", s.conn.RemoteAddr(), echoed, n, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Close ends the stream; again, it does nothing.
func (s *Stream) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	_ = s.conn.Close()
	s.wg.Wait()
}
