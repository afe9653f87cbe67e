package qemurun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
)

// Live migration in the QEMU executor of a node agent: the source's side
// (migrateOut) and the target's resume. The target's listener is in
// tls.go.

func (q *Runner) migrateOut(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request, res *qemu.Result, report func(hypervisor.Progress)) error {
	if v.m == nil || v.rec.Token != r.Token {
		return fmt.Errorf("VM %q does not run on %s with token %d: %w", r.VM.Name, q.node, r.Token, hypervisor.ErrState)
	}
	if done, _ := v.m.Exited(); done {
		return fmt.Errorf("VM %q: its QEMU on %s exited: %w", r.VM.Name, q.node, hypervisor.ErrState)
	}
	q.refreshState(ctx, v)
	if v.rec.State == hypervisor.Paused {
		if mi, err := v.m.QMP.QueryMigrate(ctx); err == nil && mi.Status == "completed" {
			res.Live = livePlan(mi, nil)
			return nil // done before a crash of the asking process
		}
	}
	if v.rec.State != hypervisor.Running {
		return fmt.Errorf("VM %q on %s is %s, not running: %w", r.VM.Name, q.node, v.rec.State, hypervisor.ErrState)
	}
	key, tls, err := q.migrationKeys(ctx, cluster)
	if err != nil {
		return err
	}
	conn, err := qemu.DialMigration(ctx, r.Addr, r.Port, key, qemuMigrationID(cluster, r.VM.Name, r.Token))
	if err != nil {
		return fmt.Errorf("live migration of VM %q: %w", r.VM.Name, err)
	}
	err = v.m.MigrateTo(ctx, conn, tls)
	_ = conn.Close()
	if err != nil {
		return err
	}
	var rounds []hypervisor.Round
	var lastRound int64
	lastReport := time.Now() // no progress write for a migration done within liveProgressEvery
	mi, err := v.m.QMP.WaitMigration(ctx, 5*time.Millisecond, func(mi qemu.MigrationInfo) {
		if mi.RAM == nil {
			return
		}
		if mi.RAM.DirtySyncCount != lastRound {
			lastRound = mi.RAM.DirtySyncCount
			rounds = append(rounds, hypervisor.Round{N: int(mi.RAM.DirtySyncCount), SentMB: mb(mi.RAM.Transferred), DirtiedMB: mb(mi.RAM.Remaining),
				DurationMs: float64(mi.TotalTime)})
		}
		if time.Since(lastReport) >= liveProgressEvery {
			lastReport = time.Now()
			pct := 0
			if mi.RAM.Total > 0 {
				pct = int(100 * (mi.RAM.Total - mi.RAM.Remaining) / mi.RAM.Total)
			}
			q.cfg.Logf("qemu: %s live migration %s: round %d, %.1f MB sent, %.1f MB remaining, %d%%", r.VM.Name, mi.Status,
				mi.RAM.DirtySyncCount, mb(mi.RAM.Transferred), mb(mi.RAM.Remaining), pct)
			report(hypervisor.Progress{Phase: "pre-copy", Round: int(mi.RAM.DirtySyncCount), Percent: min(pct, 99), RemainingMB: mb(mi.RAM.Remaining)})
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			// Superseded: cancel, and let the source run on if it can
			// (detached: ctx is done, the clean-up must still run).
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = v.m.QMP.Execute(cctx, "migrate_cancel", nil)
			for i := 0; i < 200; i++ {
				mi, err := v.m.QMP.QueryMigrate(cctx)
				if err != nil || (mi.Status != "active" && mi.Status != "cancelling" && mi.Status != "setup" && mi.Status != "device") {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			q.refreshState(cctx, v)
			_ = q.save(cctx, cluster, v)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("live migration of VM %q cancelled: not done by the request's deadline (%s); %s runs it on", r.VM.Name, r.Deadline.Format(time.RFC3339), q.node)
			}
			return fmt.Errorf("live migration of VM %q cancelled: a newer request replaced it", r.VM.Name)
		}
		q.refreshState(ctx, v)
		_ = q.save(ctx, cluster, v)
		return err
	}
	v.rec.State = hypervisor.Paused
	if err := q.save(ctx, cluster, v); err != nil {
		return err
	}
	res.Live = livePlan(mi, rounds)
	q.cfg.Logf("qemu: %s live migration completed: total %d ms, downtime %d ms, %d rounds", r.VM.Name, mi.TotalTime, mi.Downtime, len(res.Live.Rounds))
	report(hypervisor.Progress{Phase: "stop-and-copy", Round: len(res.Live.Rounds), Percent: 100})
	return nil
}

// liveProgressEvery paces a live migration's progress reports: each is a
// commit of the result (an open of the embedded database, shared with the
// driver and the other agents, and an fsync) and a wake-up of the driver,
// which reads it, taking CPU from the two QEMUs the migration runs on.
// Every 100 ms that was 50 of each in a 1 GiB move (bench/qemu_test.go);
// the user sees a line per report (the provider's log), 4 a second.
const liveProgressEvery = 250 * time.Millisecond

func mb(b int64) float64 { return float64(b*100/(1<<20)) / 100 }

func livePlan(mi qemu.MigrationInfo, rounds []hypervisor.Round) *hypervisor.LivePlan {
	p := &hypervisor.LivePlan{Rounds: rounds, DurationMs: mi.TotalTime, DowntimeMs: mi.Downtime, Converged: true}
	if len(p.Rounds) == 0 && mi.RAM != nil {
		p.Rounds = []hypervisor.Round{{N: int(max(mi.RAM.DirtySyncCount, 1)), SentMB: mb(mi.RAM.Transferred), DurationMs: float64(mi.TotalTime)}}
	}
	return p
}

func (q *Runner) resume(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request) error {
	if v.m == nil {
		return fmt.Errorf("VM %q has no QEMU on %s to resume: %w", r.VM.Name, q.node, hypervisor.ErrState)
	}
	if done, _ := v.m.Exited(); done {
		return fmt.Errorf("VM %q: its QEMU on %s exited: %w", r.VM.Name, q.node, hypervisor.ErrState)
	}
	q.refreshState(ctx, v)
	if v.rec.State == hypervisor.Running && v.rec.Token == r.Token {
		return nil
	}
	// A target waits until the stream is loaded (it leaves "inmigrate").
	for v.rec.State == qemu.Incoming {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		q.refreshState(ctx, v)
	}
	if v.rec.State != hypervisor.Paused && v.rec.State != hypervisor.Received {
		return fmt.Errorf("VM %q on %s is %s: nothing to resume: %w", r.VM.Name, q.node, v.rec.State, hypervisor.ErrState)
	}
	// The disk is read afresh (the source may have allocated blocks and
	// changed the BAT since this export opened it), with the new token.
	if err := q.disk(ctx, cluster, v); err != nil {
		return err
	}
	if _, err := v.m.QMP.Execute(ctx, "cont", nil); err != nil {
		return err
	}
	q.cfg.Logf("qemu: %s resumed (token %d)", r.VM.Name, r.Token)
	v.rec.State, v.rec.Token, v.rec.VM, v.rec.Reason = hypervisor.Running, r.Token, r.VM, ""
	return q.save(ctx, cluster, v)
}
