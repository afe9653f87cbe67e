package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
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

// TestVMReads: what reading a VM's guest addresses and deleting it read.
// For a VM with no reserved address (no subnet on its switches) there
// are no guest addresses to report or wait for: the VM's record alone
// (and the provider, holding the VM, asks nothing); with one, also its
// cluster (the hypervisor). A delete reads the VM once before deciding.
func TestVMReads(t *testing.T) {
	ctx := context.Background()
	st := &callCount{}
	e, vol := storeEnv(t, func(b store.Store) store.Store { st.Store = b; return st })
	for _, sw := range []SwitchSpec{{Cluster: vol.Cluster, Name: "Lab", Type: SwitchPrivate, Subnet: "192.0.2.0/24"},
		{Cluster: vol.Cluster, Name: "Plain", Type: SwitchPrivate}} {
		if _, err := e.CreateSwitch(ctx, sw); err != nil {
			t.Fatal(err)
		}
	}
	plain := vmSpec(vol, "PLAIN", 256)
	plain.Adapters = []VMAdapter{{Switch: "Plain"}}
	subnet := vmSpec(vol, "SUBNET", 256)
	subnet.Adapters = []VMAdapter{{Switch: "Lab"}}
	vms := map[string]VM{}
	for _, s := range []VMSpec{plain, subnet} {
		vm, err := e.CreateVM(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		vms[s.Name] = vm
	}
	if vms["PLAIN"].HasReservedAddress() || !vms["SUBNET"].HasReservedAddress() {
		t.Fatalf("reserved: %v, %v", vms["PLAIN"].AdapterAddresses, vms["SUBNET"].AdapterAddresses)
	}
	for name, want := range map[string][4]int64{
		"PLAIN":  {0, 2, 0, 0}, // the VM and its volume (GetVM)
		"SUBNET": {0, 3, 0, 0}, // and its cluster
	} {
		st.take()
		got, err := e.WaitGuestAddresses(ctx, vol.Cluster, name, 1e9, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.take(); n != want {
			t.Errorf("%s: guest addresses %v cost %v (commits, gets, getmanys, lists), want %v", name, got, n, want)
		}
		if wantAddrs := fmt.Sprint(vms[name].AdapterAddresses); name == "SUBNET" && fmt.Sprint(got) != wantAddrs {
			t.Errorf("%s: addresses %v, want %v", name, got, wantAddrs)
		}
	}
	st.take()
	if err := e.DeleteVM(ctx, vol.Cluster, "PLAIN"); err != nil {
		t.Fatal(err)
	}
	// The VM and its volume, the cluster (its hypervisor), the volume on
	// the node that removes the files, the VM's node record in the
	// commit: 5 gets; the quorum's records, and the VM and its volume
	// again in the commit (not decoded again: TestGetVMAt): 2 getmanys.
	if n := st.take(); n[1] > 5 || n[2] > 2 {
		t.Errorf("deleting a VM cost %v (commits, gets, getmanys, lists), want at most 5 gets and 2 getmanys", n)
	}
	if _, err := e.GetVM(ctx, vol.Cluster, "PLAIN"); err == nil {
		t.Fatal("the VM is still there")
	}
}

// TestGetVMAt: a VM record still at the revision of the VM the operation
// holds is taken from it, not decoded again; at any other revision it is
// read afresh. A commit's revision is its records' revision, so the VM a
// commit returns is the one the next commit of the operation holds.
func TestGetVMAt(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	created, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 256))
	if err != nil {
		t.Fatal(err)
	}
	read, err := e.GetVM(ctx, vol.Cluster, "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	if read.Revision != created.Revision {
		t.Fatalf("CreateVM returned revision %d, the record is at %d", created.Revision, read.Revision)
	}
	known := read
	known.StatusReason = "held by the operation" // only known has it
	got, err := e.getVMAt(ctx, vol.Cluster, "WEB01", &known)
	if err != nil {
		t.Fatal(err)
	}
	if got.StatusReason != known.StatusReason || got.VHDPath != read.VHDPath {
		t.Fatalf("at the same revision: %q, %s; want the held VM", got.StatusReason, got.VHDPath)
	}
	known.Revision--
	if got, err = e.getVMAt(ctx, vol.Cluster, "WEB01", &known); err != nil {
		t.Fatal(err)
	}
	if got.StatusReason == known.StatusReason || got.Revision != read.Revision {
		t.Fatalf("at another revision: %q at %d; want the record read afresh", got.StatusReason, got.Revision)
	}
	s := vol.VolumeSpec
	s.DriveLetter = "P"
	if _, err := e.UpdateVolume(ctx, vol.ID, s); err != nil {
		t.Fatal(err)
	}
	known.Revision++
	if got, err = e.getVMAt(ctx, vol.Cluster, "WEB01", &known); err != nil {
		t.Fatal(err)
	}
	if got.StatusReason != known.StatusReason || got.VHDPath != `P:\WEB01\WEB01.vhd` {
		t.Fatalf("after a letter change: %q, %s; want the held VM at P:", got.StatusReason, got.VHDPath)
	}
}
