package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Event kinds.
const (
	EventHostRegistered   = "host.registered"
	EventHostUpdated      = "host.updated"
	EventHostRemoved      = "host.removed"
	EventClusterFormed    = "cluster.formed"
	EventClusterUpdated   = "cluster.updated"
	EventClusterDestroyed = "cluster.destroyed"
	EventNodeAdded        = "cluster.node_added"
	EventNodeRemoved      = "cluster.node_removed"
)

// Event is one entry of the append-only history. It is written in the same
// commit as the change it records, so history and state never disagree.
type Event struct {
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"`
	Cluster string            `json:"cluster,omitempty"`
	Subject string            `json:"subject"`
	Detail  map[string]string `json:"detail,omitempty"`
	// Revision is the store revision of the commit that wrote it: a total
	// order across processes.
	Revision int64 `json:"-"`
}

// eventOp returns the write of ev. Keys are unique without a shared counter
// (which would make every commit contend on one key); order comes from the
// commit revision.
func (e *Engine) eventOp(ev Event) store.Op {
	ev.Time = e.now().UTC()
	// The sequence orders events written by one commit; the random part
	// keeps keys of concurrent processes apart.
	key := fmt.Sprintf("%s%020d-%08d-%s", eventsPrefix, ev.Time.UnixNano(), e.eventSeq.Add(1), randomHex(4))
	return putJSON(key, ev)
}

// Events returns the history in commit order.
func (e *Engine) Events(ctx context.Context) ([]Event, error) {
	kvs, _, err := e.st.List(ctx, eventsPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(kvs))
	for _, kv := range kvs {
		var ev Event
		if err := decode(kv, &ev); err != nil {
			return nil, err
		}
		ev.Revision = kv.CreateRevision
		out = append(out, ev)
	}
	// List returned key order, which orders events within one commit.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}
