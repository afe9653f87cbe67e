package kayofs

import (
	"fmt"
	"math/rand"
	"reflect"
	"testing"
)

// viewOf returns mount v's cached namespace view (loading it as an
// operation would) and one decoded from scratch from the disk.
func viewOf(t *testing.T, v *Volume) (cached, disk map[uint32]dirent, kids map[uint32]map[string]uint32, diskKids map[uint32]map[string]uint32) {
	t.Helper()
	tx := v.newTxn()
	defer tx.release()
	tx.lockNSOp()
	if err := tx.lock(keyNS, false); err != nil {
		t.Fatal(err)
	}
	c, err := tx.loadNS()
	if err != nil {
		t.Fatal(err)
	}
	// version 5: other mounts' fast changes reach the view as a reader's
	// do, directory class by class (dirdom.go)
	for x := uint32(0); v.sbl().DirDomains() && x < MaxSlots; x++ {
		if err := tx.dirFresh(c, x*inoChunk); err != nil {
			t.Fatal(err)
		}
	}
	v.nsv.mu.Lock()
	keep := v.nsv.c
	v.nsv.c = nil
	v.nsv.mu.Unlock()
	tx2 := v.newTxn()
	d, err := tx2.loadNS()
	if err != nil {
		t.Fatal(err)
	}
	v.nsv.mu.Lock()
	v.nsv.c = keep
	v.nsv.mu.Unlock()
	prune := func(m map[uint32]map[string]uint32) map[uint32]map[string]uint32 {
		out := map[uint32]map[string]uint32{}
		for k, s := range m {
			if len(s) > 0 {
				out[k] = s
			}
		}
		return out
	}
	return c.ents, d.ents, prune(c.children), prune(d.children)
}

// Namespace views stay equal to the disk while two mounts take turns
// changing it: own commits update the view in place, the other mount's
// changes are merged block by block.
func TestNSCacheFollowsBothMounts(t *testing.T) {
	for _, ver := range []int{FormatVersion, 4} {
		t.Run(fmt.Sprintf("v%d", ver), func(t *testing.T) { nsCacheFollows(t, ver) })
	}
}

func nsCacheFollows(t *testing.T, ver int) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2, Version: ver})
	vs := []*Volume{mustMount(t, dev, "A"), mustMount(t, dev, "B")}
	defer vs[0].Unmount()
	defer vs[1].Unmount()
	rng := rand.New(rand.NewSource(7))
	names := func() string { return fmt.Sprintf("d%d", rng.Intn(6)) }
	ops := []struct {
		name string
		do   func(v *Volume) error
	}{
		{"mkdir", func(v *Volume) error { return v.Mkdir(names()) }},
		{"create", func(v *Volume) error {
			_, err := v.Create(names() + fmt.Sprintf("/f%d", rng.Intn(30)))
			return err
		}},
		{"remove", func(v *Volume) error { return v.Remove(names() + fmt.Sprintf("/f%d", rng.Intn(30))) }},
		{"rmdir", func(v *Volume) error { return v.Remove(names()) }},
		{"rename", func(v *Volume) error {
			return v.Rename(names()+fmt.Sprintf("/f%d", rng.Intn(30)), names()+fmt.Sprintf("/f%d", rng.Intn(30)))
		}},
	}
	for i := 0; i < 600; i++ {
		op := ops[rng.Intn(len(ops))]
		_ = op.do(vs[rng.Intn(2)]) // ErrExist, ErrNotExist, ... are part of the mix
		for _, v := range vs {
			c, d, ck, dk := viewOf(t, v)
			if !reflect.DeepEqual(c, d) || !reflect.DeepEqual(ck, dk) {
				t.Fatalf("op %d (%s): mount %s's view differs from the disk:\n%v\n%v", i, op.name, v.Node(), c, d)
			}
		}
	}
	mustCheck(t, dev)
}
