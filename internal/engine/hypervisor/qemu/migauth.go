package qemu

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// A live migration's TCP connection is authenticated by the node agents
// before QEMU sees it: QEMU 7.2 runs the TLS handshake of an incoming
// migration on a blocking socket in its main loop, so a local user who
// connects first and stays silent would freeze the target (and the
// source waiting on it). The target's agent listens on the migration
// address, runs a challenge-response with every connection in parallel,
// each bounded by HandshakeTimeout, and hands only the first peer that
// proves the cluster's key for this migration to QEMU (getfd); the
// source's agent dials, proves it, and hands its socket to its QEMU.
// QEMU then runs TLS with the pre-shared key over it: the stream is
// encrypted, and the peers authenticate again.

// HandshakeTimeout bounds each connection's authentication.
const HandshakeTimeout = 5 * time.Second

const migMagic = "KAYO-MIGRATION-1"

// ErrMigrationAuth: a peer did not prove the cluster's key.
var ErrMigrationAuth = errors.New("qemu: migration peer failed authentication")

// DeriveKey derives the key for one use (purpose) from a cluster key.
func DeriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func migMAC(key []byte, side, id string, ns, nc []byte) []byte {
	m := hmac.New(sha256.New, DeriveKey(key, "kayo migration auth"))
	for _, p := range [][]byte{[]byte(side), []byte(id), ns, nc} {
		m.Write([]byte(strconv.Itoa(len(p)) + ":"))
		m.Write(p)
	}
	return m.Sum(nil)
}

// MigrationListener is a target's listener for one migration.
type MigrationListener struct {
	ln  *net.TCPListener
	key []byte
	id  string
	// Refused, when set, is told of each peer that failed.
	Refused func(addr string, err error)
}

// ListenMigration listens on addr (an IP address; the system picks the
// port) for the migration named id.
func ListenMigration(addr string, key []byte, id string) (*MigrationListener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return nil, fmt.Errorf("qemu: listening for a migration on %s: %w", addr, err)
	}
	return &MigrationListener{ln: ln.(*net.TCPListener), key: key, id: id}, nil
}

// Port is the listening port.
func (l *MigrationListener) Port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// Close stops listening.
func (l *MigrationListener) Close() error { return l.ln.Close() }

// Accept returns the socket of the first peer that authenticates (as a
// blocking descriptor, for QEMU), until ctx ends; the listener is closed
// then.
func (l *MigrationListener) Accept(ctx context.Context) (*os.File, error) {
	defer func() { _ = l.ln.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = l.ln.Close() })
	defer stop()
	won := make(chan *net.TCPConn)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				if err := l.serverHandshake(ctx, c); err != nil {
					_ = c.Close()
					if l.Refused != nil {
						l.Refused(c.RemoteAddr().String(), err)
					}
					return
				}
				select {
				case won <- c:
				case <-done:
					_ = c.Close()
				}
			}()
		}
	}()
	select {
	case c := <-won:
		return handOver(c)
	case <-ctx.Done():
		return nil, fmt.Errorf("qemu: waiting for migration %s: %w", l.id, ctx.Err())
	}
}

func (l *MigrationListener) serverHandshake(ctx context.Context, c *net.TCPConn) error {
	setDeadline(ctx, c)
	ns := make([]byte, 32)
	if _, err := rand.Read(ns); err != nil {
		return err
	}
	if _, err := c.Write(append([]byte(migMagic), ns...)); err != nil {
		return err
	}
	msg := make([]byte, 32+sha256.Size)
	if _, err := io.ReadFull(c, msg); err != nil {
		return fmt.Errorf("%w: %v", ErrMigrationAuth, err)
	}
	nc, mac := msg[:32], msg[32:]
	if !hmac.Equal(mac, migMAC(l.key, "source", l.id, ns, nc)) {
		return ErrMigrationAuth
	}
	if _, err := c.Write(migMAC(l.key, "target", l.id, ns, nc)); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// DialMigration connects to a target listening at addr:port for the
// migration named id, authenticates both ways, and returns the socket
// (as a blocking descriptor, for QEMU).
func DialMigration(ctx context.Context, addr string, port int, key []byte, id string) (*os.File, error) {
	var d net.Dialer
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	nc0, err := d.DialContext(hctx, "tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("qemu: connecting to the migration target: %w", err)
	}
	c := nc0.(*net.TCPConn)
	if err := clientHandshake(hctx, c, key, id); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("qemu: migration target %s:%d: %w", addr, port, err)
	}
	return handOver(c)
}

func clientHandshake(ctx context.Context, c *net.TCPConn, key []byte, id string) error {
	setDeadline(ctx, c)
	hello := make([]byte, len(migMagic)+32)
	if _, err := io.ReadFull(c, hello); err != nil {
		return err
	}
	if string(hello[:len(migMagic)]) != migMagic {
		return fmt.Errorf("%w: not a Kayo migration target", ErrMigrationAuth)
	}
	ns := hello[len(migMagic):]
	nc := make([]byte, 32)
	if _, err := rand.Read(nc); err != nil {
		return err
	}
	if _, err := c.Write(append(nc, migMAC(key, "source", id, ns, nc)...)); err != nil {
		return err
	}
	mac := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, mac); err != nil {
		return fmt.Errorf("%w: the target refused: %v", ErrMigrationAuth, err)
	}
	if !hmac.Equal(mac, migMAC(key, "target", id, ns, nc)) {
		return fmt.Errorf("%w: the target does not hold the cluster's key", ErrMigrationAuth)
	}
	return c.SetDeadline(time.Time{})
}

func setDeadline(ctx context.Context, c net.Conn) {
	dl := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.SetDeadline(dl)
}

// handOver returns c's socket as a blocking descriptor (QEMU's
// migration channels expect one, as its own accept gives: Fd sets it)
// and closes c.
func handOver(c *net.TCPConn) (*os.File, error) {
	defer func() { _ = c.Close() }()
	f, err := c.File()
	if err != nil {
		return nil, err
	}
	f.Fd()
	return f, nil
}
