package engine_test

import (
	"context"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// The executors of the engine's tests (executors_test.go).
func init() {
	engine.SetTestExecutors(
		func(ctx context.Context, e *engine.Engine, node, id string, hook func(op, phase string)) engine.Executor {
			return workexec.StartLocal(ctx, e, workexec.Config{Node: node, Hook: hook}, id)
		},
		func(ctx context.Context, e *engine.Engine, node string, logf func(string, ...any), hook func(op, phase string)) error {
			return workexec.New(e, workexec.Config{Node: node, Logf: logf, Hook: hook}).Run(ctx)
		})
}
