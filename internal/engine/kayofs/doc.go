// Package kayofs implements Kayo FS, the clustered volume format every node
// of a kayo cluster mounts at once (the "shared LUN" of the seed guide).
//
// # API
//
//	dev, _ := kayofs.CreateImage(path, size)        // sparse image (or OpenDevice("/dev/sdX"))
//	sb, _ := kayofs.Format(dev, kayofs.FormatOptions{BlockSize: 4096, Slots: 16, Label: "VMSTORE"})
//	v, _ := kayofs.Mount(dev, "Y-21-2k8x64")        // v.Slot() → record in the cluster DB
//	f, _ := v.Create("WEB01/WEB01.vhd"); f.Allocate(40 << 30); f.WriteAt(p, off)
//	fs, _ := v.CreateFiles("WEB02", []kayofs.NewFile{{Name: "WEB02.vhd", Data: hdr}}) // one transaction
//	v.RemoveDir("WEB02")                            // directory and its files, one transaction
//	v.Unmount()                                     // or v.Detach(): keep the slot for the node's next process
//	v.Grow(newSize); v.AddSlots(n)                  // online, any mounted node
//	problems, _ := kayofs.Check(dev)                // every violated invariant
//	kayofs.Recover(dev, slot) / kayofs.RecoverAll(dev)
//
// # On-disk layout (version 1)
//
// All numbers little-endian; B is the block size (4–64 KiB, power of two);
// positions are block numbers. The fixed regions are sized for MaxSlots (64)
// from the start so node slots can be added online, and allocation groups
// are appended at the end so the volume can grow online (the last group's
// bitmap blocks are reserved for a full group).
//
//	0                 primary superblock (first 512 bytes encoded, CRC32C at [8:12])
//	1                 backup superblock (identical bytes)
//	2 .. 65           slot table: one block per slot (state, node name, mount generation, time)
//	66 .. 129         heartbeat region: one block per slot (active, node, counter, timestamp)
//	130 ..            64 journals of JournalBlocks each (max(16, 256 KiB/B) blocks)
//	(version 2)       lease area, 1 MiB: host delta leases, slot owners, the
//	                  metadata lease's leader, request and Disk Paxos blocks
//	                  (leaserec.go; version 4: one lease per domain,
//	                  leasedom.go); version-1 volumes have none
//	NS                namespace header (high-water inode, namespace generation, counts)
//	                  (version 5 also: the classes in use, nsclasses.go)
//	NS+1 ..           directory-entry table: one 272-byte entry per inode number
//	                  (type, parent inode, generation, name ≤ 255 bytes)
//	..                inode table: one block per inode (type, extent-tree depth, size,
//	                  generation, mtime, up to (B-88)/24 inline records: extents
//	                  (logical, physical, length, flags) or, past that, the index of
//	                  an extent tree whose blocks live in the data areas (tree.go))
//	AGs               AGCount allocation groups: [header][bitmaps][data]; the header keeps
//	                  the used count of the group and of each bitmap block
//
// Superblock fields: magic "KAYOFS01", crc, version, block size, UUID,
// label (32 bytes), total blocks, slot count, max slots, journal blocks,
// inode count, group count, data blocks per group, bitmap blocks per group,
// creation time, generation. Decoding checks the checksum and the whole
// layout; the backup is used when the primary is torn.
//
// Every other metadata block starts with a 48-byte header: type, CRC32C of
// the whole block, volume UUID, its own block number, a write generation.
// A block whose UUID is not the volume's was never written by this format
// ("fresh") and reads as its empty state: free slot, clean journal, all-free
// group, unused inode. This is what makes formatting lazy: Format writes
// the two superblocks, the namespace header, one directory-entry block and
// the root inode, and zeroes foreign signature areas (first and last MiB)
// only where they are not already zero — a 16 TiB sparse image
// gets about 20 KiB written in a few milliseconds. A block with the volume's
// UUID but a wrong type, block number or checksum is torn or misdirected and
// is never trusted (operations fail with ErrCorrupt; Check reports it).
//
// # Journaling
//
// Metadata changes are physical-block transactions in the node's own
// journal: descriptor (sequence, target blocks, image checksums), full block
// images, commit block (checksum of descriptor and images) → sync → blocks
// written in place → sync → checkpoint header (two headers written
// alternately, newest valid wins) → locks released. The checkpoint has no
// sync of its own: every later in-place write of a block comes after some
// node's journal sync, which orders it, and until then replaying the
// transaction again rewrites what is already in place (journal.go). A
// descriptor newer than the checkpoint whose commit and images verify is
// replayed; anything else is an uncommitted tail. Data of a write lands in blocks that
// are unwritten (or already written) before the transaction that marks them
// written commits, so an acknowledged WriteAt survives a crash and an
// unacknowledged one never exposes stale data.
//
// # Cluster locking and recovery
//
// Nodes coordinate through a LockManager (lockmgr.go): by default Linux OFD byte-range locks (fcntl
// F_OFD_SETLK[W]) on the device node, at virtual offsets past 2^61: a slot
// table lock, a namespace lock, one lock per file (shared for I/O, exclusive
// for truncate/remove), one per inode, one per allocation group, and per
// slot a liveness lock (held for the whole mount), an owner lock (taken
// after the liveness lock, dropped before it, so its holder is the live
// owner: the dead-node check probes it once instead of taking the recovery
// lock; mounts without it, as older binaries, get the recovery-lock
// protocol) and a recovery lock. OFD
// locks are per open file description, so goroutine nodes in one process
// exclude each other like processes do, and the kernel drops a dead node's
// locks. Whenever a node newly takes a metadata lock it replays the journal
// of every slot whose liveness lock is free (its owner died), before reading
// anything the lock protects; Mount does the same for every slot, so a dead
// node's committed transaction always lands before anyone allocates again.
// A slot found ownerless with a clean journal is skipped while its slot
// block is unchanged (one read of the slot table per lock): only a Mount,
// which rewrites that block first, can give it a journal again.
//
// Across machines the OFD locks do nothing: NewDiskLeases (lease.go,
// paxos.go) coordinates hosts through the lease area alone (sanlock-style
// delta leases for host liveness, a Disk Paxos lease for metadata), with
// direct I/O (OpenDeviceDirect) so no kernel serves another's stale blocks,
// and self-fencing: a mount that cannot renew its lease in time fails every
// write (ErrFenced) before any other host may recover it. When the
// cluster database is etcd, etcdlock.New does the same through etcd (locks
// under the mount's etcd lease, fencing before the lease can expire). Both
// keep the metadata lock after use until another node asks for it, at
// least MinHold (a DLM's lock caching, GFS2's minimum hold time).
// Format version 3 (version 2's layout) splits the cluster locks into
// domains (LockDomain, lockmgr.go): the namespace, each allocation group,
// and runs of 16 inode numbers modulo 64, each mount preferring the runs
// of its own slot, so nodes writing their own files meet only on the
// namespace lock. The etcd manager locks a version-3 volume by domain;
// the on-disk leases map every key of it onto the one metadata lease.
// Binaries that lock a volume as one refuse version 3. Format version 4
// (the same layout) gives the on-disk leases a Disk Paxos lease per lease
// domain too (leasedom.go: the namespace, inode runs, ranges of groups,
// and a recovery lease so two hosts never replay one journal at once);
// binaries whose on-disk leases take one lease refuse version 4, and
// version-2 and -3 volumes keep their locking. Format version 5 stores
// each run of 16 inode numbers in directory-entry blocks of its own, and
// a file created or removed in a directory takes that directory's domain
// (its own run's lock) instead of the namespace lock; the namespace header
// then counts no files (dirdom.go). Older binaries refuse version 5;
// version-2 to -4 volumes keep their locking. Both managers keep a lock
// at least DefaultMinHold (100 ms, GFS2's glock hold time; lease.go says
// why) before handing it to a node that asks.
// Each node starts allocating in its own group (slot × groups / slots) and
// takes group locks with try-lock, moving to the next group when one is
// busy. Heartbeats are written every period for cross-host liveness; in the
// embedded lab the liveness locks are the failure detector.
//
// # Files
//
// Paths are relative, "/"-separated, without empty, "." or ".." elements.
// Allocate extends a file with unwritten extents (read as zeros, no
// zero-fill). Writes into holes allocate whole 64 KiB clusters placed to
// mirror their logical neighbours, zero the untouched part of new clusters
// and mark them written, so extents stay few. Rename rewrites one directory
// entry (atomic); replacing an existing file frees its blocks first.
//
// # Check
//
// Check overlays committed-but-unreplayed journal transactions and then
// verifies: superblock copies, slot/heartbeat/journal blocks, the directory
// tree (parents are directories, unique names, everything reachable from the
// root, counts), inodes (generation and type match their entry, extents
// sorted, written extents inside the size, each extent inside one group's
// data area), no block owned twice, every bitmap equal to the extents in
// use and every group counter equal to its bitmap.
//
// # Online growth
//
// Grow appends allocation groups (after lengthening the last group to a
// full one: its bitmap blocks were reserved for that) and AddSlots raises
// the slot count inside the regions reserved for MaxSlots. Both rewrite only
// the superblock pair, their commit record (primary, sync, backup, sync; a
// torn primary loses to the backup, a stale backup is repaired at the next
// mount). Group headers count used blocks, so no group metadata changes with
// the layout; the new space and slots were never written, so they read as
// free. Mounted nodes reload the superblock whenever they newly take a
// metadata lock, and when they meet a block or journal record past their
// view. See grow.go.
//
// # Detached mounts
//
// Detach ends a process's use of a mount but keeps the slot claimed on disk
// (state "detached", owner kept, journal clean, no heartbeat, liveness lock
// released): the node stays mounted between short-lived processes such as
// Terraform's plugin, its next Mount reclaims the same slot, and no other
// node takes it. Unmount by a mount of that node frees it.
//
// # Limits (version 1)
//
// Extent trees are at most 3 levels deep (790 million extents at 4 KiB).
// Updating a file's extents costs time linear in its extent count (the
// in-memory list is rebuilt): about 1 ms per scattered write at 14,000
// extents. Slots and size only grow; there is no shrink.
package kayofs
