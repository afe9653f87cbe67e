// Package santest is a SAN double for tests: one image file served to
// several hosts over NBD, one export per host, by the node agent's NBD
// server (qemu.Server, internal/engine/hypervisor/qemu/nbd.go), and a
// host fenced at the storage on request, as a SAN preempting a host's
// SCSI-3 persistent reservation does: once fenced, none of its writes
// lands (its connections drop and it cannot connect again).
//
// A frozen host (its QEMU stopped) can hold a write it issued before the
// freeze, inside its kernel or its QEMU, and send it after it resumes,
// when another host has taken over its leases. No check inside the frozen
// host can stop that write; the SAN can (kayofs.DiskLeaseOptions.FenceHost).
//
// Control (HTTP on a loopback port, which a QEMU guest on user networking
// reaches at 10.0.2.2, open to this user's processes only): POST
// /fence?host=NAME.
package santest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
)

// Server is a running SAN double.
type Server struct {
	disk *imageDisk
	dir  string
	nbd  *qemu.Server
	ctl  net.Listener
	http *http.Server
	mu   sync.Mutex // export creation
	wg   sync.WaitGroup
}

// imageDisk is the shared image as every export's disk.
type imageDisk struct {
	*os.File
	size int64
}

func (d *imageDisk) Size() int64  { return d.size }
func (d *imageDisk) Flush() error { return d.Sync() }

// Start serves image (an existing file): NBD on a private unix socket,
// the control on a loopback port.
func Start(image string) (*Server, error) {
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	// a short directory of its own: a unix socket path holds 108 bytes
	dir, err := os.MkdirTemp("", "santest")
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &Server{disk: &imageDisk{File: f, size: st.Size()}, dir: dir}
	if s.nbd, err = qemu.ListenNBD(filepath.Join(dir, "nbd.sock")); err != nil {
		s.cleanup()
		return nil, err
	}
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = s.nbd.Close()
		s.cleanup()
		return nil, err
	}
	s.ctl = ownerOnly{ctl}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fence", func(w http.ResponseWriter, r *http.Request) {
		h := r.URL.Query().Get("host")
		if h == "" {
			http.Error(w, "fence: want ?host=NAME", http.StatusBadRequest)
			return
		}
		s.Fence(h)
		_, _ = fmt.Fprintf(w, "fenced %s\n", h)
	})
	s.http = &http.Server{Handler: mux}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.http.Serve(s.ctl) }()
	return s, nil
}

func (s *Server) cleanup() {
	_ = s.disk.Close()
	_ = os.RemoveAll(s.dir)
}

// export returns host's export, published on first use.
func (s *Server) export(host string) *qemu.Export {
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := s.nbd.Get(host); x != nil {
		return x
	}
	return s.nbd.Add(host, s.disk)
}

// DriveFile is host's export as QEMU's -drive file= (an nbd+unix URL).
func (s *Server) DriveFile(host string) string {
	s.export(host)
	return s.nbd.URL(host)
}

// ControlPort is the loopback port of the control.
func (s *Server) ControlPort() int { return s.ctl.Addr().(*net.TCPAddr).Port }

// Fence cuts host off: once it returns, no write of host is under way
// and none will land.
func (s *Server) Fence(host string) { s.export(host).Fence() }

// Fenced reports whether host is fenced, and how many of its writes were
// refused on connections it held when it was fenced.
func (s *Server) Fenced(host string) (bool, int64) {
	x := s.export(host)
	return x.Fenced(), x.Refused.Load()
}

// Close stops serving and closes the image.
func (s *Server) Close() error {
	_ = s.http.Close()
	err := s.nbd.Close()
	s.wg.Wait()
	s.cleanup()
	return err
}
