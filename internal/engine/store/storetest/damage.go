package storetest

import (
	"math/rand/v2"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Page classes of a bbolt file, as Pages reports them.
const (
	PageMeta0    = "meta0"
	PageMeta1    = "meta1"
	PageFreelist = "freelist"
	PageBranch   = "branch"
	PageLeaf     = "leaf"
	// PageOverflow is the first page of an element larger than a page
	// (a leaf page with overflow pages after it).
	PageOverflow = "overflow"
)

// Pages walks the bbolt file at path with bbolt's own page walking
// (Tx.Page) and returns its page size and the page IDs of each class.
// Free pages are left out. The file must not be open for writing.
func Pages(t testing.TB, path string) (pageSize int, classes map[string][]int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatalf("pages of %s: %v", path, err)
	}
	defer func() { _ = db.Close() }()
	classes = map[string][]int{PageMeta0: {0}, PageMeta1: {1}}
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			class := p.Type
			if p.Type == "leaf" && p.OverflowCount > 0 {
				class = PageOverflow
			}
			switch class {
			case PageFreelist, PageBranch, PageLeaf, PageOverflow:
				classes[class] = append(classes[class], id)
			}
			id += p.OverflowCount
		}
	})
	if err != nil {
		t.Fatalf("pages of %s: %v", path, err)
	}
	return db.Info().PageSize, classes
}

// Scribble overwrites page id of the file at path with random bytes from
// a generator seeded with seed.
func Scribble(t testing.TB, path string, pageSize, id int, seed uint64) {
	t.Helper()
	buf := make([]byte, pageSize)
	r := rand.New(rand.NewPCG(seed, uint64(id)))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(buf, int64(id)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}
