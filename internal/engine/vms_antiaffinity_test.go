package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// VMs of one class created at the same time with anti_affinity_mode =
// "required" land on distinct nodes: each placement reads the nodes'
// records and its commit compares the record of the node it chose, so two
// choosing one node conflict and the loser places again.
func TestRequiredAntiAffinityUnderConcurrentCreates(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		e, vol := vmEnv(t, seedSpec(y21, 21), seedSpec(y22, 22), seedSpec(y23, 23))
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := vmSpec(vol, fmt.Sprintf("WEB%d", i), 2048)
				s.AntiAffinityClass, s.AntiAffinityMode, s.State = "web", "required", VMOff
				_, errs[i] = e.CreateVM(ctx, s)
			}()
		}
		wg.Wait()
		seen := map[string]string{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: WEB%d: %v", round, i, err)
			}
			vm, err := e.GetVM(ctx, "HVCLUSTER", fmt.Sprintf("WEB%d", i))
			if err != nil {
				t.Fatal(err)
			}
			if other, ok := seen[vm.Node]; ok {
				t.Fatalf("round %d: %s and %s both on %s despite anti_affinity_mode = \"required\"", round, other, vm.Name, vm.Node)
			}
			seen[vm.Node] = vm.Name
		}
	}
}
