package santest

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// ownerOnly accepts loopback TCP connections only from sockets of this
// process's user (their owner in /proc/net/tcp): the control port must be
// reachable by the guests' QEMU, which user networking connects from the
// host's loopback, and by no other local user, who could fence a host.
type ownerOnly struct{ net.Listener }

func (l ownerOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := tcpOwner(c.RemoteAddr().(*net.TCPAddr), c.LocalAddr().(*net.TCPAddr))
		if err == nil && uid == os.Geteuid() {
			return c, nil
		}
		_ = c.Close()
	}
}

// tcpOwner returns the uid owning the IPv4 socket bound to local and
// connected to remote.
func tcpOwner(local, remote *net.TCPAddr) (int, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	want := procAddr(local) + " " + procAddr(remote)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) >= 8 && fs[1]+" "+fs[2] == want {
			return strconv.Atoi(fs[7])
		}
	}
	return 0, fmt.Errorf("santest: no socket %s in /proc/net/tcp", want)
}

// procAddr formats a as /proc/net/tcp does: the IPv4 address as a
// little-endian word, the port big-endian, both in hex.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		return ""
	}
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], a.Port)
}
