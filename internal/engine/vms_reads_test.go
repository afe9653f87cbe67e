package engine

import (
	"context"
	"testing"
)

// TestVolumeRecordDecodedOnce: a volume record read again unchanged is
// not decoded again, each read gets its own copy of the maps, and a
// change of the record (its drive letter) is seen at once.
func TestVolumeRecordDecodedOnce(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	a, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	entry, ok := e.volumeRecs.Load(volumeKey(vol.ID))
	if !ok {
		t.Fatal("the volume's decoded record is not kept")
	}
	a.Mounts["SOMEONE"] = 99
	b, err := e.GetVolume(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := e.volumeRecs.Load(volumeKey(vol.ID)); again != entry {
		t.Fatal("the unchanged volume record was decoded again")
	}
	if _, ok := b.Mounts["SOMEONE"]; ok {
		t.Fatal("a change of one read's mounts shows in the next read")
	}
	if _, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 256)); err != nil {
		t.Fatal(err)
	}
	s := b.VolumeSpec
	s.DriveLetter = "P"
	if _, err := e.UpdateVolume(ctx, vol.ID, s); err != nil {
		t.Fatal(err)
	}
	vm, err := e.GetVM(ctx, vol.Cluster, "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	if vm.DriveLetter != "P" || vm.VHDPath != `P:\WEB01\WEB01.vhd` {
		t.Fatalf("after the letter change the VM reads %s, %s", vm.DriveLetter, vm.VHDPath)
	}
}
