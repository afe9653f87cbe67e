package qemu

import (
	"context"
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

func TestFloorCounterContinues(t *testing.T) {
	bin, g := testGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := StartFloor(ctx, bin, g, 128, 64<<20, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 2; i++ { // there and back
		res, err := f.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("raw QMP migration, 128 MiB: total %d ms, downtime %d ms, wall %d ms (launch %d, resume %d)", res.TotalMs, res.DowntimeMs, res.WallMs, res.LaunchMs, res.ResumeMs)
	}
}
