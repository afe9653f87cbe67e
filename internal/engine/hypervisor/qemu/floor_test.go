package qemu

import (
	"testing"
)

func testGuest(t testing.TB) (string, Guest) {
	t.Helper()
	bin, g, err := Prepare(RepoRoot())
	if err != nil {
		SkipOrFail(t, err)
	}
	return bin, g
}
