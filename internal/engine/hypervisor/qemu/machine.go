package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// Guest is the kernel and initramfs every VM of the qemu driver boots
// (guest/build.sh builds the small test guest from Debian packages).
type Guest struct {
	Kernel  string
	Initrd  string
	Cmdline string
}

// DefaultCmdline is the guest kernel command line: serial console, quiet,
// halt (not reboot) on panic, and no IO-APIC timer check: a TCG guest on a
// loaded host can fail it and panic at boot (seen in CI).
const DefaultCmdline = "console=ttyS0 quiet panic=-1 no_timer_check"

// FindGuest locates the guest: $KAYO_QEMU_GUEST_DIR (vmlinuz + initrd.img),
// else dir (the caller's default, e.g. <data_dir>/guest, may be "").
func FindGuest(dir string) (Guest, error) {
	if d := os.Getenv("KAYO_QEMU_GUEST_DIR"); d != "" {
		dir = d
	}
	if dir == "" {
		return Guest{}, errors.New("qemu: no guest: set KAYO_QEMU_GUEST_DIR to a directory holding vmlinuz and initrd.img (guest/build.sh builds one)")
	}
	g := Guest{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img"), Cmdline: DefaultCmdline}
	for _, f := range []string{g.Kernel, g.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return Guest{}, fmt.Errorf("qemu: guest: %w (guest/build.sh %s builds it)", err, dir)
		}
	}
	return g, nil
}

// Binary is the QEMU system emulator ($KAYO_QEMU_BINARY, else
// qemu-system-x86_64 on PATH).
func Binary() (string, error) {
	if b := os.Getenv("KAYO_QEMU_BINARY"); b != "" {
		return b, nil
	}
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", fmt.Errorf("qemu: qemu-system-x86_64 not found (apt-get install qemu-system-x86): %w", err)
	}
	return p, nil
}

// Config is one QEMU process.
type Config struct {
	Name       string
	MemoryMB   int64
	Processors int
	Guest      Guest
	// Disk is the VM's disk, an NBD export on a unix socket (zero: none),
	// attached raw.
	Disk NBDDisk
	// Drives: further disks, the DVD, and firmware or test-kernel boot
	// (drives.go).
	Drives Drives
	// Accel is "kvm" or "tcg" (default).
	Accel string
	// NICs are its network adapters (netdev.go).
	NICs []NIC
	// Incoming: "" boots the guest; else QEMU waits for a migration
	// stream (and stays paused after it: -S): "defer" until QMP
	// migrate-incoming (Machine.Incoming), "fd" from IncomingFile.
	Incoming string
	// IncomingFile is the stream of Incoming "fd" (a saved state).
	IncomingFile *os.File
	// Dir holds the QMP socket, the serial console log and QEMU's log;
	// it is made private (0700), the socket 0600 and the logs, which
	// carry guest output, 0600.
	Dir string
}

// Descriptors QEMU inherits (exec.Cmd.ExtraFiles starts at 3).
const (
	qmpFD      = 3
	incomingFD = 4
)

// NBDDisk is an export of an NBD server on a unix socket.
type NBDDisk struct{ Socket, Export string }

// Machine is a running QEMU process.
type Machine struct {
	Name   string
	Cfg    Config
	Cmd    *exec.Cmd
	QMP    *QMP
	done   chan struct{}
	mu     sync.Mutex
	exit   error
	Killed bool // guarded by mu: read with WasKilled
}

// QMPPath, SerialPath and LogPath are where a machine named name in dir
// keeps its socket and logs.
func QMPPath(dir, name string) string    { return privsock.Path(dir, name+".qmp") }
func SerialPath(dir, name string) string { return filepath.Join(dir, name+".serial.log") }
func LogPath(dir, name string) string    { return filepath.Join(dir, name+".qemu.log") }

// Args returns QEMU's command line for c (the accelerator the agent
// chose; everything on loopback, no network adapters).
func (c Config) Args() []string {
	mem := c.MemoryMB
	if mem <= 0 {
		mem = 128
	}
	cpus := max(c.Processors, 1)
	a := []string{
		"-name", c.Name, "-accel", c.accel(), "-m", strconv.FormatInt(mem, 10), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot",
		"-chardev", "file,id=ser0,append=on,path=" + optEscape(SerialPath(c.Dir, c.Name)), "-serial", "chardev:ser0",
		// QMP on the socket Launch created (0600) and passes as a descriptor.
		"-chardev", "socket,id=qmp0,server=on,wait=off,fd=" + strconv.Itoa(qmpFD), "-mon", "chardev=qmp0,mode=control",
	}
	a = append(a, c.bootArgs()...)  // drives.go
	a = append(a, c.driveArgs()...) // drives.go
	a = append(a, c.netArgs()...)   // netdev.go
	switch c.Incoming {
	case "":
	case "fd":
		a = append(a, "-S", "-incoming", "fd:"+strconv.Itoa(incomingFD))
	default:
		a = append(a, "-S", "-incoming", c.Incoming)
	}
	return a
}

// optEscape escapes a value inside a QEMU option string (commas double).
func optEscape(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// Launch starts QEMU for c and connects to its QMP socket. The process is
// tied to the caller (SIGKILL when the launching process dies: the NBD
// server it depends on lives there too).
func Launch(ctx context.Context, bin string, c Config) (*Machine, error) {
	if err := privsock.Dir(c.Dir); err != nil {
		return nil, err
	}
	ln, err := privsock.Listen(QMPPath(c.Dir, c.Name))
	if err != nil {
		return nil, fmt.Errorf("qemu %s: QMP socket: %w", c.Name, err)
	}
	ln.SetUnlinkOnClose(false) // QEMU serves it from here on
	qmpf, err := ln.File()
	_ = ln.Close()
	if err != nil {
		return nil, err
	}
	defer func() { _ = qmpf.Close() }()
	// QEMU's own file chardev and our log take the umask: created 0600
	// first (and an older file made so).
	for _, p := range []string{SerialPath(c.Dir, c.Name), LogPath(c.Dir, c.Name)} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		_ = f.Close()
		if err := os.Chmod(p, 0o600); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(LogPath(c.Dir, c.Name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	_, _ = fmt.Fprintf(logf, "%s launching: %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(c.Args(), " "))
	cmd := exec.Command(bin, c.Args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{qmpf}
	if c.Incoming == "fd" {
		if c.IncomingFile == nil {
			return nil, fmt.Errorf("qemu %s: incoming from a descriptor, but none given", c.Name)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, c.IncomingFile)
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: starting %s: %w", bin, err)
	}
	m := &Machine{Name: c.Name, Cfg: c, Cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.exit = err
		m.mu.Unlock()
		close(m.done)
	}()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-qctx.Done():
		}
	}()
	q, err := DialQMP(qctx, QMPPath(c.Dir, c.Name))
	if err != nil {
		m.Kill()
		tail, _ := os.ReadFile(LogPath(c.Dir, c.Name))
		return nil, fmt.Errorf("qemu %s did not come up: %w; its log: %s", c.Name, err, lastLines(string(tail), 5))
	}
	m.QMP = q
	return m, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// Done is closed when the process exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Exited reports whether the process exited, and how.
func (m *Machine) Exited() (bool, error) {
	select {
	case <-m.done:
		m.mu.Lock()
		defer m.mu.Unlock()
		return true, m.exit
	default:
		return false, nil
	}
}

// PID is the process id.
func (m *Machine) PID() int { return m.Cmd.Process.Pid }

// Kill stops the process at once (SIGKILL) and waits for it to be gone.
func (m *Machine) Kill() {
	m.Signal()
	<-m.done
	_ = os.Remove(QMPPath(m.Cfg.Dir, m.Name))
}

// Freeze stops the process (SIGSTOP): it runs nothing, guest code and
// disk I/O included, until Signal kills it; the teardown of its memory
// comes later, when it costs no one waiting.
// Its exit from here on is one it was asked for (Killed).
func (m *Machine) Freeze() {
	m.mu.Lock()
	m.Killed = true
	m.mu.Unlock()
	_ = stopProcess(m.Cmd.Process)
}

// WasKilled reports whether the process was asked to stop (Kill, Signal,
// Freeze): read under the lock, since an exit of its own can race with a
// kill.
func (m *Machine) WasKilled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.Killed
}

// Signal sends SIGKILL and returns without waiting for the exit (tearing
// down a large guest's memory can take a while): the process runs no more
// guest code; Done is closed once it is gone.
func (m *Machine) Signal() {
	m.mu.Lock()
	m.Killed = true
	m.mu.Unlock()
	if m.QMP != nil {
		_ = m.QMP.Close()
	}
	_ = m.Cmd.Process.Signal(syscall.SIGKILL)
}

// Quit asks QEMU to exit (QMP quit), killing it if it has not within a
// second.
func (m *Machine) Quit(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m.QMP != nil {
		_, _ = m.QMP.Execute(qctx, "quit", nil)
	}
	select {
	case <-m.done:
		_ = os.Remove(QMPPath(m.Cfg.Dir, m.Name))
	case <-qctx.Done():
		m.Kill()
	}
}
