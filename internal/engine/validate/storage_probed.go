package validate

import (
	"fmt"
	"maps"
	"slices"
	"sort"
)

// TestDiskAccess is the Storage test of the nodes' own access to each
// shared volume's LUN (the agents' storage probes).
const TestDiskAccess = "Validate Disk Access"

// StorageInput is what the nodes' agents found of the cluster's shared
// volumes (internal/storageprobe): with it the Storage category is judged
// from their probes instead of the embedded SAN's design.
type StorageInput struct {
	Volumes []StorageVolume
	// Probes holds each probing node's latest fresh round, by node.
	Probes map[string][]StorageResult
}

// StorageVolume is one shared volume of the cluster.
type StorageVolume struct {
	ID, Letter string
	LUN        string // how messages name its LUN, e.g. `lun "lun0"`
}

// StorageResult is one node's probe of one volume's LUN.
type StorageResult struct {
	Volume, Path  string
	Seen          bool
	UUID          string
	SizeBytes     int64
	FSBytes       int64
	OldFormat     bool // format version 1: no lease or validation area
	Leased, Wrote bool
	ReadFrom      []string
	Error         string
}

func probedStorageTests(e *env) []Test {
	return []Test{probedSharedStorageTest(e), probedDiskAccessTest(e)}
}

// storageScan walks every (node, volume) pair: silent nodes, pairs without
// a result, and the results.
func storageScan(e *env, each func(n string, v StorageVolume, r StorageResult)) (silent, missing []string) {
	st := e.in.Storage
	for _, n := range e.nodes {
		rs, ok := st.Probes[n.name]
		if !ok {
			silent = append(silent, n.name)
			continue
		}
		for _, v := range st.Volumes {
			i := slices.IndexFunc(rs, func(r StorageResult) bool { return r.Volume == v.ID })
			if i < 0 {
				missing = append(missing, fmt.Sprintf("%q of volume %s:", n.name, v.Letter))
				continue
			}
			each(n.name, v, rs[i])
		}
	}
	sort.Strings(silent)
	return silent, missing
}

// unchecked is the clause for nodes and pairs without data: never a pass.
func unchecked(silent, missing []string) []string {
	var clauses []string
	if len(silent) > 0 {
		clauses = append(clauses, fmt.Sprintf("%s %s no storage probes (no node agent probing)", quotedNames(silent), oneOrMany(len(silent), "reports", "report")))
	}
	if len(missing) > 0 {
		clauses = append(clauses, "no probe result from "+joinAnd(missing))
	}
	return clauses
}

func volumeLetters(vs []StorageVolume) string {
	ls := make([]string, len(vs))
	for i, v := range vs {
		ls[i] = v.Letter + ":"
	}
	return joinAnd(ls)
}

// probedSharedStorageTest: every node sees each volume's LUN, holding the
// volume (its Kayo FS UUID), with the same size everywhere.
func probedSharedStorageTest(e *env) Test {
	st := e.in.Storage
	if len(st.Volumes) == 0 {
		return probed(test(storage, TestSharedStorage, AttrNodes, Passed,
			"the cluster has no shared volume yet; each node's agent probes every volume's LUN once one exists"))
	}
	var failed []string
	sizes := map[string]map[int64][]string{} // volume → size → nodes
	silent, missing := storageScan(e, func(n string, v StorageVolume, r StorageResult) {
		switch {
		case !r.Seen:
			failed = append(failed, fmt.Sprintf("node %q does not see the LUN of volume %s: (%s, at %s here: %s)", n, v.Letter, v.LUN, r.Path, r.Error))
		case r.UUID != v.ID:
			failed = append(failed, fmt.Sprintf("node %q finds at %s, the LUN of volume %s: (%s), %s", n, r.Path, v.Letter, v.LUN, r.Error))
		case r.SizeBytes < r.FSBytes:
			failed = append(failed, fmt.Sprintf("node %q sees the LUN of volume %s: smaller than the volume: %s", n, v.Letter, r.Error))
		default:
			if sizes[v.ID] == nil {
				sizes[v.ID] = map[int64][]string{}
			}
			sizes[v.ID][r.SizeBytes] = append(sizes[v.ID][r.SizeBytes], n)
		}
	})
	for _, v := range st.Volumes {
		if len(sizes[v.ID]) > 1 {
			var each []string
			for _, sz := range slices.Sorted(maps.Keys(sizes[v.ID])) {
				each = append(each, fmt.Sprintf("%d bytes on %s", sz, quotedNames(sizes[v.ID][sz])))
			}
			failed = append(failed, fmt.Sprintf("the LUN of volume %s: (%s) differs in size across nodes: %s", v.Letter, v.LUN, joinAnd(each)))
		}
	}
	switch {
	case len(failed) > 0:
		return probed(test(storage, TestSharedStorage, AttrNodes, Failed,
			problems(failed)+"; every node must see each shared volume's LUN, holding the volume, with the same size"))
	case len(silent) > 0 || len(missing) > 0:
		return probed(test(storage, TestSharedStorage, AttrNodes, Warning, problems(unchecked(silent, missing))+"; those nodes' access is unchecked"))
	}
	return probed(test(storage, TestSharedStorage, AttrNodes, Passed,
		fmt.Sprintf("%s see the LUN of %s %s, each with its Kayo FS and the same size everywhere",
			plural(len(e.nodes), "node"), oneOrMany(len(st.Volumes), "volume", "volumes"), volumeLetters(st.Volumes))))
}

// probedDiskAccessTest: every node takes and releases a lease on each
// volume's LUN, writes its block in the validation area and reads back
// the blocks the other nodes wrote.
func probedDiskAccessTest(e *env) Test {
	st := e.in.Storage
	if len(st.Volumes) == 0 {
		return probed(test(storage, TestDiskAccess, AttrNodes, Passed,
			"the cluster has no shared volume yet; each node's agent tests its access once one exists"))
	}
	wrote := map[string][]string{} // volume → nodes whose block is written
	for n, rs := range st.Probes {
		for _, r := range rs {
			if r.Wrote {
				wrote[r.Volume] = append(wrote[r.Volume], n)
			}
		}
	}
	var failed, pending []string
	silent, missing := storageScan(e, func(n string, v StorageVolume, r StorageResult) {
		switch {
		case !r.Seen || r.UUID != v.ID:
			failed = append(failed, fmt.Sprintf("node %q cannot access volume %s: (%s)", n, v.Letter, r.Error))
		case r.OldFormat:
			pending = append(pending, fmt.Sprintf("node %q cannot test its access to volume %s: (%s)", n, v.Letter, r.Error))
		case !r.Leased:
			failed = append(failed, fmt.Sprintf("node %q could not take a lease on the LUN of volume %s: (%s)", n, v.Letter, r.Error))
		case !r.Wrote || r.Error != "":
			failed = append(failed, fmt.Sprintf("node %q could not write and read back its block on volume %s: (%s)", n, v.Letter, r.Error))
		default:
			var unread []string
			for _, o := range wrote[v.ID] {
				if o != n && !slices.Contains(r.ReadFrom, o) {
					unread = append(unread, o)
				}
			}
			if len(unread) > 0 {
				sort.Strings(unread)
				pending = append(pending, fmt.Sprintf("node %q has not yet read the %s of %s on volume %s: (its next probe will)",
					n, oneOrMany(len(unread), "block", "blocks"), quotedNames(unread), v.Letter))
			}
		}
	})
	switch {
	case len(failed) > 0:
		return probed(test(storage, TestDiskAccess, AttrNodes, Failed,
			problems(failed)+"; every node must lease, write and read each shared volume's LUN"))
	case len(silent) > 0 || len(missing) > 0 || len(pending) > 0:
		return probed(test(storage, TestDiskAccess, AttrNodes, Warning,
			problems(append(unchecked(silent, missing), pending...))+"; that access is unchecked"))
	}
	return probed(test(storage, TestDiskAccess, AttrNodes, Passed,
		fmt.Sprintf("%s each took and released a lease on the LUN of %s %s, wrote a block in its validation area and read back every other node's",
			plural(len(e.nodes), "node"), oneOrMany(len(st.Volumes), "volume", "volumes"), volumeLetters(st.Volumes))))
}
