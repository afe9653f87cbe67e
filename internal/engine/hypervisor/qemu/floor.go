package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// FileDisk serves an *os.File as an NBD Disk (raw).
type FileDisk struct {
	*os.File
	Bytes int64
}

// Size implements Disk.
func (d FileDisk) Size() int64 { return d.Bytes }

// Flush implements Disk.
func (d FileDisk) Flush() error { return d.Sync() }

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

// WaitCounter waits until the serial log shows a counter of at least min.
func WaitCounter(ctx context.Context, serialLog string, min int) (string, int, error) {
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

// FloorResult is a raw QMP live migration driven without any cluster
// machinery: the floor the driver is measured against.
type FloorResult struct {
	MemoryMB   int64
	TotalMs    int64 // QEMU's total-time
	DowntimeMs int64 // QEMU's downtime
	// WallMs: from the migrate command to the target running (cont).
	WallMs int64
	// ResumeMs: from QEMU's completion (seen by polling) to cont returning.
	ResumeMs int64
}

// RawMigration boots the guest with memMB on a raw disk in dir served by
// this package's NBD server, waits for its counter, live-migrates it
// to a second process on loopback with raw QMP, resumes the target, kills
// the source, and checks the counter continues.
func RawMigration(ctx context.Context, bin string, g Guest, memMB int64, dir string) (FloorResult, error) {
	res := FloorResult{MemoryMB: memMB}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "floor.raw"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return res, err
	}
	defer f.Close()
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		return res, err
	}
	srv, err := ListenNBD("127.0.0.1:0")
	if err != nil {
		return res, err
	}
	defer func() { _ = srv.Close() }()
	srv.Add("floor", FileDisk{File: f, Bytes: size})
	name := fmt.Sprintf("floor%d", memMB)
	src, err := Launch(ctx, bin, Config{Name: name + "-src", MemoryMB: memMB, Processors: 1, Guest: g, Disk: srv.URL("floor"), Dir: dir})
	if err != nil {
		return res, err
	}
	defer src.Kill()
	if _, err := src.QMP.Execute(ctx, "cont", nil); err != nil {
		return res, err
	}
	id, n0, err := WaitCounter(ctx, SerialPath(dir, name+"-src"), 3)
	if err != nil {
		return res, err
	}
	port, err := FreePort()
	if err != nil {
		return res, err
	}
	uri := fmt.Sprintf("tcp:127.0.0.1:%d", port)
	dst, err := Launch(ctx, bin, Config{Name: name + "-dst", MemoryMB: memMB, Processors: 1, Guest: g, Disk: srv.URL("floor"), Dir: dir, Incoming: uri})
	if err != nil {
		return res, err
	}
	defer dst.Kill()
	t0 := time.Now()
	if err := src.StartMigration(ctx, uri); err != nil {
		return res, err
	}
	mi, err := src.QMP.WaitMigration(ctx, 5*time.Millisecond, nil)
	if err != nil {
		return res, err
	}
	t1 := time.Now()
	// The target leaves "inmigrate" once it has loaded the state.
	for {
		st, err := dst.QMP.Status(ctx)
		if err != nil {
			return res, err
		}
		if st != "inmigrate" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	src.Kill()
	if _, err := dst.QMP.Execute(ctx, "cont", nil); err != nil {
		return res, err
	}
	t2 := time.Now()
	res.TotalMs, res.DowntimeMs = mi.TotalTime, mi.Downtime
	res.WallMs, res.ResumeMs = t2.Sub(t0).Milliseconds(), t2.Sub(t1).Milliseconds()
	id2, n2, err := WaitCounter(ctx, SerialPath(dir, name+"-dst"), 1)
	if err != nil {
		return res, err
	}
	if id2 != id {
		return res, fmt.Errorf("the guest rebooted: boot id %s on the source, %s on the target", id, id2)
	}
	_ = n0
	_ = n2
	return res, nil
}
