// Command guestbin is the torture node of a QEMU guest (guest/torture.sh
// puts it in the initramfs as /bin/kayo-torture): it mounts the Kayo FS on
// the guest's shared virtio disk as its node, with the on-disk leases or
// the etcd lock manager, runs the workload (package kayotorture) and logs
// to the console. Its settings come from the kernel command line:
//
//	kayo.node=NAME kayo.secs=N kayo.locks=disk|etcd kayo.etcd=URL kayo.dev=/dev/vda kayo.lease=SECONDS
//	kayo.san=HOST:PORT (the rig's SAN double: fence a dead host there before recovering it)
package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs/etcdlock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/kayotorture"
)

// console serialises lines from the workload and the lock manager's
// goroutines.
type console struct{ mu sync.Mutex }

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return os.Stdout.Write(p)
}

func main() {
	out := &console{}
	say := func(f string, a ...any) { _, _ = fmt.Fprintf(out, f+"\n", a...) }
	if err := run(out, say); err != nil {
		say("KT FAIL %v", err)
		os.Exit(1)
	}
}

// sanFence fences a host at the rig's SAN double (internal/santest) on
// addr; nil without one.
func sanFence(addr string) func(string, uint64) error {
	if addr == "" {
		return nil
	}
	cli := &http.Client{Timeout: 10 * time.Second}
	return func(node string, _ uint64) error {
		resp, err := cli.Post("http://"+addr+"/fence?host="+url.QueryEscape(node), "", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("SAN: fencing %s: %s", node, resp.Status)
		}
		return nil
	}
}

func params() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	p := map[string]string{"kayo.dev": "/dev/vda", "kayo.secs": "20", "kayo.locks": "disk", "kayo.lease": "8"}
	for _, f := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "kayo.") {
			p[k] = v
		}
	}
	for _, a := range os.Args[1:] { // tests on the host pass them as arguments
		if k, v, ok := strings.Cut(a, "="); ok {
			p[k] = v
		}
	}
	return p
}

func run(out *console, say func(string, ...any)) error {
	p := params()
	node := p["kayo.node"]
	secs, _ := strconv.Atoi(p["kayo.secs"])
	lease, _ := strconv.Atoi(p["kayo.lease"])
	timeout := time.Duration(max(lease, 2)) * time.Second
	logf := func(f string, a ...any) { say("LOG "+f, a...) }
	var locks kayofs.LockManagerFactory
	switch p["kayo.locks"] {
	case "disk":
		locks = kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: timeout, Margin: timeout / 2, Renew: timeout / 8,
			IOTimeout: timeout / 16, Logf: logf, FenceHost: sanFence(p["kayo.san"])})
	case "etcd":
		cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(p["kayo.etcd"], ","), DialTimeout: 20 * time.Second,
			Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer func() { _ = cli.Close() }()
		locks = etcdlock.New(etcdlock.Options{Client: cli, TTL: timeout, Logf: logf})
	default:
		return fmt.Errorf("kayo.locks=%q: want disk or etcd", p["kayo.locks"])
	}
	dev, err := kayofs.OpenDeviceDirect(p["kayo.dev"])
	if err != nil {
		return err
	}
	defer dev.Close()
	start := time.Now()
	v, err := kayofs.Mount(dev, node, kayofs.MountOptions{Locks: locks})
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	say("KT MOUNTED %s slot %d after %v", node, v.Slot(), time.Since(start).Round(time.Millisecond))
	seed, _ := strconv.ParseUint(p["kayo.seed"], 10, 64)
	n, err := kayotorture.Run(context.Background(), v, kayotorture.Options{Node: node,
		Duration: time.Duration(secs) * time.Second, Out: out, Seed: seed})
	if ferr := v.Fenced(); ferr != nil {
		// Fenced during the workload, or frozen past its whole duration
		// (then only this check finds it): a fenced node keeps trying, as
		// a workload would, and every try must be refused by its own fence.
		say("KT FENCED %v", ferr)
		for i := 0; i < 3; i++ {
			time.Sleep(timeout / 4)
			f, cerr := v.Create(fmt.Sprintf("%s/after-fence-%d", node, i))
			if cerr == nil {
				_, cerr = f.WriteAt([]byte("must not land"), 0)
			}
			say("KT REFUSED %s %d %v", node, i, cerr)
		}
		v.Crash()
		if err == nil {
			err = ferr
		}
		return err
	}
	if err != nil {
		v.Crash()
		return err
	}
	if err := v.Unmount(); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	say("KT DONE %s %d", node, n)
	return nil
}
