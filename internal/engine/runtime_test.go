package engine

import (
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// TestRuntimeHoldsOperations: the engines of one runtime see each other's
// running operations as running and a finished one as abandoned at once;
// an engine on another runtime of the same process cannot tell, so it
// trusts the holder's lease, as for another host, and never runs an
// operation twice.
func TestRuntimeHoldsOperations(t *testing.T) {
	now := fixedNow
	clock := func() time.Time { return now }
	st := memstore.New()
	rt := NewRuntime()
	open := func(rt *Runtime) *Engine {
		e, err := openT(Config{Store: st, Clock: clock, Runtime: rt})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, sameRT, otherRT := open(rt), open(rt), open(nil)
	if a.rt != sameRT.rt || a.rt == otherRT.rt {
		t.Fatal("engines opened on one runtime do not share it, or one opened without shares another's")
	}
	p := &Pending{ID: "op1", Holder: a.newHolder()}
	done := a.rt.running(p.ID)
	for name, e := range map[string]*Engine{"its engine": a, "an engine of its runtime": sameRT, "an engine of another runtime": otherRT} {
		if e.abandoned(p) {
			t.Errorf("%s takes a running operation for abandoned", name)
		}
	}
	done()
	if !a.abandoned(p) || !sameRT.abandoned(p) {
		t.Error("a finished operation of the runtime is not abandoned at once for its engines")
	}
	if otherRT.abandoned(p) {
		t.Error("another runtime of the process takes the operation for abandoned before its lease ends")
	}
	now = now.Add(PendingLease + time.Second)
	if !otherRT.abandoned(p) {
		t.Error("past its lease, the operation is not abandoned for another runtime")
	}
	// A holder recorded before runtimes had IDs is judged as this runtime's.
	legacy := &Pending{ID: "op2", Holder: Holder{Host: rt.host, PID: rt.pid, Expires: now.Add(time.Hour)}}
	if !otherRT.abandoned(legacy) {
		t.Error("a legacy holder of this process that no runtime runs is not abandoned")
	}
}
