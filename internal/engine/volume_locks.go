package engine

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs/etcdlock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Cluster locks of a node's Kayo FS mount (docs/ARCHITECTURE.md, "Leases
// and fencing tokens"). Every process that mounts a volume must choose the
// same lock manager, or their locks would not exclude each other: the
// choice is made here alone, from the cluster database and the volume's
// format.
//
//   - etcd database: the etcd lock manager (kayofs/etcdlock) on the
//     database's client, its keys beside the installation's prefix;
//   - embedded database (bbolt, or a store given by a test), a LUN named
//     by path or device (which other machines may see too): the on-disk
//     leases in the volume's lease area (kayofs/lease.go), which need
//     format version 2. A version 1 volume has no lease area and keeps the
//     OFD locks, which coordinate one kernel only; a reformat upgrades it;
//   - embedded database and a LUN of the embedded SAN (`lun = "lun0"`): an
//     image file in this machine's data dir, opened by this kernel alone,
//     so the OFD locks guard it completely. Every short-lived process of
//     the lab (each terraform command's plugin) would otherwise pay a
//     delta lease's join wait (2 × volumeLeaseIO) per volume and node.
//
// Both cross-machine managers need the device opened with direct I/O, so
// a read under a lock sees another host's last write, not this kernel's
// page cache (kayofs/direct.go).

// VolumeLeaseTimeout: a node that could not renew its lease on a volume
// for this long stops writing to it (it fences itself); other nodes
// recover its journal only half as long again after that.
const VolumeLeaseTimeout = 10 * time.Second

// volumeLeaseIO bounds one lease write on the LUN: a slower renewal does
// not count, and a node joining a volume waits twice this after writing
// its host lease (kayofs/lease.go, acquireDelta) to see whether another
// host raced it. The default (VolumeLeaseTimeout/16) would cost every
// mount 1.25 s; LUN writes of a sector take milliseconds.
const volumeLeaseIO = 250 * time.Millisecond

// volumeLockPrefix is where the etcd lock manager keeps its keys: beside
// the installation's prefix, not under it, so that listing or backing up
// the database never sees the locks.
func volumeLockPrefix(st *store.Etcd) string {
	return strings.TrimSuffix(st.Prefix(), "/") + "-kayofs"
}

// MountOptions returns the options a node's mount of v uses (its cluster
// lock manager), given v's superblock, and whether its device must be
// opened with direct I/O (kayofs.OpenDeviceDirect).
func (e *Engine) MountOptions(v Volume, sb *kayofs.Superblock) (o kayofs.MountOptions, direct bool) {
	o.Views = e.rt.views // this process's mounts of v share one namespace view
	logf := func(format string, args ...any) {
		log.Printf("volume %s: (%s): "+format, append([]any{v.DriveLetter, v.ID}, args...)...)
	}
	// Fences, waits for silent leases and recoveries are events, and a
	// fence stops the node's VMs on v (agent_fence.go). The embedded SAN's
	// OFD locks never fence.
	events := e.leaseEvents(v)
	if st, ok := e.st.(*store.Etcd); ok {
		o.Locks = etcdlock.New(etcdlock.Options{Client: st.Client(), Prefix: volumeLockPrefix(st),
			TTL: VolumeLeaseTimeout, Logf: logf, OnEvent: events})
		o.OnEvent = events
		return o, true
	}
	if sb.Version >= 2 && !v.Embedded() {
		o.Locks = kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: VolumeLeaseTimeout, IOTimeout: volumeLeaseIO, Logf: logf,
			OnEvent: events})
		o.OnEvent = events
		return o, true
	}
	return o, false
}

// OpenVolumeMount opens v's device as a node's mount of it needs (checking
// that it holds v) and returns it with the mount's options: what every
// mount of v, by the engine or a node agent, calls before kayofs.Mount.
func (e *Engine) OpenVolumeMount(v Volume) (*kayofs.FileDevice, kayofs.MountOptions, error) {
	fd, err := e.openVolumeDevice(v) // checks the LUN still holds v (volumes_lun.go)
	if err != nil {
		return nil, kayofs.MountOptions{}, err
	}
	sb, err := kayofs.ReadSuperblock(fd)
	if err != nil {
		_ = fd.Close()
		return nil, kayofs.MountOptions{}, fmt.Errorf("volume %s: (%s): %w", v.DriveLetter, v.ID, err)
	}
	o, direct := e.MountOptions(v, sb)
	if !direct {
		return fd, o, nil
	}
	_ = fd.Close()
	return e.openDirect(v, o)
}

// openDirect opens v's device with direct I/O, and checks again that it
// holds v (it may have changed since the first open).
func (e *Engine) openDirect(v Volume, o kayofs.MountOptions) (*kayofs.FileDevice, kayofs.MountOptions, error) {
	fd, err := kayofs.OpenDeviceDirect(v.Device)
	if err != nil {
		return nil, o, fmt.Errorf("volume %s: (%s): lun %q: %w", v.DriveLetter, v.ID, v.LUN, tidy(err))
	}
	if err := checkIdentity(fd, v); err != nil {
		_ = fd.Close()
		return nil, o, err
	}
	return fd, o, nil
}
