package kayotorture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Op is one logged operation.
type Op struct {
	Seq   int
	Kind  string // C, G, R, D
	ID    string
	Arg   string
	Acked bool
	Err   string
}

// NodeLog is what one node's log says it did.
type NodeLog struct {
	Node  string
	Ops   []Op
	Done  bool
	Lines []string // every line of the log that is not a KT line (the lease manager's, errors)
}

// Acked counts the node's acknowledged operations.
func (l *NodeLog) Acked() int {
	n := 0
	for _, o := range l.Ops {
		if o.Acked {
			n++
		}
	}
	return n
}

// ParseLog reads one node's console.
func ParseLog(r io.Reader) (*NodeLog, error) {
	l := &NodeLog{}
	bySeq := map[int]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		i := strings.Index(line, Marker+" ")
		if i < 0 {
			l.Lines = append(l.Lines, line)
			continue
		}
		f := strings.Fields(line[i+len(Marker)+1:])
		if len(f) < 2 {
			continue
		}
		if l.Node == "" {
			l.Node = f[1]
		}
		switch {
		case f[0] == "DONE":
			l.Done = true
		case f[0] == "TRY" && len(f) == 6:
			seq, err := strconv.Atoi(f[2])
			if err != nil {
				return nil, fmt.Errorf("kayotorture: bad line %q", line)
			}
			bySeq[seq] = len(l.Ops)
			l.Ops = append(l.Ops, Op{Seq: seq, Kind: f[3], ID: f[4], Arg: f[5]})
		case (f[0] == "ACK" || f[0] == "ERR") && len(f) >= 3:
			seq, err := strconv.Atoi(f[2])
			k, ok := bySeq[seq]
			if err != nil || !ok {
				return nil, fmt.Errorf("kayotorture: %s of an operation never tried: %q", f[0], line)
			}
			if f[0] == "ACK" {
				l.Ops[k].Acked = true
			} else {
				l.Ops[k].Err = strings.Join(f[3:], " ")
			}
		}
	}
	return l, sc.Err()
}

// fileState is what Verify expects of one file id.
type fileState struct {
	path  string
	size  int64 // acknowledged size
	alive bool
	// maybe: the last operation on it was not acknowledged (in flight at
	// a crash, or refused): either outcome is allowed.
	maybe *Op
}

// ErrLost: an acknowledged operation is not on the volume.
var ErrLost = errors.New("kayotorture: acknowledged operation lost")

// Verify checks v against the logs: every acknowledged create, grow,
// rename and delete is there with the content written, and a node's
// directory holds nothing its log does not explain. It returns a summary.
func Verify(v *kayofs.Volume, logs []*NodeLog) (string, error) {
	var errs []error
	var sum []string
	for _, l := range logs {
		files := map[string]*fileState{}
		var order []string
		for i := range l.Ops {
			o := &l.Ops[i]
			f := files[o.ID]
			if f == nil {
				f = &fileState{}
				files[o.ID] = f
				order = append(order, o.ID)
			}
			if !o.Acked {
				f.maybe = o
				continue
			}
			f.maybe = nil
			switch o.Kind {
			case "C":
				f.size, _ = strconv.ParseInt(o.Arg, 10, 64)
				f.alive = true
				f.path = path.Join(l.Node, "f"+o.ID[strings.LastIndex(o.ID, ".")+1:])
			case "G":
				f.size, _ = strconv.ParseInt(o.Arg, 10, 64)
			case "R":
				f.path = o.Arg
			case "D":
				f.alive = false
			}
		}
		seen := map[string]bool{}
		for _, id := range order {
			f := files[id]
			paths := []string{f.path}
			var m *Op
			if f.maybe != nil {
				m = f.maybe
				switch m.Kind {
				case "C":
					paths = []string{path.Join(l.Node, "f"+id[strings.LastIndex(id, ".")+1:])}
				case "R":
					paths = append(paths, m.Arg)
				}
			}
			found := ""
			for _, p := range paths {
				if p == "" {
					continue
				}
				if _, err := v.Stat(p); err == nil {
					found = p
					seen[p] = true
				}
			}
			switch {
			case !f.alive && m == nil && found != "":
				errs = append(errs, fmt.Errorf("%w: %s: %s deleted (acknowledged) but %s exists", ErrLost, l.Node, id, found))
			case !f.alive:
			case found == "" && !(m != nil && m.Kind == "D"):
				errs = append(errs, fmt.Errorf("%w: %s: %s (acknowledged at %s, %d bytes) is missing", ErrLost, l.Node, id, f.path, f.size))
			case found != "":
				if err := readBack(v, found, id, 0, f.size); err != nil {
					errs = append(errs, fmt.Errorf("%w: %s: %s: %v", ErrLost, l.Node, id, err))
				}
			}
		}
		ents, err := v.ReadDir(l.Node)
		if err != nil && !errors.Is(err, kayofs.ErrNotExist) {
			errs = append(errs, err)
		}
		var extra []string
		for _, e := range ents {
			if p := path.Join(l.Node, e.Name); !seen[p] {
				extra = append(extra, p)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			errs = append(errs, fmt.Errorf("kayotorture: %s: files no operation explains: %s", l.Node, strings.Join(extra, ", ")))
		}
		sum = append(sum, fmt.Sprintf("%s: %d operations acknowledged, %d files verified", l.Node, l.Acked(), len(seen)))
	}
	return strings.Join(sum, "; "), errors.Join(errs...)
}
