package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeQMP serves a QMP greeting, qmp_capabilities, and query-migrate
// answers from replies in turn (the last one repeated).
func fakeQMP(t *testing.T, replies ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		_, _ = c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		r := bufio.NewReader(c)
		n := 0
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute string `json:"execute"`
			}
			_ = json.Unmarshal(line, &req)
			ret := "{}"
			if req.Execute == "query-migrate" {
				ret = replies[min(n, len(replies)-1)]
				n++
			}
			_, _ = c.Write([]byte(`{"return": ` + ret + "}\n"))
		}
	}()
	return path
}

// QEMU says "completed" before it has set total-time and downtime (0 in
// the first answers): WaitMigration returns the times once they are set,
// not zeros (a benchmark round read 0 ms for a 5 s migration).
func TestWaitMigrationCompletedTimes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, fakeQMP(t,
		`{"status": "active", "total-time": 40}`,
		`{"status": "completed"}`,
		`{"status": "completed", "total-time": 0, "downtime": 0}`,
		`{"status": "completed", "total-time": 5103, "downtime": 251}`))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = q.Close() }()
	mi, err := q.WaitMigration(ctx, time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mi.Status != "completed" || mi.TotalTime != 5103 || mi.Downtime != 251 {
		t.Fatalf("WaitMigration = %+v, want completed, total 5103 ms, downtime 251 ms", mi)
	}
}
