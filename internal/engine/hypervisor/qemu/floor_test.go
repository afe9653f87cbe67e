package qemu

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"
)

func testGuest(t testing.TB) (string, Guest) {
	t.Helper()
	bin, g, err := Prepare(RepoRoot())
	if err != nil {
		SkipOrFail(t, err)
	}
	return bin, g
}

// TestFloorCounterContinues moves the guest there and back in plain text,
// then there and back with TLS (a pre-shared key, as the driver's
// agents): the counter continues each time.
func TestFloorCounterContinues(t *testing.T) {
	bin, g := testGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	f, err := StartFloor(ctx, bin, g, 128, 64<<20, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tls, err := WritePSK(filepath.Join(dir, "tls"), "kayo", bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ { // there and back, plain then TLS
		kind := "plain"
		if i >= 2 {
			f.TLS, kind = &tls, "TLS-PSK"
		}
		res, err := f.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("raw QMP migration, %s, 128 MiB: total %d ms, downtime %d ms, wall %d ms (launch %d, resume %d)", kind, res.TotalMs, res.DowntimeMs, res.WallMs, res.LaunchMs, res.ResumeMs)
	}
}
