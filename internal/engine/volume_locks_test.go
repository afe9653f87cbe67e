package engine

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs/etcdlock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// otherHost mounts dev as node the way a node on another machine does:
// its own direct-I/O descriptor and the lock manager locks makes, nothing
// shared with this process's mounts but the LUN (and etcd).
func otherHost(t *testing.T, path, node string, locks kayofs.LockManagerFactory) (*kayofs.Volume, error) {
	t.Helper()
	fd, err := kayofs.OpenDeviceDirect(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fd.Close() })
	return kayofs.Mount(fd, node, kayofs.MountOptions{Locks: locks})
}

// sharedLUNVolume is the seed's volume on a file-backed LUN named by path,
// as a LUN other machines may see too (an embedded SAN LUN is this
// machine's alone, volume_locks.go).
func sharedLUNVolume(t *testing.T, gib int64) VolumeSpec {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shared-lun.img")
	fd, err := kayofs.CreateImage(p, gib<<30)
	if err != nil {
		t.Fatal(err)
	}
	_ = fd.Close()
	s := seedVolume()
	s.LUN, s.FileBacked, s.SizeGiB = p, true, gib
	return s
}

// TestVolumeMountsUseOFDOnTheEmbeddedSAN: an embedded SAN LUN is an image
// in this machine's data dir, so its mounts take OFD locks (no lease join
// wait); another process of this kernel is still kept out.
func TestVolumeMountsUseOFDOnTheEmbeddedSAN(t *testing.T) {
	e := newDisk(t)
	v, err := e.CreateVolume(context.Background(), seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.OpenDevice(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := kayofs.ReadSuperblock(fd)
	_ = fd.Close()
	if err != nil {
		t.Fatal(err)
	}
	if o, direct := e.MountOptions(v, sb); o.Locks != nil || direct {
		t.Errorf("embedded SAN LUN: lock manager set (%v) or direct I/O (%v); want the OFD default", o.Locks != nil, direct)
	}
	s := sharedLUNVolume(t, 1)
	s.DriveLetter = "P"
	w, err := e.CreateVolume(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if o, direct := e.MountOptions(w, sb); o.Locks == nil || !direct {
		t.Errorf("LUN by path: no lock manager (%v) or no direct I/O (%v); want on-disk leases", o.Locks == nil, !direct)
	}
}

// TestVolumeMountsUseDiskLeases: with the embedded database a new volume
// has a lease area (format version 2 or later) and the engine's mounts hold on-disk leases, so a
// node on another machine (which shares only the LUN, not this kernel's
// OFD locks) sees the engine's mount of Y-21 live and cannot mount Y-21
// too; and the engine sees the other machine's mount of Y-22.
func TestVolumeMountsUseDiskLeases(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, sharedLUNVolume(t, 500))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.OpenDevice(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := kayofs.ReadSuperblock(fd)
	fd.Close()
	if err != nil || sb.Version != kayofs.FormatVersion {
		t.Fatalf("new volume: format version %d (%v), want %d (the version with a lease area)", sb.Version, err, kayofs.FormatVersion)
	}
	leases := kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: 2 * time.Second, IOTimeout: 50 * time.Millisecond,
		Logf: t.Logf})
	err = e.WithVolume(ctx, v.ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
		f, err := fv.Create("written-by-engine")
		if err != nil {
			return err
		}
		if _, err := f.WriteAt([]byte("engine"), 0); err != nil {
			return err
		}
		other, err := otherHost(t, v.Device, "Y-21-2k8x64", leases)
		if err == nil {
			_ = other.Unmount()
			t.Fatal("another machine mounted Y-21 while the engine's mount of Y-21 was live: the engine's mount holds no on-disk lease")
		}
		if !errors.Is(err, kayofs.ErrMounted) {
			t.Fatalf("another machine mounting Y-21: %v, want ErrMounted", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The other way round: Y-22 mounted on another machine is busy for
	// the engine (until its lock timeout), and what the engine wrote is
	// there.
	other, err := otherHost(t, v.Device, "Y-22-2k8x64", leases)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Stat("written-by-engine"); err != nil {
		t.Fatalf("the other machine's mount: %v", err)
	}
	err = e.WithVolume(ctx, v.ID, "Y-22-2k8x64", func(*kayofs.Volume) error { return nil })
	if !errors.Is(err, kayofs.ErrMounted) {
		t.Fatalf("engine mounting Y-22 while another machine mounts it: %v, want ErrMounted", err)
	}
	if err := other.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := e.WithVolume(ctx, v.ID, "Y-22-2k8x64", func(*kayofs.Volume) error { return nil }); err != nil {
		t.Fatalf("engine mounting Y-22 after the other machine detached: %v", err)
	}
}

// TestVolumeMountsUseEtcdLocks: with the etcd database the engine's
// mounts take the etcd lock manager's locks, so a node on another machine
// using the same etcd cannot mount the node the engine has mounted.
func TestVolumeMountsUseEtcdLocks(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := context.Background()
	e := openEtcdEngine(t, c.Endpoints(), "/kayo-volume-locks/")
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	// On etcd a node's agent formats (agent_work_format.go): the nodes'
	// agents run on this machine (the embedded SAN's data dir) until the
	// volume is made, then stop and let go of their mounts.
	agents, err := openT(Config{DataDir: e.dataDir, Etcd: &store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: "/kayo-volume-locks/"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agents.Close() })
	stop21, stop22 := startWorkAgent(t, agents, "Y-21-2k8x64"), startWorkAgent(t, agents, "Y-22-2k8x64")
	v, err := e.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	stop21()
	stop22()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	locks := etcdlock.New(etcdlock.Options{Client: cli, Prefix: volumeLockPrefix(e.Store().(*store.Etcd)), Logf: t.Logf})
	err = e.WithVolume(ctx, v.ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
		other, err := otherHost(t, v.Device, "Y-21-2k8x64", locks)
		if err == nil {
			_ = other.Unmount()
			t.Fatal("another machine mounted Y-21 while the engine's mount of Y-21 was live: the engine's mount holds no etcd lock")
		}
		if !errors.Is(err, kayofs.ErrMounted) {
			t.Fatalf("another machine mounting Y-21: %v, want ErrMounted", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
