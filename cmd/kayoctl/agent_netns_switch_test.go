//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// switchMigrations is how many live migrations of the echo server the
// test makes: $KAYO_NETMIG_ROUNDS, default 1 (CI's short budget).
func switchMigrations(t *testing.T) int {
	if v := os.Getenv("KAYO_NETMIG_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KAYO_NETMIG_ROUNDS=%q: a count of migrations, at least 1", v)
		}
		return n
	}
	return 1
}

var echoLine = regexp.MustCompile(`(?m)^KAYO-ECHO seq (\d+)\r?$`)

// echoState reads a guest's serial log: the echoed sequence numbers in
// order, and how many echo clients started and ended.
func echoState(path string) (seqs []int, starts, closes int) {
	b, _ := os.ReadFile(path)
	for _, m := range echoLine.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[1])
		seqs = append(seqs, n)
	}
	return seqs, strings.Count(string(b), "KAYO-ECHO-START"), strings.Count(string(b), "KAYO-ECHO-CLOSED")
}

// Hosts as network namespaces, each with its agent running QEMU; an
// external switch bound on each node to its "VMNet" adapter (a veth on
// the rig's VMNet bridge), so the nodes' switch bridges meet there. VM
// CLIENT on Y-21 holds a TCP connection to VM SERVER's echo port; SERVER
// live-migrates between Y-22 and Y-23: the echoed sequence goes on, one
// connection (no reconnect, no gap), and SERVER's address stays.
func TestLiveMigrationKeepsTheSwitchConnection(t *testing.T) {
	rig := netnsrig.New(t, "Public", "VMNet")
	_, g, err := qemutest.Prepare(qemutest.RepoRoot())
	if err != nil {
		qemutest.SkipOrFail(t, err)
	}
	rounds := switchMigrations(t)
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(120+60*rounds)*time.Second)
	defer cancel()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i, n := range threeNodes {
		h := hostSpec(n, 21+i)
		h.Adapters = append(h.Adapters, engine.Adapter{Name: "VMNet", Network: "10.77.0.0/24", Address: fmt.Sprintf("10.77.0.%d", 21+i)})
		if _, err := e.CreateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "HVCLUSTER", Nodes: threeNodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorQEMU, HeartbeatTimeoutSeconds: 15}); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 4, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 8})
	if err != nil {
		t.Fatal(err)
	}
	// An adapter no node has is refused, naming it.
	_, err = e.CreateSwitch(ctx, engine.SwitchSpec{Cluster: "HVCLUSTER", Name: "VMNet", Type: engine.SwitchExternal, Adapter: "eth9"})
	if !errors.Is(err, engine.ErrInvalid) || !strings.Contains(err.Error(), `no network adapter "eth9"`) {
		t.Fatalf("a switch on a missing adapter: %v", err)
	}
	if _, err := e.CreateSwitch(ctx, engine.SwitchSpec{Cluster: "HVCLUSTER", Name: "VMNet", Type: engine.SwitchExternal,
		Adapter: "VMNet", Subnet: "10.77.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]*netnsrig.Host{}
	for i, n := range threeNodes {
		h := rig.AddHost(n, map[string]netip.Prefix{
			"Public": netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 21+i)),
			"VMNet":  netip.MustParsePrefix(fmt.Sprintf("10.77.0.%d/24", 21+i)),
		})
		hosts[n] = h
		p := &agentProc{node: n}
		p.cmd = h.Command(bin, "--data-dir", dir, "agent", "--node", n, "--interval", "250ms", "--report-facts=false",
			"--probe-port=0", "--migration-address", fmt.Sprintf("192.0.2.%d", 21+i))
		p.cmd.Env = append(os.Environ(), "KAYO_QEMU_GUEST_DIR="+filepath.Dir(g.Kernel))
		p.cmd.Stdout, p.cmd.Stderr = p, p
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("agent %s log:\n%s", n, p.log())
			}
			_ = p.cmd.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { _ = p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-done
			}
		})
	}
	// The test reaches the guests from the machine's own stack.
	rig.Gateway("VMNet", netip.MustParsePrefix("10.77.0.1/24"))
	create := func(name, node string) engine.VM {
		t.Helper()
		s := engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: name, MemoryMB: 128, ProcessorCount: 1,
			VHD: engine.VHDSpec{SizeGiB: 1, Type: engine.VHDDynamic}, Adapters: []engine.VMAdapter{{Switch: "VMNet"}},
			OwnerNode: node, AntiAffinityMode: "preferred", Migration: engine.MigrationLive, State: engine.VMRunning,
			Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
		for {
			vm, err := e.CreateVM(ctx, s)
			if err == nil {
				return vm
			}
			if !errors.Is(err, engine.ErrAgentDown) || ctx.Err() != nil {
				t.Fatalf("creating %s: %v", name, err)
			}
			time.Sleep(250 * time.Millisecond) // the agents are starting
		}
	}
	serial := func(node, vm string) string { return qemu.SerialPath(filepath.Join(dir, "qemu", node), vm) }
	waitLine := func(path, want string) {
		t.Helper()
		for !strings.Contains(readFile(path), want) {
			if ctx.Err() != nil {
				t.Fatalf("%s never showed %q; it shows:\n%s", path, want, readFile(path))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	client, server := create("CLIENT", threeNodes[0]), create("SERVER", threeNodes[1])
	// On Y-21 the switch is a bridge holding the host's VMNet address, its
	// veth a port, CLIENT's tap another.
	links := func(n string) string {
		out, _ := hosts[n].Command("ip", "-o", "addr", "show").CombinedOutput()
		lk, _ := hosts[n].Command("ip", "-o", "link", "show").CombinedOutput()
		return string(out) + string(lk)
	}
	br := engine.BridgeName("HVCLUSTER", "VMNet")
	if l := links(threeNodes[0]); !strings.Contains(l, br+"    inet 10.77.0.21/24") || !strings.Contains(l, "master "+br) ||
		!strings.Contains(l, engine.TapName("HVCLUSTER", threeNodes[0], "CLIENT", 0)) {
		t.Fatalf("Y-21's links:\n%s", l)
	}
	caddr, saddr := strings.Split(client.AdapterAddresses[0], "/")[0], strings.Split(server.AdapterAddresses[0], "/")[0]
	t.Logf("CLIENT %s on %s, SERVER %s on %s", caddr, client.Node, saddr, server.Node)
	// Each guest gets its reserved address by DHCP from its node's agent
	// (guest/init has no other way to learn it).
	waitLine(serial(threeNodes[0], "CLIENT"), "addr="+client.AdapterAddresses[0]+" via=dhcp")
	waitLine(serial(threeNodes[1], "SERVER"), "addr="+server.AdapterAddresses[0]+" via=dhcp")
	// Each node's agent reports its guest's address once the guest
	// took it (lease acknowledged, or an ARP answer).
	guestAddr := func(vm string, want string) {
		t.Helper()
		start := time.Now()
		got, err := e.WaitGuestAddresses(ctx, "HVCLUSTER", vm, 60*time.Second, nil)
		if err != nil || fmt.Sprint(got) != "["+want+"]" {
			t.Fatalf("%s's reported addresses: %v, %v; want [%s]", vm, got, err, want)
		}
		t.Logf("%s reported on %s after %v", vm, want, time.Since(start).Round(time.Millisecond))
	}
	guestAddr("CLIENT", client.AdapterAddresses[0])
	guestAddr("SERVER", server.AdapterAddresses[0])

	// CLIENT's control port starts its echo client to SERVER.
	var conn net.Conn
	for conn == nil {
		c, err := net.DialTimeout("tcp", caddr+":8", time.Second)
		if err == nil {
			conn = c
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("CLIENT's control port: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, _ = fmt.Fprintf(conn, "%s\n", saddr)
	ack, _ := bufio.NewReader(conn).ReadString('\n')
	_ = conn.Close()
	if !strings.HasPrefix(ack, "started "+saddr) {
		t.Fatalf("CLIENT's control answered %q", ack)
	}
	cser := serial(threeNodes[0], "CLIENT")
	waitSeq := func(min int) {
		t.Helper()
		for {
			seqs, _, _ := echoState(cser)
			if len(seqs) > 0 && seqs[len(seqs)-1] >= min {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("echo never reached %d; CLIENT's console:\n%s", min, readFile(cser))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitSeq(10)
	at := threeNodes[1]
	for r := 0; r < rounds; r++ {
		to := threeNodes[2]
		if at == threeNodes[2] {
			to = threeNodes[1]
		}
		seqs, _, _ := echoState(cser)
		before := seqs[len(seqs)-1]
		// Watch the echo while SERVER moves: the longest time without a
		// new echoed line is the stall the connection saw.
		stall := make(chan time.Duration, 1)
		stop := make(chan struct{})
		go func() {
			last, lastAt, worst := before, time.Now(), time.Duration(0)
			for {
				select {
				case <-stop:
					stall <- max(worst, time.Since(lastAt))
					return
				case <-time.After(20 * time.Millisecond):
				}
				if s, _, _ := echoState(cser); len(s) > 0 && s[len(s)-1] > last {
					worst, last, lastAt = max(worst, time.Since(lastAt)), s[len(s)-1], time.Now()
				}
			}
		}()
		s := server.VMSpec
		s.OwnerNode = to
		moved, err := e.UpdateVM(ctx, s)
		if err != nil {
			close(stop)
			t.Fatalf("moving SERVER to %s: %v", to, err)
		}
		if moved.Node != to || moved.LastMigration == nil || moved.LastMigration.Type != engine.MigrationLive {
			close(stop)
			t.Fatalf("SERVER after the move: on %s, %+v", moved.Node, moved.LastMigration)
		}
		waitSeq(before + 30)
		close(stop)
		worst := <-stall
		t.Logf("round %d: SERVER %s → %s live: total %d ms, downtime %d ms; echo went on from seq %d, longest stall %v",
			r+1, at, to, moved.LastMigration.DurationMs, moved.LastMigration.DowntimeMs, before, worst.Round(time.Millisecond))
		if fmt.Sprint(moved.AdapterAddresses) != fmt.Sprint(server.AdapterAddresses) {
			t.Fatalf("SERVER's address changed with the move: %v, was %v", moved.AdapterAddresses, server.AdapterAddresses)
		}
		// The reported address does not blink: right after the move
		// (before or after the new node's first report) it is the same.
		if got, err := e.GuestAddresses(ctx, "HVCLUSTER", "SERVER"); err != nil || fmt.Sprint(got) != fmt.Sprint(server.AdapterAddresses) {
			t.Fatalf("SERVER's reported addresses right after the move: %v, %v; want %v", got, err, server.AdapterAddresses)
		}
		guestAddr("SERVER", server.AdapterAddresses[0]) // now reported by the new node
		server, at = moved, to
	}
	seqs, starts, closes := echoState(cser)
	if starts != 1 || closes != 0 {
		t.Fatalf("the echo client started %d times and lost its connection %d times; CLIENT's console:\n%s", starts, closes, readFile(cser))
	}
	for i := range seqs {
		if seqs[i] != i+1 {
			t.Fatalf("echoed sequence breaks at line %d: %d (lines %v)", i, seqs[i], seqs[max(0, i-3):min(len(seqs), i+3)])
		}
	}
	t.Logf("%d lines echoed over one TCP connection across %d live migrations of SERVER", len(seqs), rounds)
	for _, n := range []string{"CLIENT", "SERVER"} {
		if err := e.DeleteVM(ctx, "HVCLUSTER", n); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.DeleteSwitch(ctx, "HVCLUSTER", "VMNet"); err != nil {
		t.Fatal(err)
	}
	// Each agent removes its bridge and taps; the host's address is back
	// on its adapter.
	for i, n := range threeNodes {
		for {
			l := links(n)
			if !strings.Contains(l, br) && !strings.Contains(l, engine.TapPrefix("HVCLUSTER", n)) &&
				regexp.MustCompile(`eth\d+\s+inet 10\.77\.0\.`+strconv.Itoa(21+i)+`/24`).MatchString(l) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s after the switch's deletion:\n%s", n, l)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
