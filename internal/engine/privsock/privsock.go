// Package privsock creates unix sockets only their owner can reach: bound
// in a directory of mode 0700 owned by this process's user, the socket
// itself 0600 whatever the umask, and every accepted connection's peer
// checked with SO_PEERCRED (defence in depth: a peer of another user is
// closed at once).
package privsock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// maxPath is the longest unix socket path (sun_path holds 108 bytes with
// its NUL).
const maxPath = 107

// Dir creates dir (and its parents) and makes it private: a directory,
// not a symlink, owned by this process's user, mode 0700. A directory
// owned by another user is an error: it could see or replace the sockets.
func Dir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory (a socket directory must be a private directory)", dir)
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not this process's uid %d: refusing to put sockets there", dir, uid, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Path is dir/name when it fits in a unix socket address, else a name
// derived from it in this user's private directory under the system's
// temporary directory (Fallback).
func Path(dir, name string) string {
	p := filepath.Join(dir, name)
	if len(p) <= maxPath {
		return p
	}
	sum := sha256.Sum256([]byte(p))
	return filepath.Join(Fallback(), hex.EncodeToString(sum[:8])+filepath.Ext(name))
}

// Fallback is this user's private socket directory under the system's
// temporary directory (Dir makes it so before use).
func Fallback() string {
	return filepath.Join(os.TempDir(), "kayo-sock-"+strconv.Itoa(os.Geteuid()))
}

// Cred is a peer's credentials.
type Cred struct{ PID, UID, GID int }

// ErrForeignPeer: the peer of a connection runs as another user.
var ErrForeignPeer = errors.New("privsock: peer runs as another user")

// Listener accepts only peers of this process's user.
type Listener struct {
	*net.UnixListener
	path string
	// Refused, when set, is told of each refused peer.
	Refused func(Cred, error)
}

// Listen makes path's directory private (Dir), removes a stale socket and
// listens at path with mode 0600.
func Listen(path string) (*Listener, error) {
	if len(path) > maxPath {
		return nil, fmt.Errorf("privsock: %s: a unix socket path holds at most %d bytes", path, maxPath)
	}
	if err := Dir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Bound with the umask's mode, but in a 0700 directory nobody else
	// can enter: 0600 before anyone else could reach it.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &Listener{UnixListener: ln, path: path}, nil
}

// Path is where the socket is.
func (l *Listener) Path() string { return l.path }

// Accept returns the next connection of a peer of this process's user;
// others are closed (and reported to Refused).
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		cred, err := Check(c)
		if err == nil {
			return c, nil
		}
		_ = c.Close()
		if l.Refused != nil {
			l.Refused(cred, err)
		}
	}
}

// Check returns c's peer credentials, and ErrForeignPeer when the peer
// is not of this process's user (where the system tells: Linux).
func Check(c *net.UnixConn) (Cred, error) {
	cred, ok, err := PeerCred(c)
	if err != nil {
		return cred, err
	}
	if ok && cred.UID != os.Geteuid() {
		return cred, fmt.Errorf("%w: pid %d uid %d (want uid %d)", ErrForeignPeer, cred.PID, cred.UID, os.Geteuid())
	}
	return cred, nil
}
