package qemutest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// FileDisk serves an *os.File as an NBD disk (raw).
type FileDisk struct {
	*os.File
	Bytes int64
}

// Size implements qemu.Disk.
func (d FileDisk) Size() int64 { return d.Bytes }

// Flush implements qemu.Disk (fdatasync on Linux, as the driver's disks).
func (d FileDisk) Flush() error { return syncData(d.File) }

var counterRE = regexp.MustCompile(`KAYO-COUNTER id=(\S+) n=(\d+)`)

// Counter is the last "KAYO-COUNTER" line of a guest's serial log: its
// boot id and counter (ok false: none yet).
func Counter(serialLog string) (id string, n int, ok bool) {
	b, err := os.ReadFile(serialLog)
	if err != nil {
		return "", 0, false
	}
	m := counterRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return "", 0, false
	}
	last := m[len(m)-1]
	n, _ = strconv.Atoi(string(last[2]))
	return string(last[1]), n, true
}

// WaitCounterID waits until the serial log shows a counter of at least
// min, and returns the guest's boot id and the counter.
func WaitCounterID(ctx context.Context, serialLog string, min int) (string, int, error) {
	for {
		if id, n, ok := Counter(serialLog); ok && n >= min {
			return id, n, nil
		}
		select {
		case <-ctx.Done():
			id, n, _ := Counter(serialLog)
			return id, n, fmt.Errorf("guest counter in %s: %w (last: id=%q n=%d)", serialLog, ctx.Err(), id, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FloorResult is one raw QMP live migration driven without any cluster
// machinery: the floor the driver is measured against.
type FloorResult struct {
	MemoryMB   int64
	TotalMs    int64 // QEMU's total-time
	DowntimeMs int64 // QEMU's downtime
	// WallMs: the whole move, from launching the target to the target
	// running (cont returned) and the source gone; what the driver's
	// UpdateVM is compared with.
	WallMs int64
	// LaunchMs: starting the target QEMU until its QMP answers.
	LaunchMs int64
	// ResumeMs: from QEMU's completion (seen by polling) to cont returning.
	ResumeMs int64
}

// Floor is the benchmark's floor: the test guest booted once and then
// live-migrated back and forth between two sides on loopback, the way the
// driver's agents do it, with nothing else: for each move the target QEMU
// is launched with -incoming, the source gets MigrationParams and
// `migrate`, query-migrate is polled every 5 ms, the source is frozen
// (SIGSTOP) once the target has loaded the stream, the target gets `cont`,
// and the source is killed and its exit waited for.
//
// Its disk is a sparse raw file of the VM's VHD size, served over NBD
// by the qemu package's NBD server, one server per side (as each node agent has
// its own), attached the same way (qemu.Config.Args). The documented
// difference from the driver: the driver's server reads and writes a
// dynamic VHD inside Kayo FS (vhd + kayofs), the floor's a raw file.
type Floor struct {
	g    qemu.Guest
	mem  int64
	dir  string
	file *os.File
	srv  [2]*qemu.Server
	cur  *qemu.Machine
	side int
	// Key, when set, is a cluster key: the moves run as the driver's
	// agents run them (an authenticated connection handed to QEMU, TLS
	// with a pre-shared key derived from it); else plain text.
	Key []byte
	// OnListen, when set, runs once the target listens, before the
	// source connects (tests: a local peer that connects first).
	OnListen func(port int)
	// id and n: the guest's boot id and the last counter seen before the
	// latest move (Verify checks the target continues it).
	id string
	n  int
	// net: the sides' namespaces, taps and migration addresses (nil:
	// this process's namespace, no adapter, loopback); bins: the command
	// that starts QEMU on each side.
	net  *FloorNet
	bins [2]string
}

// FloorNet puts the floor's guest on a network the way node agents put a
// VM on a switch: each side a network namespace (a netnsrig host) whose
// bridge holds the host's uplink and a tap QEMU opens by name (FloorSwitch:
// the agents' own internal/hostnet), the adapter virtio-net with one MAC
// on both sides, and the migration between the sides' addresses.
type FloorNet struct {
	MAC   string // QEMU's form, 52:54:00:..
	Sides [2]FloorSide
}

// FloorSide is one side of a FloorNet.
type FloorSide struct {
	NS      string // network namespace ("" this process's)
	Tap     string // the tap on the side's bridge
	MigAddr string // the side's address incoming migrations listen on
}

// StartFloor boots the guest with memMB on side 0 in dir, disk size
// diskBytes, and waits until its counter runs.
func StartFloor(ctx context.Context, bin string, g qemu.Guest, memMB, diskBytes int64, dir string) (*Floor, error) {
	return StartFloorNet(ctx, bin, g, memMB, diskBytes, dir, nil)
}

// StartFloorNet is StartFloor with the guest on network n (nil: none).
func StartFloorNet(ctx context.Context, bin string, g qemu.Guest, memMB, diskBytes int64, dir string, n *FloorNet) (_ *Floor, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &Floor{g: g, mem: memMB, dir: dir, net: n, bins: [2]string{bin, bin}}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	if n != nil {
		for i, s := range n.Sides {
			if f.bins[i], err = binIn(dir, s.NS, bin); err != nil {
				return nil, err
			}
		}
	}
	if f.file, err = os.OpenFile(filepath.Join(dir, "floor.raw"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if err := f.file.Truncate(diskBytes); err != nil {
		return nil, err
	}
	for i := range f.srv {
		if f.srv[i], err = qemu.ListenNBD(privsock.Path(dir, fmt.Sprintf("nbd%d.sock", i))); err != nil {
			return nil, err
		}
		f.srv[i].Add("floor", FileDisk{File: f.file, Bytes: diskBytes})
	}
	if f.cur, err = qemu.Launch(ctx, f.bins[0], f.config(0, "")); err != nil {
		return nil, err
	}
	if _, err := f.cur.QMP.Execute(ctx, "cont", nil); err != nil {
		return nil, err
	}
	if f.id, f.n, err = WaitCounterID(ctx, f.Serial(), 3); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Floor) name(side int) string { return fmt.Sprintf("floor%d-%c", f.mem, 'a'+side) }

func (f *Floor) config(side int, incoming string) qemu.Config {
	c := qemu.Config{Name: f.name(side), MemoryMB: f.mem, Processors: 1, Guest: f.g, Disk: f.srv[side].Disk("floor"), Dir: f.dir, Incoming: incoming}
	if f.net != nil {
		c.NICs = []qemu.NIC{{Tap: f.net.Sides[side].Tap, MAC: f.net.MAC}}
	}
	return c
}

// where is where side i's QEMU runs: its namespace and migration address.
func (f *Floor) where(i int) FloorSide {
	if f.net == nil {
		return FloorSide{MigAddr: "127.0.0.1"}
	}
	return f.net.Sides[i]
}

// Serial is the serial log of the side the guest runs on now.
func (f *Floor) Serial() string { return qemu.SerialPath(f.dir, f.name(f.side)) }

// Migrate moves the guest to the other side.
func (f *Floor) Migrate(ctx context.Context) (FloorResult, error) {
	res := FloorResult{MemoryMB: f.mem}
	if id, n, ok := Counter(f.Serial()); ok {
		f.id, f.n = id, n
	}
	to := 1 - f.side
	t0 := time.Now()
	dst, err := qemu.Launch(ctx, f.bins[to], f.config(to, "defer"))
	if err != nil {
		return res, err
	}
	tl := time.Now()
	if err := f.start(ctx, dst, f.where(f.side), f.where(to)); err != nil {
		dst.Kill()
		return res, err
	}
	mi, err := f.cur.QMP.WaitMigration(ctx, 5*time.Millisecond, nil)
	if err != nil {
		dst.Kill()
		return res, err
	}
	t1 := time.Now()
	// The target leaves "inmigrate" once it has loaded the state.
	for {
		st, err := dst.QMP.Status(ctx)
		if err != nil {
			dst.Kill()
			return res, err
		}
		if st != "inmigrate" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// As the driver fences: freeze the source, `cont` on the target, then
	// kill the source and wait for it to be gone.
	src := f.cur
	src.Freeze()
	f.cur, f.side = dst, to
	if _, err := dst.QMP.Execute(ctx, "cont", nil); err != nil {
		src.Kill()
		return res, err
	}
	t2 := time.Now()
	src.Kill()
	t3 := time.Now()
	res.TotalMs, res.DowntimeMs = mi.TotalTime, mi.Downtime
	res.WallMs, res.LaunchMs, res.ResumeMs = t3.Sub(t0).Milliseconds(), tl.Sub(t0).Milliseconds(), t2.Sub(t1).Milliseconds()
	return res, nil
}

// start connects the current side (in from) to dst (launched with
// "defer", in to) and starts the migration, as Migrate's doc says: the
// target listens on to's address, the source connects from its own
// namespace.
func (f *Floor) start(ctx context.Context, dst *qemu.Machine, from, to FloorSide) error {
	if f.Key == nil {
		port, err := dst.ListenIncoming(ctx, to.MigAddr)
		if err != nil {
			return err
		}
		if f.OnListen != nil {
			f.OnListen(port)
		}
		return f.cur.StartMigration(ctx, fmt.Sprintf("tcp:%s:%d", to.MigAddr, port))
	}
	tls, err := qemu.WritePSK(filepath.Join(f.dir, "tls"), "kayo", qemu.DeriveKey(f.Key, "qemu tls-psk"))
	if err != nil {
		return err
	}
	var ln *qemu.MigrationListener
	if err := InNetNS(to.NS, func() (err error) {
		ln, err = qemu.ListenMigration(to.MigAddr, f.Key, "floor")
		return err
	}); err != nil {
		return err
	}
	defer func() { _ = ln.Close() }()
	if f.OnListen != nil {
		f.OnListen(ln.Port())
	}
	accepted := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(ctx)
		if err == nil {
			err = dst.IncomingFrom(ctx, conn, &tls)
			_ = conn.Close()
		}
		accepted <- err
	}()
	var conn *os.File
	if err := InNetNS(from.NS, func() (err error) {
		conn, err = qemu.DialMigration(ctx, to.MigAddr, ln.Port(), f.Key, "floor")
		return err
	}); err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if err := <-accepted; err != nil {
		return err
	}
	return f.cur.MigrateTo(ctx, conn, &tls)
}

// Verify waits until the guest's counter advances on its new side and
// checks it is the same boot.
func (f *Floor) Verify(ctx context.Context) error {
	for {
		id, n, ok := Counter(f.Serial())
		if ok && id != f.id {
			return fmt.Errorf("the guest rebooted: boot id %s before the move, %s after", f.id, id)
		}
		if ok && n > f.n {
			f.n = n
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("guest counter in %s: %w (last n=%d, want > %d)", f.Serial(), ctx.Err(), n, f.n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close kills the guest and stops the NBD servers; again, it does nothing.
func (f *Floor) Close() {
	if f.cur != nil {
		f.cur.Kill()
		f.cur = nil
	}
	for i, s := range f.srv {
		if s != nil {
			_ = s.Close()
			f.srv[i] = nil
		}
	}
	if f.file != nil {
		_ = f.file.Close()
		f.file = nil
	}
}
