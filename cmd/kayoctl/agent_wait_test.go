package main

import (
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// An agent started while its etcd does not answer keeps trying (it logs
// why) and starts working once etcd answers, instead of exiting: hosts
// and their database do not boot in a fixed order.
func TestAgentWaitsForTheDatabase(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Options{})
	u, err := url.Parse(etcd.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	// A gate in front of etcd: it drops every connection until opened.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var open atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !open.Load() {
				_ = c.Close()
				continue
			}
			go func() {
				defer func() { _ = c.Close() }()
				up, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				defer func() { _ = up.Close() }()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	env := map[string]string{"KAYO_ETCD_ENDPOINTS": "http://" + ln.Addr().String(), "KAYO_ETCD_DIAL_TIMEOUT": "300ms"}
	sig := make(chan os.Signal, 1)
	var stdout, stderr lockedBuffer
	c := &cli{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }, signals: sig}
	exited := make(chan int, 1)
	go func() {
		exited <- c.run([]string{"--data-dir", t.TempDir(), "agent", "--node", "Y-21-2k8x64", "--interval", "100ms",
			"--report-facts=false", "--probe-port=0"})
	}()
	waitLog := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), want); {
			select {
			case code := <-exited:
				t.Fatalf("the agent exited %d while waiting for %q:\n%s", code, want, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 20 s:\n%s", want, stderr.String())
			}
		}
	}
	waitLog("cluster database unavailable, trying again in 1s")
	waitLog("trying again in 2s") // still running, still trying
	open.Store(true)
	waitLog("started (id Y-21-2k8x64/")
	// It works: its ticks reach the database (the host is not registered).
	waitLog(`host "Y-21-2k8x64" is not registered`)
	sig <- syscall.SIGTERM
	if code := <-exited; code != 0 {
		t.Errorf("agent exit %d after SIGTERM:\n%s", code, stderr.String())
	}
}
