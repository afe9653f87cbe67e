// Package vhd reads and writes fixed and dynamic Virtual Hard Disk images
// as defined by Microsoft's "Virtual Hard Disk Image Format
// Specification" (version 1.0), the format of Hyper-V's .vhd files,
// including differencing disks (CreateChild, OpenChain). It uses only the
// standard library and writes through the small File interface, so an
// image can live in an *os.File or in a file on the clustered volume.
//
// # Layout written
//
// Fixed: the virtual disk's bytes, then the 512-byte footer. The data is
// reserved with Allocator.Allocate (unwritten extents) when the File
// offers it, else left sparse with Truncate; it is never zero-filled.
//
// Dynamic: a copy of the footer at 0, the dynamic disk header at 512, the
// block allocation table (BAT) at 1536 (entries 0xFFFFFFFF, padded to a
// sector), and the footer at the end. The first write to a block appends
// it where the footer was: its sector bitmap (padded to a sector; a set
// bit, most significant bit first, marks a sector that holds data) and
// then the block; the footer moves to the new end. Unallocated blocks,
// and sectors whose bitmap bit is clear, read as zeros.
//
// Footer fields: cookie "conectix", features 0x2, version 1.0, creator
// application "kayo" version 1.0 on "Wi2k", timestamp from Options.Time
// (seconds since 2000-01-01 UTC — the clock is injected, never read),
// original and current size, the specification's CHS geometry of the
// current size, the disk type, the one's-complement checksum, a UUID
// (random from crypto/rand unless given) and saved state 0.
//
// Differencing (type 4): laid out as dynamic, plus the parent's footer
// UUID and timestamp and its path as the parent unicode name (UTF-16BE)
// in the header, and the path in a W2ru (relative) and optionally a
// W2ku (absolute) parent locator (UTF-16LE, sector padded, after the
// BAT). Sectors whose bitmap bit is clear, and unallocated blocks, read
// from the parent, recursively; writes go only to the child, a partly
// written sector first completed from the parent. Parents are opened
// through a ParentOpener with paths relative to the first child's
// directory, and must carry the UUID the child recorded (*ParentError
// otherwise). Copy flattens a chain into a standalone disk.
//
// # Sizes
//
// Disk.Size is RoundSize of the requested size: at least the request,
// sector aligned, and — below ~127.5 GiB — exactly what its CHS geometry
// addresses. The reason is qemu: its vpc driver takes the virtual size
// from the footer's current size only for creators it knows ("win ",
// "qem2", "d2v ", "CTXS", "tap") or when the geometry is the maximum
// 65535/16/255, and otherwise from the geometry (as Virtual PC did).
// Hyper-V always uses the current size. Making the two agree gives every
// reader the same size without this package claiming to be Hyper-V;
// `qemu-img create -f vpc` rounds the same way. Open reports the
// footer's current size, as Hyper-V does. The largest disk is MaxSize
// (2040 GiB).
//
// # qemu-img
//
// Fixed VHDs have no signature at offset 0, so format probing takes them
// for raw images: always pass `-f vpc`. qemu's vpc driver has no
// consistency check (`qemu-img check -f vpc` exits 63, "This image format
// does not support checks"); use Check, and `qemu-img convert -f vpc -O
// raw` or `qemu-img compare` to prove qemu reads the image.
//
// # Crashes
//
// Updates are ordered so the file always ends in a valid footer and the
// BAT never points at unwritten structures: a block's footer move, data
// and bitmap precede its BAT entry (a crash leaks at most the block's
// space, which Check does not treat as damage). Grow writes new space
// first, then the header, then the footers; a crash leaves either the
// old or the new size. Callers that need exactly-once semantics should
// still bracket Create and Grow with their own intent records.
package vhd
