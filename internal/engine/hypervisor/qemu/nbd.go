package qemu

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// A small NBD server (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md):
// fixed newstyle handshake, NBD_OPT_GO / NBD_OPT_INFO / NBD_OPT_EXPORT_NAME /
// NBD_OPT_ABORT, simple replies only (structured replies are refused, and
// QEMU falls back), commands READ, WRITE, FLUSH, DISC, plus TRIM and
// WRITE_ZEROES. Go NBD libraries are not served by the module proxy; this is
// what QEMU's NBD client needs, no more.
//
// NBD itself has no locking across processes: the node agent serving a VM's
// disk fences the export (refuses every write, then drops its connections)
// when the VM's ownership moves on, and an export opened for a token older
// than the VM's newest is refused.

const (
	nbdMagic         = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic      = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic      = 0x0003e889045565a9
	nbdReqMagic      = 0x25609513
	nbdSimpleReply   = 0x67446698
	nbdFlagFixedNew  = 1 << 0
	nbdFlagNoZeroes  = 1 << 1
	nbdCFlagNoZeroes = 1 << 1

	nbdOptExportName = 1
	nbdOptAbort      = 2
	nbdOptList       = 3
	nbdOptInfo       = 6
	nbdOptGo         = 7

	nbdRepAck         = 1
	nbdRepServer      = 2
	nbdRepInfo        = 3
	nbdRepErrUnsup    = 1<<31 + 1
	nbdRepErrUnknown  = 1<<31 + 6
	nbdInfoExport     = 0
	nbdInfoBlockSize  = 3
	nbdFlagHasFlags   = 1 << 0
	nbdFlagSendFlush  = 1 << 2
	nbdFlagSendFUA    = 1 << 3
	nbdFlagSendTrim   = 1 << 5
	nbdFlagSendWZ     = 1 << 6
	nbdCmdRead        = 0
	nbdCmdWrite       = 1
	nbdCmdDisc        = 2
	nbdCmdFlush       = 3
	nbdCmdTrim        = 4
	nbdCmdWriteZeroes = 6
	nbdCmdFlagFUA     = 1 << 0

	nbdEPERM  = 1
	nbdEIO    = 5
	nbdENOMEM = 12
	nbdEINVAL = 22
	nbdENOSPC = 28

	nbdMaxRequest = 32 << 20
)

// Disk is what an export serves: the VM's virtual disk.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Flush() error
}

// ErrExportFenced: the export was fenced; its writes are refused.
var ErrExportFenced = errors.New("nbd: export fenced (the VM's ownership moved on)")

// Export is one named disk of a Server.
type Export struct {
	Name string
	mu   sync.RWMutex
	disk Disk
	// fenced: every write is refused (EPERM), then connections drop.
	fenced bool
	conns  map[net.Conn]bool
	// Writes, Refused and Reads count requests (tests, diagnostics).
	Writes, Refused, Reads atomic.Int64
}

// SetDisk replaces what the export serves (nil: every request fails).
func (x *Export) SetDisk(d Disk) {
	x.mu.Lock()
	x.disk = d
	x.mu.Unlock()
}

// Fence refuses every further write and closes the export's connections.
func (x *Export) Fence() {
	x.mu.Lock()
	x.fenced = true
	conns := x.conns
	x.conns = nil
	x.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// Fenced reports whether the export was fenced.
func (x *Export) Fenced() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.fenced
}

// Server serves exports on one unix socket only its user reaches
// (privsock: 0600 in a 0700 directory, peers of other users refused):
// NBD has no authentication of its own, and the node agent serves only
// its own host's QEMU processes.
type Server struct {
	ln      *privsock.Listener
	mu      sync.Mutex
	exports map[string]*Export
	wg      sync.WaitGroup
	// Logf, when set, reports connection errors.
	Logf func(format string, args ...any)
}

// ListenNBD starts a server on the unix socket at path (privsock.Listen).
func ListenNBD(path string) (*Server, error) {
	ln, err := privsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("nbd: %w", err)
	}
	s := &Server{ln: ln, exports: map[string]*Export{}}
	ln.Refused = func(c privsock.Cred, err error) { s.logf("nbd: %s: connection refused: %v", path, err) }
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the server's socket.
func (s *Server) Path() string { return s.ln.Path() }

// URL is the nbd+unix URL of export name (qemu-io, qemu-img; records).
func (s *Server) URL(name string) string {
	return fmt.Sprintf("nbd+unix:///%s?socket=%s", name, s.Path())
}

// Disk is export name as QEMU's disk.
func (s *Server) Disk(name string) NBDDisk { return NBDDisk{Socket: s.Path(), Export: name} }

// Add publishes an export (replacing one of the same name, which is fenced).
func (s *Server) Add(name string, d Disk) *Export {
	x := &Export{Name: name, disk: d, conns: map[net.Conn]bool{}}
	s.mu.Lock()
	old := s.exports[name]
	s.exports[name] = x
	s.mu.Unlock()
	if old != nil {
		old.Fence()
	}
	return x
}

// Get returns the export name, or nil.
func (s *Server) Get(name string) *Export {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exports[name]
}

// Remove fences and forgets an export.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	x := s.exports[name]
	delete(s.exports, name)
	s.mu.Unlock()
	if x != nil {
		x.Fence()
	}
}

// Close stops the server and fences every export.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	xs := s.exports
	s.exports = map[string]*Export{}
	s.mu.Unlock()
	for _, x := range xs {
		x.Fence()
	}
	s.wg.Wait()
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { _ = c.Close() }()
			if err := s.handle(c); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logf("nbd: %s: %v", s.Path(), err)
			}
		}()
	}
}

type nbdConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func (n *nbdConn) u32() (uint32, error) {
	var b [4]byte
	_, err := io.ReadFull(n.r, b[:])
	return binary.BigEndian.Uint32(b[:]), err
}
func (n *nbdConn) u64() (uint64, error) {
	var b [8]byte
	_, err := io.ReadFull(n.r, b[:])
	return binary.BigEndian.Uint64(b[:]), err
}

func (n *nbdConn) optReply(opt, typ uint32, data []byte) error {
	var h [20]byte
	binary.BigEndian.PutUint64(h[0:], nbdRepMagic)
	binary.BigEndian.PutUint32(h[8:], opt)
	binary.BigEndian.PutUint32(h[12:], typ)
	binary.BigEndian.PutUint32(h[16:], uint32(len(data)))
	if _, err := n.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := n.w.Write(data); err != nil {
		return err
	}
	return n.w.Flush()
}

func transmissionFlags() uint16 {
	return nbdFlagHasFlags | nbdFlagSendFlush | nbdFlagSendFUA | nbdFlagSendTrim | nbdFlagSendWZ
}

// handshake negotiates an export; nil export with nil error: the client
// aborted.
func (s *Server) handshake(n *nbdConn) (*Export, error) {
	var hello [18]byte
	binary.BigEndian.PutUint64(hello[0:], nbdMagic)
	binary.BigEndian.PutUint64(hello[8:], nbdOptMagic)
	binary.BigEndian.PutUint16(hello[16:], nbdFlagFixedNew|nbdFlagNoZeroes)
	if _, err := n.w.Write(hello[:]); err != nil {
		return nil, err
	}
	if err := n.w.Flush(); err != nil {
		return nil, err
	}
	cflags, err := n.u32()
	if err != nil {
		return nil, err
	}
	noZeroes := cflags&nbdCFlagNoZeroes != 0
	for {
		magic, err := n.u64()
		if err != nil {
			return nil, err
		}
		if magic != nbdOptMagic {
			return nil, fmt.Errorf("bad option magic %#x", magic)
		}
		opt, err := n.u32()
		if err != nil {
			return nil, err
		}
		l, err := n.u32()
		if err != nil {
			return nil, err
		}
		if l > 1<<16 {
			return nil, fmt.Errorf("option %d: %d bytes of data is too long", opt, l)
		}
		data := make([]byte, l)
		if _, err := io.ReadFull(n.r, data); err != nil {
			return nil, err
		}
		switch opt {
		case nbdOptExportName:
			x := s.Get(string(data))
			if x == nil {
				return nil, fmt.Errorf("no export %q", data)
			}
			var b [10 + 124]byte
			binary.BigEndian.PutUint64(b[0:], uint64(x.size()))
			binary.BigEndian.PutUint16(b[8:], transmissionFlags())
			out := b[:10]
			if !noZeroes {
				out = b[:]
			}
			if _, err := n.w.Write(out); err != nil {
				return nil, err
			}
			return x, n.w.Flush()
		case nbdOptAbort:
			_ = n.optReply(opt, nbdRepAck, nil)
			return nil, nil
		case nbdOptList:
			s.mu.Lock()
			var names []string
			for name := range s.exports {
				names = append(names, name)
			}
			s.mu.Unlock()
			for _, name := range names {
				d := make([]byte, 4+len(name))
				binary.BigEndian.PutUint32(d, uint32(len(name)))
				copy(d[4:], name)
				if err := n.optReply(opt, nbdRepServer, d); err != nil {
					return nil, err
				}
			}
			if err := n.optReply(opt, nbdRepAck, nil); err != nil {
				return nil, err
			}
		case nbdOptInfo, nbdOptGo:
			if len(data) < 6 {
				return nil, fmt.Errorf("option %d: short data", opt)
			}
			nl := binary.BigEndian.Uint32(data)
			if int(nl) > len(data)-6 {
				return nil, fmt.Errorf("option %d: bad name length", opt)
			}
			x := s.Get(string(data[4 : 4+nl]))
			if x == nil {
				if err := n.optReply(opt, nbdRepErrUnknown, []byte("no such export")); err != nil {
					return nil, err
				}
				continue
			}
			var info [12]byte
			binary.BigEndian.PutUint16(info[0:], nbdInfoExport)
			binary.BigEndian.PutUint64(info[2:], uint64(x.size()))
			binary.BigEndian.PutUint16(info[10:], transmissionFlags())
			if err := n.optReply(opt, nbdRepInfo, info[:]); err != nil {
				return nil, err
			}
			var bs [14]byte
			binary.BigEndian.PutUint16(bs[0:], nbdInfoBlockSize)
			binary.BigEndian.PutUint32(bs[2:], 1)
			binary.BigEndian.PutUint32(bs[6:], 4096)
			binary.BigEndian.PutUint32(bs[10:], nbdMaxRequest)
			if err := n.optReply(opt, nbdRepInfo, bs[:]); err != nil {
				return nil, err
			}
			if err := n.optReply(opt, nbdRepAck, nil); err != nil {
				return nil, err
			}
			if opt == nbdOptGo {
				return x, nil
			}
		default:
			if err := n.optReply(opt, nbdRepErrUnsup, nil); err != nil {
				return nil, err
			}
		}
	}
}

func (x *Export) size() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.disk == nil {
		return 0
	}
	return x.disk.Size()
}

func (s *Server) handle(c net.Conn) error {
	n := &nbdConn{c: c, r: bufio.NewReaderSize(c, 256<<10), w: bufio.NewWriterSize(c, 256<<10)}
	x, err := s.handshake(n)
	if err != nil || x == nil {
		return err
	}
	x.mu.Lock()
	if x.fenced {
		x.mu.Unlock()
		return ErrExportFenced
	}
	x.conns[c] = true
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		delete(x.conns, c)
		x.mu.Unlock()
	}()
	var hdr [28]byte
	buf := make([]byte, 0, 1<<20)
	for {
		if _, err := io.ReadFull(n.r, hdr[:]); err != nil {
			return err
		}
		if m := binary.BigEndian.Uint32(hdr[0:]); m != nbdReqMagic {
			return fmt.Errorf("bad request magic %#x", m)
		}
		flags := binary.BigEndian.Uint16(hdr[4:])
		typ := binary.BigEndian.Uint16(hdr[6:])
		handle := hdr[8:16]
		off := int64(binary.BigEndian.Uint64(hdr[16:]))
		length := binary.BigEndian.Uint32(hdr[24:])
		if length > nbdMaxRequest {
			return fmt.Errorf("request of %d bytes is too large", length)
		}
		var errno uint32
		var data []byte
		switch typ {
		case nbdCmdDisc:
			return nil
		case nbdCmdRead:
			if cap(buf) < int(length) {
				buf = make([]byte, length)
			}
			data = buf[:length]
			errno = x.read(data, off)
			if errno != 0 {
				data = nil
			}
		case nbdCmdWrite:
			if cap(buf) < int(length) {
				buf = make([]byte, length)
			}
			p := buf[:length]
			if _, err := io.ReadFull(n.r, p); err != nil {
				return err
			}
			errno = x.write(p, off, flags&nbdCmdFlagFUA != 0)
		case nbdCmdWriteZeroes:
			errno = x.write(make([]byte, length), off, flags&nbdCmdFlagFUA != 0)
		case nbdCmdTrim:
			// Advisory: the blocks keep their data.
		case nbdCmdFlush:
			errno = x.flush()
		default:
			errno = nbdEINVAL
		}
		var rh [16]byte
		binary.BigEndian.PutUint32(rh[0:], nbdSimpleReply)
		binary.BigEndian.PutUint32(rh[4:], errno)
		copy(rh[8:], handle)
		if _, err := n.w.Write(rh[:]); err != nil {
			return err
		}
		if data != nil {
			if _, err := n.w.Write(data); err != nil {
				return err
			}
		}
		if n.r.Buffered() == 0 {
			if err := n.w.Flush(); err != nil {
				return err
			}
		}
	}
}

func (x *Export) read(p []byte, off int64) uint32 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.disk == nil {
		return nbdEIO
	}
	x.Reads.Add(1)
	if _, err := x.disk.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
		return nbdEIO
	}
	return 0
}

// write holds the export's read lock for the whole write, so Fence (which
// takes the write lock) returns only after in-flight writes are done and
// every later one is refused.
func (x *Export) write(p []byte, off int64, fua bool) uint32 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.fenced {
		x.Refused.Add(1)
		return nbdEPERM
	}
	d := x.disk
	if d == nil {
		return nbdEIO
	}
	if off < 0 || off+int64(len(p)) > d.Size() {
		return nbdENOSPC
	}
	x.Writes.Add(1)
	if _, err := d.WriteAt(p, off); err != nil {
		return nbdEIO
	}
	if fua {
		if err := d.Flush(); err != nil {
			return nbdEIO
		}
	}
	return 0
}

func (x *Export) flush() uint32 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.disk == nil {
		return nbdEIO
	}
	if err := x.disk.Flush(); err != nil {
		return nbdEIO
	}
	return 0
}
