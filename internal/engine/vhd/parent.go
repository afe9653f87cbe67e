package vhd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// Parent locator platform codes (VHD specification, "Parent Locator
// Entries"): Windows paths stored as UTF-16LE, relative to the child's
// directory (W2ru) or absolute (W2ku).
const (
	PlatformW2ru = "W2ru"
	PlatformW2ku = "W2ku"

	locatorCount = 8
	locatorSize  = 24
	nameOff      = 64  // header offset of the parent unicode name
	nameLen      = 512 // its size: 256 UTF-16BE code units
	locatorOff   = 576 // header offset of the first parent locator entry
	// maxChain bounds parent lookups so a cycle of locators cannot loop.
	maxChain = 32
	// maxLocatorData bounds a locator's path bytes (a Windows path is at
	// most 32767 UTF-16 code units).
	maxLocatorData = 64 << 10
)

// Errors about a differencing disk's parent, wrapped in a *ParentError.
var (
	ErrParentMismatch = errors.New("vhd: parent's UUID does not match the one the differencing disk records")
	ErrParentRequired = errors.New("vhd: a differencing disk needs its parent: open it with OpenChain")
	// ErrNotDifferencing: ReadParent was given a fixed or dynamic disk.
	ErrNotDifferencing = errors.New("vhd: not a differencing disk")
)

// ParentError says which parent of a differencing disk could not be used
// and why: Err is the opener's error (e.g. wrapping fs.ErrNotExist),
// ErrParentMismatch, ErrCorrupt or ErrParentRequired.
type ParentError struct {
	// Path is the parent's Windows-style path relative to the directory
	// of the disk OpenChain or CreateChild was given.
	Path string
	// Want is the UUID the child records; Got the parent's footer UUID
	// (zero unless Err is ErrParentMismatch).
	Want, Got UUID
	Err       error
}

func (e *ParentError) Error() string {
	if errors.Is(e.Err, ErrParentMismatch) {
		return fmt.Sprintf("vhd: parent %q has UUID %v, the differencing disk expects %v (the parent was replaced or is not the disk it was made from)", e.Path, e.Got, e.Want)
	}
	return fmt.Sprintf("vhd: parent %q of differencing disk: %v", e.Path, e.Err)
}

func (e *ParentError) Unwrap() error { return e.Err }

// ParentOpener opens a parent image for reading. path is Windows style
// (`..\templates\base.vhd`), relative to the directory of the child
// first given to OpenChain or CreateChild (chains are resolved step by
// step, so a grandparent's path is still relative to that directory),
// or absolute when the child records only an absolute locator. It
// returns the file and its length; a file that is an io.Closer is closed
// by Disk.Close.
type ParentOpener func(path string) (File, int64, error)

// DirOpener opens parents as local files relative to dir (the child's
// directory), read-only.
func DirOpener(dir string) ParentOpener {
	return func(path string) (File, int64, error) {
		p := filepath.FromSlash(strings.ReplaceAll(path, `\`, "/"))
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
}

// Locator is a parent locator entry of a dynamic disk header.
type Locator struct {
	Code   [4]byte
	Space  uint32 // reserved bytes (Hyper-V writes bytes; the spec says sectors)
	Length uint32 // bytes of path data
	Offset uint64 // file offset of the path data
}

// Locators returns the header's used parent locator entries.
func (h *Header) Locators() []Locator {
	var ls []Locator
	for i := 0; i < locatorCount; i++ {
		b := h.rest[locatorOff-60+i*locatorSize:]
		var l Locator
		copy(l.Code[:], b[0:4])
		if l.Code == ([4]byte{}) {
			continue
		}
		be := binary.BigEndian
		l.Space, l.Length, l.Offset = be.Uint32(b[4:]), be.Uint32(b[8:]), be.Uint64(b[16:])
		ls = append(ls, l)
	}
	return ls
}

func (h *Header) setLocator(i int, l Locator) {
	b := h.rest[locatorOff-60+i*locatorSize:]
	be := binary.BigEndian
	copy(b[0:4], l.Code[:])
	be.PutUint32(b[4:], l.Space)
	be.PutUint32(b[8:], l.Length)
	be.PutUint32(b[12:], 0)
	be.PutUint64(b[16:], l.Offset)
}

// ParentName is the header's parent unicode name (UTF-16BE, up to the
// first NUL).
func (h *Header) ParentName() string {
	b := h.rest[nameOff-60 : nameOff-60+nameLen]
	u := make([]uint16, 0, nameLen/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.BigEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

func (h *Header) setParentName(s string) error {
	u := utf16.Encode([]rune(s))
	if len(u)*2 > nameLen {
		return fmt.Errorf("vhd: parent name %q is longer than the header's %d UTF-16 code units", s, nameLen/2)
	}
	b := h.rest[nameOff-60 : nameOff-60+nameLen]
	clear(b)
	for i, c := range u {
		binary.BigEndian.PutUint16(b[i*2:], c)
	}
	return nil
}

func utf16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, len(u)*2)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[i*2:], c)
	}
	return b
}

func fromUTF16LE(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[i*2:])
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}

// locatorPath reads a locator's path data from f.
func locatorPath(f io.ReaderAt, l Locator, fileSize int64) (string, error) {
	if l.Length == 0 || l.Length > maxLocatorData || l.Length%2 != 0 {
		return "", fmt.Errorf("%w: parent locator %q has %d bytes of path data", ErrCorrupt, l.Code[:], l.Length)
	}
	if l.Offset%SectorSize != 0 || l.Offset > uint64(fileSize) || int64(l.Offset)+int64(l.Length) > fileSize-FooterSize {
		return "", fmt.Errorf("%w: parent locator %q data at %d (%d bytes) is outside the file (%d bytes)", ErrCorrupt, l.Code[:], l.Offset, l.Length, fileSize)
	}
	b := make([]byte, l.Length)
	if err := readFull(f, b, int64(l.Offset)); err != nil {
		return "", err
	}
	return fromUTF16LE(b), nil
}

// parentPath picks the path to open a child's parent by: the relative
// locator (W2ru) if any, else the absolute one (W2ku), else the parent
// unicode name. It also returns the locators' data extents.
func parentPath(f io.ReaderAt, h *Header, fileSize int64) (path string, relative bool, err error) {
	var abs string
	for _, l := range h.Locators() {
		switch string(l.Code[:]) {
		case PlatformW2ru, PlatformW2ku:
			p, err := locatorPath(f, l, fileSize)
			if err != nil {
				return "", false, err
			}
			if string(l.Code[:]) == PlatformW2ru && path == "" {
				path = p
			} else if abs == "" {
				abs = p
			}
		}
	}
	switch {
	case path != "":
		return path, true, nil
	case abs != "":
		return abs, false, nil
	}
	if n := h.ParentName(); n != "" {
		return n, !isAbsWin(n), nil
	}
	return "", false, fmt.Errorf("%w: differencing disk has no parent locator and no parent name", ErrCorrupt)
}

// isAbsWin reports whether p is an absolute Windows path (C:\…, \\server\…
// or \…).
func isAbsWin(p string) bool {
	return strings.HasPrefix(p, `\`) || len(p) >= 2 && p[1] == ':'
}

// normRel validates a parent path given to CreateChild and returns it in
// Windows form with `\` separators: relative, not empty, no drive letter.
func normRel(p string) (string, error) {
	w := strings.ReplaceAll(p, "/", `\`)
	if w == "" || isAbsWin(w) {
		return "", fmt.Errorf("vhd: parent path %q must be a relative Windows path such as `..\\templates\\base.vhd`", p)
	}
	c := cleanWin(w)
	if c == "." || strings.HasSuffix(c, `\..`) || c == ".." {
		return "", fmt.Errorf("vhd: parent path %q does not name a file", p)
	}
	if !strings.HasPrefix(c, `..\`) {
		c = `.\` + c // as Hyper-V writes relative locators
	}
	return c, nil
}

// cleanWin is path.Clean for `\`-separated relative paths; leading ".."
// elements are kept.
func cleanWin(p string) string {
	var out []string
	for _, e := range strings.Split(p, `\`) {
		switch e {
		case "", ".":
		case "..":
			if len(out) > 0 && out[len(out)-1] != ".." {
				out = out[:len(out)-1]
			} else {
				out = append(out, "..")
			}
		default:
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return "."
	}
	return strings.Join(out, `\`)
}

// joinWin resolves rel, a path relative to the file at base, into a path
// relative to base's own starting directory.
func joinWin(base, rel string) string {
	dir := "."
	if i := strings.LastIndex(base, `\`); i >= 0 {
		dir = base[:i]
	}
	return cleanWin(dir + `\` + rel)
}

// openParent opens the parent of the differencing disk d (whose path,
// relative to the chain's starting directory, is self; "" for the
// first), checks its UUID and attaches it, recursively.
func (d *Disk) openParent(open ParentOpener, self string, depth int) error {
	p, rel, err := parentPath(d.f, d.hdr, d.fileSize)
	if err != nil {
		return err
	}
	if rel && self != "" {
		p = joinWin(self, p)
	} else if rel {
		p = cleanWin(p)
	}
	d.parentPath = p
	perr := func(err error) error { return &ParentError{Path: p, Want: d.hdr.ParentUUID, Err: err} }
	if open == nil {
		return perr(ErrParentRequired)
	}
	if depth >= maxChain {
		return perr(fmt.Errorf("%w: more than %d differencing disks in a chain (a locator cycle?)", ErrCorrupt, maxChain))
	}
	f, size, err := open(p)
	if err != nil {
		return perr(err)
	}
	pd, err := openImage(f, size)
	if err == nil && pd.footer.UUID != d.hdr.ParentUUID {
		err = &ParentError{Path: p, Want: d.hdr.ParentUUID, Got: pd.footer.UUID, Err: ErrParentMismatch}
	} else if err == nil && pd.footer.DiskType == Differencing {
		err = pd.openParent(open, p, depth+1)
	} else if err != nil {
		err = perr(err)
	}
	if err != nil {
		if c, ok := f.(io.Closer); ok {
			c.Close()
		}
		return err
	}
	d.parent = pd
	return nil
}

// Parent is the open parent of a differencing disk (nil otherwise).
func (d *Disk) Parent() *Disk { return d.parent }

// ParentPath is the path the parent was opened by (relative to the
// directory of the disk OpenChain or CreateChild was given), "" for
// disks without a parent.
func (d *Disk) ParentPath() string { return d.parentPath }

// Close closes the files of the disk's parents that a ParentOpener
// opened (the disk's own file stays the caller's).
func (d *Disk) Close() error {
	var errs []error
	for p := d.parent; p != nil; p = p.parent {
		if c, ok := p.f.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// ParentInfo is what a differencing disk records about its parent.
type ParentInfo struct {
	// Path as recorded: relative to the child's directory (Relative), in
	// cleaned Windows form, or absolute when the child records only an
	// absolute locator.
	Path      string
	Relative  bool
	UUID      UUID   // the parent's footer UUID
	Timestamp uint32 // the parent's footer timestamp at the child's creation
}

// ReadParent reads what the differencing disk in f (fileSize bytes)
// records about its parent, without opening the parent: to find the
// children of a template (e.g. to refuse deleting it, naming them). A
// disk that is not differencing is an error wrapping ErrNotDifferencing.
func ReadParent(f File, fileSize int64) (ParentInfo, error) {
	d, err := openImage(f, fileSize)
	if err != nil {
		return ParentInfo{}, err
	}
	if d.footer.DiskType != Differencing {
		return ParentInfo{}, fmt.Errorf("%w: it is %v", ErrNotDifferencing, d.footer.DiskType)
	}
	p, rel, err := parentPath(f, d.hdr, fileSize)
	if err != nil {
		return ParentInfo{}, err
	}
	if rel {
		p = cleanWin(p)
	}
	return ParentInfo{Path: p, Relative: rel, UUID: d.hdr.ParentUUID, Timestamp: d.hdr.ParentTimestamp}, nil
}

// ResolveParentPath resolves a parent path relative to the child at
// child (both Windows style, e.g. `WEB01\WEB01.vhd` and
// `..\templates\base.vhd`) into a path relative to the child's own
// starting point (`templates\base.vhd`).
func ResolveParentPath(child, parent string) string {
	return joinWin(strings.ReplaceAll(child, "/", `\`), strings.ReplaceAll(parent, "/", `\`))
}
