package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// QMP is a minimal client of the QEMU Machine Protocol on a unix socket:
// raw JSON commands, one at a time, asynchronous events skipped (QEMU 7.2's
// command set is newer than the generated Go APIs; raw JSON needs no
// module).
type QMP struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// QMPError is an error QEMU returned for a command.
type QMPError struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// DialQMP connects to the QMP socket at path, waiting up to the context's
// deadline for QEMU to create it, and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var conn net.Conn
	var err error
	for {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", path)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp: connecting to %s: %w (last: %v)", path, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	q := &QMP{conn: conn, r: bufio.NewReader(conn)}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Greeting.
	var greet map[string]json.RawMessage
	if err := q.readMsg(&greet); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("qmp: greeting on %s: %w", path, err)
	}
	if _, ok := greet["QMP"]; !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("qmp: %s did not greet with QMP", path)
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMP) readMsg(v any) error {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// Execute runs command with args (nil: none) and returns its "return"
// value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	return q.ExecuteFile(ctx, command, args, nil)
}

// ExecuteFile is Execute passing f's descriptor with the command (unix
// SCM_RIGHTS: QMP getfd, add-fd), f nil none.
func (q *QMP) ExecuteFile(ctx context.Context, command string, args any, f *os.File) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = q.conn.SetDeadline(dl)
	defer func() { _ = q.conn.SetDeadline(time.Time{}) }()
	if f != nil {
		uc, ok := q.conn.(*net.UnixConn)
		if !ok {
			return nil, ErrNoFD
		}
		if _, _, err := uc.WriteMsgUnix(append(b, '\n'), unixRights(f), nil); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
	} else if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *QMPError       `json:"error"`
			Event  string          `json:"event"`
		}
		if err := q.readMsg(&msg); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
		switch {
		case msg.Event != "":
			continue
		case msg.Error != nil:
			msg.Error.Command = command
			return nil, msg.Error
		default:
			return msg.Return, nil
		}
	}
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }

// Status is QEMU's run state (query-status): "running", "paused",
// "inmigrate", "postmigrate", "prelaunch", "finish-migrate", ...
func (q *QMP) Status(ctx context.Context) (string, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

// MigrationInfo is what query-migrate reports.
type MigrationInfo struct {
	Status string `json:"status"`
	// TotalTime is milliseconds since the migration started (final when
	// completed); Downtime the milliseconds the guest was stopped
	// (completed only); SetupTime the setup phase.
	TotalTime int64 `json:"total-time"`
	Downtime  int64 `json:"downtime"`
	SetupTime int64 `json:"setup-time"`
	RAM       *struct {
		Transferred      int64   `json:"transferred"`
		Remaining        int64   `json:"remaining"`
		Total            int64   `json:"total"`
		Duplicate        int64   `json:"duplicate"`
		Normal           int64   `json:"normal"`
		DirtySyncCount   int64   `json:"dirty-sync-count"`
		DirtyPagesRate   int64   `json:"dirty-pages-rate"`
		Mbps             float64 `json:"mbps"`
		PostcopyRequests int64   `json:"postcopy-requests"`
	} `json:"ram"`
	ErrorDesc string `json:"error-desc"`
}

// QueryMigrate returns the state of the current (or last) migration.
func (q *QMP) QueryMigrate(ctx context.Context) (MigrationInfo, error) {
	raw, err := q.Execute(ctx, "query-migrate", nil)
	if err != nil {
		return MigrationInfo{}, err
	}
	var mi MigrationInfo
	if err := json.Unmarshal(raw, &mi); err != nil {
		return MigrationInfo{}, err
	}
	return mi, nil
}

// ErrMigrationFailed: QEMU reported the migration failed or was cancelled.
var ErrMigrationFailed = errors.New("qemu: migration failed")

// WaitMigration polls query-migrate every interval until the migration
// completes (returned) or fails, calling progress with each sample.
func (q *QMP) WaitMigration(ctx context.Context, interval time.Duration, progress func(MigrationInfo)) (MigrationInfo, error) {
	for {
		mi, err := q.QueryMigrate(ctx)
		if err != nil {
			return mi, err
		}
		if progress != nil {
			progress(mi)
		}
		switch mi.Status {
		case "completed":
			return q.completedTimes(ctx, mi), nil
		case "failed", "cancelled":
			return mi, fmt.Errorf("%w: %s %s", ErrMigrationFailed, mi.Status, mi.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return mi, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// completedTimes returns mi, a completed migration, with its total-time
// and downtime: QEMU 7.2 reports "completed" a moment before it computes
// them (migration_completion sets the state, migration_iteration_finish
// the times), 0 until then, so it asks again, for up to a second.
func (q *QMP) completedTimes(ctx context.Context, mi MigrationInfo) MigrationInfo {
	for i := 0; mi.TotalTime == 0 && i < 1000; i++ {
		select {
		case <-ctx.Done():
			return mi
		case <-time.After(time.Millisecond):
		}
		again, err := q.QueryMigrate(ctx)
		if err != nil || again.Status != "completed" {
			return mi
		}
		mi = again
	}
	return mi
}
