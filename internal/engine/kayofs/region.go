package kayofs

import "fmt"

// RegionOf names the part of the volume that byte offset off falls in
// (superblock, slot table, heartbeat, a slot's journal, a lease record,
// namespace, directory entries, inodes, allocation groups): what a test or
// an operator reads when two images differ.
func (sb *Superblock) RegionOf(off int64) string {
	blk := uint64(off) / uint64(sb.BlockSize)
	ms := uint64(sb.MaxSlots)
	switch {
	case blk < 2:
		return "superblock"
	case blk < 2+ms:
		return fmt.Sprintf("slot table (slot %d)", blk-2)
	case blk < 2+2*ms:
		return fmt.Sprintf("heartbeat (slot %d)", blk-2-ms)
	case blk < sb.leaseStart():
		return fmt.Sprintf("journal (slot %d)", (blk-sb.journalStart(0))/uint64(sb.JournalBlocks))
	case blk < sb.nsBlock():
		return fmt.Sprintf("lease record %d", (uint64(off)-sb.leaseStart()*uint64(sb.BlockSize))/recSize)
	case blk == sb.nsBlock():
		return "namespace"
	case blk < sb.inodeStart():
		return "directory entries"
	case blk < sb.agStart():
		return fmt.Sprintf("inode %d", blk-sb.inodeStart())
	}
	k := (blk - sb.agStart()) / sb.agSpan()
	switch in := (blk - sb.agStart()) % sb.agSpan(); {
	case in == 0:
		return fmt.Sprintf("allocation group %d header", k)
	case in <= uint64(sb.AGBitmapBlocks):
		return fmt.Sprintf("allocation group %d bitmap", k)
	}
	return fmt.Sprintf("allocation group %d data", k)
}
