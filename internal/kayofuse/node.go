package kayofuse

import (
	"context"
	"errors"
	"log"
	"path"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// node is a file or directory of the volume. Its kayofs path is its place
// in go-fuse's tree (Inode.Path), which the kernel keeps current through
// Lookup, Rename and Unlink.
type node struct {
	fs.Inode
	fsys *fsys

	// mu guards the gathered writes (handle.go): they belong to the file,
	// not to one open handle, so a read through any handle sees them.
	mu      sync.Mutex
	pending *kayofs.File
	buf     []byte
	bufOff  int64
	// werr is the error of a gathered write that no write, fsync or close
	// has returned yet.
	werr error
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeStatfser  = (*node)(nil)
)

// path is the node's kayofs path ("" for the root).
func (n *node) path() string { return n.Path(nil) }

// child is the kayofs path of name inside n.
func (n *node) child(name string) string { return path.Join(n.path(), name) }

// fill sets out from fi.
func (n *node) fill(fi kayofs.FileInfo, out *fuse.Attr) {
	bs := n.fsys.v.Superblock().BlockSize
	out.Ino = uint64(fi.Ino)
	out.Size = uint64(fi.Size)
	out.Blocks = uint64(fi.Allocated) / 512
	out.Blksize = bs
	out.Nlink = 1
	out.Mode = syscall.S_IFREG | 0o644
	if fi.IsDir {
		out.Mode = syscall.S_IFDIR | 0o755
		out.Size = uint64(bs)
	}
	t := fi.ModTime
	out.SetTimes(&t, &t, &t)
}

// newChild makes the go-fuse node of fi, a child of n.
func (n *node) newChild(ctx context.Context, fi kayofs.FileInfo, out *fuse.EntryOut) *fs.Inode {
	n.fill(fi, &out.Attr)
	mode := uint32(syscall.S_IFREG)
	if fi.IsDir {
		mode = syscall.S_IFDIR
	}
	return n.NewInode(ctx, &node{fsys: n.fsys}, fs.StableAttr{Mode: mode, Ino: uint64(fi.Ino)})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.fsys.enter(); e != 0 {
		return nil, e
	}
	defer n.fsys.leave()
	p := n.child(name)
	fi, err := n.fsys.v.Stat(p)
	if err != nil {
		return nil, n.fsys.errno("lookup", p, err)
	}
	if ch := n.GetChild(name); ch != nil {
		if c, ok := ch.Operations().(*node); ok && ch.StableAttr().Ino == uint64(fi.Ino) {
			// a file this mount is writing: gathered writes count
			c.mu.Lock()
			if c.pending != nil {
				fi.Size = max(fi.Size, c.bufOff+int64(len(c.buf)))
			}
			c.mu.Unlock()
		}
	}
	return n.newChild(ctx, fi, out), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	return n.getattr(fh, out)
}

func (n *node) getattr(fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	p := n.path()
	if err := n.flush(); err != nil {
		return n.fsys.errno("getattr", p, err)
	}
	var fi kayofs.FileInfo
	var err error
	if h, ok := fh.(*handle); ok {
		fi, err = h.f.Stat() // the open file, even if renamed or replaced since
	} else {
		fi, err = n.fsys.v.Stat(p)
	}
	if err != nil {
		return n.fsys.errno("getattr", p, err)
	}
	n.fill(fi, &out.Attr)
	return 0
}

// Setattr changes the size. Kayo FS keeps no owner, mode or times beyond
// the modification time its writes set: a request to change the mode or
// owner to anything but what Getattr reports is refused (EPERM, as vfat
// does); times are accepted and not kept, so touch and cp work.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	p := n.path()
	isDir := n.StableAttr().Mode&syscall.S_IFMT == syscall.S_IFDIR
	if m, ok := in.GetMode(); ok {
		want := uint32(0o644)
		if isDir {
			want = 0o755
		}
		if m&0o7777 != want {
			return syscall.EPERM
		}
	}
	if uid, ok := in.GetUID(); ok && uid != 0 {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != 0 {
		return syscall.EPERM
	}
	if size, ok := in.GetSize(); ok {
		if isDir {
			return syscall.EISDIR
		}
		f, err := n.file(fh, p)
		if err != nil {
			return n.fsys.errno("truncate", p, err)
		}
		if err := n.flush(); err != nil {
			return n.fsys.errno("truncate", p, err)
		}
		if err := f.Truncate(int64(size)); err != nil {
			return n.fsys.errno("truncate", p, err)
		}
	}
	return n.getattr(fh, out)
}

// file is the open kayofs file of fh, or path opened anew.
func (n *node) file(fh fs.FileHandle, p string) (*kayofs.File, error) {
	if h, ok := fh.(*handle); ok {
		return h.f, nil
	}
	return n.fsys.v.Open(p)
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if e := n.fsys.enter(); e != 0 {
		return nil, e
	}
	defer n.fsys.leave()
	p := n.path()
	fis, err := n.fsys.v.ReadDir(p)
	if err != nil {
		return nil, n.fsys.errno("readdir", p, err)
	}
	ents := make([]fuse.DirEntry, 0, len(fis)+2)
	ents = append(ents, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR})
	for _, fi := range fis {
		mode := uint32(syscall.S_IFREG)
		if fi.IsDir {
			mode = syscall.S_IFDIR
		}
		ents = append(ents, fuse.DirEntry{Name: fi.Name, Ino: uint64(fi.Ino), Mode: mode})
	}
	return fs.NewListDirStream(ents), 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := n.fsys.enter(); e != 0 {
		return nil, e
	}
	defer n.fsys.leave()
	p := n.child(name)
	if err := n.fsys.v.Mkdir(p); err != nil {
		return nil, n.fsys.errno("mkdir", p, err)
	}
	fi, err := n.fsys.v.Stat(p)
	if err != nil {
		return nil, n.fsys.errno("mkdir", p, err)
	}
	return n.newChild(ctx, fi, out), 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := n.fsys.enter(); e != 0 {
		return nil, nil, 0, e
	}
	defer n.fsys.leave()
	p := n.child(name)
	f, err := n.fsys.v.Create(p)
	if err != nil && errors.Is(err, kayofs.ErrExist) && flags&syscall.O_EXCL == 0 {
		// created by another node since the kernel looked: open it
		f, err = n.fsys.v.Open(p)
		if err == nil && flags&syscall.O_TRUNC != 0 {
			err = f.Truncate(0)
		}
	}
	if err != nil {
		return nil, nil, 0, n.fsys.errno("create", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, n.fsys.errno("create", p, err)
	}
	fi.Name = name
	ch := n.newChild(ctx, fi, out)
	return ch, &handle{n: ch.Operations().(*node), f: f}, 0, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if e := n.fsys.enter(); e != 0 {
		return nil, 0, e
	}
	defer n.fsys.leave()
	p := n.path()
	f, err := n.fsys.v.Open(p)
	if err != nil {
		return nil, 0, n.fsys.errno("open", p, err)
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := n.flush(); err != nil {
			return nil, 0, n.fsys.errno("open", p, err)
		}
		if err := f.Truncate(0); err != nil {
			return nil, 0, n.fsys.errno("open", p, err)
		}
	}
	// No FOPEN_KEEP_CACHE: the kernel drops its cached data of the file
	// at every open, so what another node wrote before is read.
	return &handle{n: n, f: f}, 0, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	p := n.child(name)
	if ch := n.GetChild(name); ch != nil {
		if c, ok := ch.Operations().(*node); ok {
			c.discard()
		}
	}
	return n.fsys.errno("unlink", p, n.fsys.v.Remove(p))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	p := n.child(name)
	fi, err := n.fsys.v.Stat(p)
	if err != nil {
		return n.fsys.errno("rmdir", p, err)
	}
	if !fi.IsDir {
		return syscall.ENOTDIR
	}
	return n.fsys.errno("rmdir", p, n.fsys.v.Remove(p))
}

// Rename moves a file or directory; an existing file at the target is
// replaced. RENAME_NOREPLACE and RENAME_EXCHANGE are refused (EINVAL):
// kayofs has no atomic form of them, and mv falls back to a plain rename.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	if flags != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	from, to := n.child(name), np.child(newName)
	if ch := n.GetChild(name); ch != nil {
		if c, ok := ch.Operations().(*node); ok {
			if err := c.flush(); err != nil {
				return n.fsys.errno("rename", from, err)
			}
		}
	}
	return n.fsys.errno("rename", from+" → "+to, n.fsys.v.Rename(from, to))
}

// Statfs reports the volume's space (df). Kayo FS's inode table is fixed
// at format time; its use is not counted here, so df -i shows no figures.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	if e := n.fsys.enter(); e != 0 {
		return e
	}
	defer n.fsys.leave()
	st, err := n.fsys.v.Stats()
	if err != nil {
		return n.fsys.errno("statfs", "", err)
	}
	bs := uint64(st.BlockSize)
	out.Bsize = uint32(bs)
	out.Frsize = uint32(bs)
	out.Blocks = uint64(st.TotalBytes) / bs
	out.Bfree = uint64(st.FreeBytes) / bs
	out.Bavail = out.Bfree
	out.NameLen = kayofs.MaxNameLen
	return 0
}

// logWriter turns go-fuse's log lines into Options.Logf calls.
type logWriter func(string, ...any)

func (w logWriter) Write(p []byte) (int, error) {
	w("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newLogger(logf func(string, ...any)) *log.Logger { return log.New(logWriter(logf), "", 0) }
