// Package santest is a SAN double for tests: it serves one image file to
// several hosts over NBD (the protocol QEMU's nbd block driver speaks),
// one export name per host, and fences a host at the storage on request,
// as a SAN preempting a host's SCSI-3 persistent reservation does: every
// write of a fenced host that reaches the SAN afterwards is refused.
//
// A frozen host (its QEMU stopped) can hold a write it issued before the
// freeze, inside its kernel or its QEMU, and send it after it resumes,
// when another host has taken over its leases. No check inside the frozen
// host can stop that write; the SAN can (kayofs.DiskLeaseOptions.FenceHost).
//
// Control (HTTP on its own loopback port): POST /fence?host=NAME.
package santest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
)

// Server is a running SAN double.
type Server struct {
	f    *os.File
	size int64
	nbd  net.Listener
	ctl  net.Listener
	http *http.Server

	// io is held shared by each write between its fence check and its
	// pwrite, and exclusively by Fence: once Fence returns, no write of
	// the host is under way and none will land.
	io      sync.RWMutex
	mu      sync.Mutex
	fenced  map[string]bool
	refused map[string]int
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Start serves image (an existing file) on two loopback ports.
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
	s := &Server{f: f, size: st.Size(), fenced: map[string]bool{}, refused: map[string]int{}, conns: map[net.Conn]struct{}{}}
	if s.nbd, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		f.Close()
		return nil, err
	}
	if s.ctl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = s.nbd.Close()
		f.Close()
		return nil, err
	}
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
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.http.Serve(s.ctl) }()
	go func() { defer s.wg.Done(); s.accept() }()
	return s, nil
}

// NBDPort and ControlPort are the loopback ports (a QEMU guest on user
// networking reaches the control port at 10.0.2.2).
func (s *Server) NBDPort() int     { return s.nbd.Addr().(*net.TCPAddr).Port }
func (s *Server) ControlPort() int { return s.ctl.Addr().(*net.TCPAddr).Port }

// Fence refuses every later write of host (its export name).
func (s *Server) Fence(host string) {
	s.io.Lock()
	defer s.io.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fenced[host] = true
}

// Fenced lists whether host is fenced and how many of its writes were
// refused.
func (s *Server) Fenced(host string) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fenced[host], s.refused[host]
}

// Close stops serving and closes the image.
func (s *Server) Close() error {
	_ = s.http.Close()
	_ = s.nbd.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.f.Close()
}

func (s *Server) accept() {
	for {
		c, err := s.nbd.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.serve(c)
			_ = c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// The NBD protocol (fixed newstyle handshake, simple replies), as in
// the protocol document of the NBD project.
const (
	nbdMagic       = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic       = 0x49484156454f5054 // "IHAVEOPT"
	optReplyMagic  = 0x3e889045565a9
	reqMagic       = 0x25609513
	simpleReply    = 0x67446698
	flagFixedNew   = 1
	flagNoZeroes   = 2
	optExportName  = 1
	optAbort       = 2
	optGo          = 7
	optInfo        = 6
	repAck         = 1
	repInfo        = 3
	repErrUnsup    = 1<<31 + 1
	infoExport     = 0
	txHasFlags     = 1
	txSendFlush    = 4
	txSendFUA      = 8
	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	errIO          = 5
	errInval       = 22
	maxRequestSize = 32 << 20
)

var be = binary.BigEndian

func (s *Server) serve(c net.Conn) error {
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	hdr := make([]byte, 18)
	be.PutUint64(hdr, nbdMagic)
	be.PutUint64(hdr[8:], optMagic)
	be.PutUint16(hdr[16:], flagFixedNew|flagNoZeroes)
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var cflags [4]byte
	if _, err := io.ReadFull(r, cflags[:]); err != nil {
		return err
	}
	noZeroes := be.Uint32(cflags[:])&flagNoZeroes != 0
	host, err := s.haggle(r, w, noZeroes)
	if err != nil {
		return err
	}
	return s.transmit(host, r, w)
}

// haggle answers options until the client picks an export; it returns
// the export's name, the host's identity.
func (s *Server) haggle(r *bufio.Reader, w *bufio.Writer, noZeroes bool) (string, error) {
	txFlags := uint16(txHasFlags | txSendFlush | txSendFUA)
	for {
		var oh [16]byte
		if _, err := io.ReadFull(r, oh[:]); err != nil {
			return "", err
		}
		if be.Uint64(oh[:]) != optMagic {
			return "", errors.New("santest: bad option magic")
		}
		opt, n := be.Uint32(oh[8:]), be.Uint32(oh[12:])
		if n > 4096 {
			return "", fmt.Errorf("santest: option %d of %d bytes", opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return "", err
		}
		switch opt {
		case optExportName:
			b := make([]byte, 10, 134)
			be.PutUint64(b, uint64(s.size))
			be.PutUint16(b[8:], txFlags)
			if !noZeroes {
				b = b[:134]
			}
			if _, err := w.Write(b); err != nil {
				return "", err
			}
			return string(data), w.Flush()
		case optGo, optInfo:
			if n < 6 || 4+int(be.Uint32(data)) > int(n) {
				return "", errors.New("santest: short NBD_OPT_GO")
			}
			name := string(data[4 : 4+be.Uint32(data)])
			info := make([]byte, 12)
			be.PutUint16(info, infoExport)
			be.PutUint64(info[2:], uint64(s.size))
			be.PutUint16(info[10:], txFlags)
			if err := optReply(w, opt, repInfo, info); err != nil {
				return "", err
			}
			if err := optReply(w, opt, repAck, nil); err != nil {
				return "", err
			}
			if opt == optGo {
				return name, nil
			}
		case optAbort:
			_ = optReply(w, opt, repAck, nil)
			return "", io.EOF
		default:
			if err := optReply(w, opt, repErrUnsup, nil); err != nil {
				return "", err
			}
		}
	}
}

func optReply(w *bufio.Writer, opt, typ uint32, data []byte) error {
	b := make([]byte, 20, 20+len(data))
	be.PutUint64(b, optReplyMagic)
	be.PutUint32(b[8:], opt)
	be.PutUint32(b[12:], typ)
	be.PutUint32(b[16:], uint32(len(data)))
	if _, err := w.Write(append(b, data...)); err != nil {
		return err
	}
	return w.Flush()
}

// transmit serves requests one at a time (QEMU accepts replies in any
// order; one at a time is simply in order).
func (s *Server) transmit(host string, r *bufio.Reader, w *bufio.Writer) error {
	var rq [28]byte
	buf := make([]byte, 0, 1<<20)
	for {
		if _, err := io.ReadFull(r, rq[:]); err != nil {
			return err
		}
		if be.Uint32(rq[:]) != reqMagic {
			return errors.New("santest: bad request magic")
		}
		typ, handle := be.Uint16(rq[6:]), rq[8:16]
		off, n := int64(be.Uint64(rq[16:])), int64(be.Uint32(rq[24:]))
		var code uint32
		var data []byte
		bad := n > maxRequestSize || off < 0 || off+n > s.size
		if n <= maxRequestSize && int(n) > cap(buf) {
			buf = make([]byte, n)
		}
		switch typ {
		case cmdRead:
			if bad {
				code = errInval
				break
			}
			data = buf[:n]
			if _, err := s.f.ReadAt(data, off); err != nil {
				code, data = errIO, nil
			}
		case cmdWrite:
			if n > maxRequestSize {
				return fmt.Errorf("santest: %s wrote %d bytes in one request", host, n)
			}
			p := buf[:n]
			if _, err := io.ReadFull(r, p); err != nil {
				return err
			}
			if bad {
				code = errInval
				break
			}
			code = s.write(host, p, off)
		case cmdFlush:
			if err := s.f.Sync(); err != nil {
				code = errIO
			}
		case cmdDisc:
			return nil
		default:
			code = errInval
		}
		var rp [16]byte
		be.PutUint32(rp[:], simpleReply)
		be.PutUint32(rp[4:], code)
		copy(rp[8:], handle)
		if _, err := w.Write(rp[:]); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// write lands p unless host is fenced.
func (s *Server) write(host string, p []byte, off int64) uint32 {
	s.io.RLock()
	defer s.io.RUnlock()
	s.mu.Lock()
	fenced := s.fenced[host]
	if fenced {
		s.refused[host]++
	}
	s.mu.Unlock()
	if fenced {
		return errIO
	}
	if _, err := s.f.WriteAt(p, off); err != nil {
		return errIO
	}
	return 0
}
