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

func TestRawMigrationCounterContinues(t *testing.T) {
	bin, g := testGuest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	res, err := RawMigration(ctx, bin, g, 128, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw QMP migration, 128 MiB: total %d ms, downtime %d ms, wall %d ms, resume %d ms", res.TotalMs, res.DowntimeMs, res.WallMs, res.ResumeMs)
}
