package engine

import (
	"context"
)

// The engine's tests run internal/nodeagent/workexec's executors, which
// this package cannot import (it imports the engine): executors_ext_test.go
// (package engine_test, compiled into the same test binary) hands them
// over before any test runs.
var testExec struct {
	local func(ctx context.Context, e *Engine, node, id string, hook func(op, phase string)) Executor
	agent func(ctx context.Context, e *Engine, node string, logf func(string, ...any), hook func(op, phase string)) error
}

// SetTestExecutors is how executors_ext_test.go hands the executors over.
func SetTestExecutors(
	local func(ctx context.Context, e *Engine, node, id string, hook func(op, phase string)) Executor,
	agent func(ctx context.Context, e *Engine, node string, logf func(string, ...any), hook func(op, phase string)) error,
) {
	testExec.local, testExec.agent = local, agent
}

// openT is Open with workexec's in-process executors
// (Config.LocalExecutor), each calling e.workHook with a stop of its own.
func openT(cfg Config) (*Engine, error) {
	if cfg.LocalExecutor == nil {
		cfg.LocalExecutor = func(ctx context.Context, e *Engine, node, id string) Executor {
			ctx, stop := context.WithCancel(ctx)
			return testExec.local(ctx, e, node, id, func(op, phase string) {
				if h := e.workHook; h != nil {
					h(id, stop, op, phase)
				}
			})
		}
	}
	return Open(cfg)
}

// runWorkAgent runs a node agent's work executor for node on e until ctx
// ends, calling e.workHook.
func runWorkAgent(ctx context.Context, e *Engine, node string, logf func(string, ...any)) error {
	return testExec.agent(ctx, e, node, logf, func(op, phase string) {
		if h := e.workHook; h != nil {
			h(WorkForAgent, nil, op, phase)
		}
	})
}
