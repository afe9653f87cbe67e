package engine

import (
	"context"
	"sync/atomic"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Metrics counts what an engine touches beyond the cluster database: LUN
// devices opened and hypervisor calls. A read (plan, refresh, data
// sources) must leave both at zero: it works from the database's records
// and the agents' reports alone (volume_reports.go). Pass one in
// Config.Metrics to count; nil counts nothing.
type Metrics struct {
	devicesOpened   atomic.Int64
	hypervisorCalls atomic.Int64
}

// DevicesOpened is how many times a LUN device (or image) was opened.
func (m *Metrics) DevicesOpened() int64 { return m.devicesOpened.Load() }

// HypervisorCalls is how many hypervisor driver calls were made.
func (m *Metrics) HypervisorCalls() int64 { return m.hypervisorCalls.Load() }

func (e *Engine) countDeviceOpen() {
	if e.metrics != nil {
		e.metrics.devicesOpened.Add(1)
	}
}

// openVolumeDevice is openDevice (volumes_lun.go), counted.
func (e *Engine) openVolumeDevice(v Volume) (*kayofs.FileDevice, error) {
	e.countDeviceOpen()
	return openDevice(v)
}

// countedDriver counts every call of the driver it wraps.
type countedDriver struct {
	hypervisor.Driver
	m *Metrics
}

func (e *Engine) counted(d hypervisor.Driver) hypervisor.Driver {
	if e.metrics == nil {
		return d
	}
	return countedDriver{Driver: d, m: e.metrics}
}

func (d countedDriver) call() { d.m.hypervisorCalls.Add(1) }

func (d countedDriver) Status(ctx context.Context, node, name string) (hypervisor.Status, error) {
	d.call()
	return d.Driver.Status(ctx, node, name)
}

func (d countedDriver) Start(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	d.call()
	return d.Driver.Start(ctx, node, vm, tok)
}

func (d countedDriver) Stop(ctx context.Context, node, name string, tok hypervisor.Token) error {
	d.call()
	return d.Driver.Stop(ctx, node, name, tok)
}

func (d countedDriver) Discard(ctx context.Context, node, name string) error {
	d.call()
	return d.Driver.Discard(ctx, node, name)
}

func (d countedDriver) Save(ctx context.Context, node, name string, tok hypervisor.Token, f hypervisor.StateFile, progress func(hypervisor.Progress)) (hypervisor.SaveResult, error) {
	d.call()
	return d.Driver.Save(ctx, node, name, tok, f, progress)
}

func (d countedDriver) Restore(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token, f hypervisor.StateFile, progress func(hypervisor.Progress)) error {
	d.call()
	return d.Driver.Restore(ctx, node, vm, tok, f, progress)
}

func (d countedDriver) PreCopy(ctx context.Context, from, to hypervisor.Node, vm hypervisor.VM, tok hypervisor.Token, progress func(hypervisor.Progress)) (hypervisor.LiveResult, error) {
	d.call()
	return d.Driver.PreCopy(ctx, from, to, vm, tok, progress)
}

func (d countedDriver) Resume(ctx context.Context, node string, vm hypervisor.VM, tok hypervisor.Token) error {
	d.call()
	return d.Driver.Resume(ctx, node, vm, tok)
}

// simOf returns d as the simulator's driver (nil: another driver), counted
// or not.
func simOf(d hypervisor.Driver) *simDriver {
	if c, ok := d.(countedDriver); ok {
		d = c.Driver
	}
	sd, _ := d.(*simDriver)
	return sd
}
