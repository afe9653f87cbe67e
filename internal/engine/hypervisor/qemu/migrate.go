package qemu

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/privsock"
)

// Migration channels. Live migration between hosts runs over TCP with
// QEMU's TLS (tls-creds-psk: the stream is encrypted, and a peer without
// the cluster's key can neither feed a target nor read a source); the
// target listens on its agent's migration address only. A saved state
// (quick migration) flows through a socket pair whose other end only the
// QEMU process holds (QMP getfd), and is restored through an inherited
// descriptor: no listener anyone else could connect to first.

// MigrationParams are the parameters every migration uses (the driver
// and the raw-QMP floor of the benchmark alike): loopback bandwidth
// unthrottled (QEMU's default caps it at 128 MiB/s), QEMU's default
// 300 ms downtime limit.
var MigrationParams = map[string]any{"max-bandwidth": int64(20) << 30, "downtime-limit": 300}

// TLS is the pre-shared key credentials of live migration: Dir holds
// keys.psk ("user:hexkey"), as QEMU's tls-creds-psk reads it.
type TLS struct {
	Dir  string
	User string
}

// PSKFile is the key file in a TLS directory.
const PSKFile = "keys.psk"

// WritePSK makes dir private and writes key for user into its keys.psk
// (mode 0600; replaced atomically when it changed).
func WritePSK(dir, user string, key []byte) (TLS, error) {
	t := TLS{Dir: dir, User: user}
	if len(key) < 16 {
		return t, fmt.Errorf("qemu: a migration key of %d bytes is too short (at least 16)", len(key))
	}
	if err := privsock.Dir(dir); err != nil {
		return t, err
	}
	want := []byte(user + ":" + hex.EncodeToString(key) + "\n")
	p := filepath.Join(dir, PSKFile)
	if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, want) {
		return t, os.Chmod(p, 0o600)
	}
	tmp, err := os.CreateTemp(dir, PSKFile+".*")
	if err != nil {
		return t, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(want); err != nil {
		_ = tmp.Close()
		return t, err
	}
	if err := tmp.Close(); err != nil {
		return t, err
	}
	return t, os.Rename(tmp.Name(), p)
}

const (
	tlsServerID = "kayo-migration-tls-server"
	tlsClientID = "kayo-migration-tls-client"
)

// addTLS (re)creates the credentials object id for endpoint (the key
// file is read when it is created) and returns the tls-creds parameter.
func (m *Machine) addTLS(ctx context.Context, t *TLS, id, endpoint string) (string, error) {
	if t == nil {
		return "", nil
	}
	_, _ = m.QMP.Execute(ctx, "object-del", map[string]any{"id": id})
	args := map[string]any{"qom-type": "tls-creds-psk", "id": id, "dir": t.Dir, "endpoint": endpoint}
	if endpoint == "client" {
		args["username"] = t.User
	}
	if _, err := m.QMP.Execute(ctx, "object-add", args); err != nil {
		return "", err
	}
	return id, nil
}

// ListenIncoming makes a target started with Incoming "defer" wait for
// a plain-text migration on addr (the system picks the port, returned).
// Anyone who connects first feeds it: the benchmark's plain baseline and
// tests only; the driver migrates with IncomingFrom and MigrateTo.
func (m *Machine) ListenIncoming(ctx context.Context, addr string) (int, error) {
	if _, err := m.QMP.Execute(ctx, "migrate-set-parameters", map[string]any{"tls-creds": ""}); err != nil {
		return 0, err
	}
	uri := "tcp:" + net.JoinHostPort(addr, "0")
	if _, err := m.QMP.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}); err != nil {
		return 0, err
	}
	raw, err := m.QMP.Execute(ctx, "query-migrate", nil)
	if err != nil {
		return 0, err
	}
	var mi struct {
		Sockets []struct {
			Type string `json:"type"`
			Port string `json:"port"`
		} `json:"socket-address"`
	}
	if err := json.Unmarshal(raw, &mi); err != nil {
		return 0, err
	}
	for _, s := range mi.Sockets {
		if p, err := strconv.Atoi(s.Port); err == nil && s.Type == "inet" && p > 0 {
			return p, nil
		}
	}
	return 0, fmt.Errorf("qemu %s: no listening port reported for %s: %s", m.Name, uri, raw)
}

// StartMigration sets MigrationParams and starts a plain-text migration
// to uri (the counterpart of ListenIncoming).
func (m *Machine) StartMigration(ctx context.Context, uri string) error {
	return m.migrate(ctx, uri, nil)
}

// IncomingFrom makes a target started with Incoming "defer" load the
// migration arriving on conn (an authenticated socket: DialMigration's
// peer), with TLS when t is set.
func (m *Machine) IncomingFrom(ctx context.Context, conn *os.File, t *TLS) error {
	creds, err := m.addTLS(ctx, t, tlsServerID, "server")
	if err != nil {
		return err
	}
	if _, err := m.QMP.Execute(ctx, "migrate-set-parameters", map[string]any{"tls-creds": creds}); err != nil {
		return err
	}
	const name = "kayo-incoming"
	if _, err := m.QMP.ExecuteFile(ctx, "getfd", map[string]any{"fdname": name}, conn); err != nil {
		return err
	}
	_, err = m.QMP.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:" + name})
	return err
}

// MigrateTo sets MigrationParams (with TLS when t is set) and starts a
// live migration into conn (an authenticated socket to the target).
func (m *Machine) MigrateTo(ctx context.Context, conn *os.File, t *TLS) error {
	creds, err := m.addTLS(ctx, t, tlsClientID, "client")
	if err != nil {
		return err
	}
	const name = "kayo-migrate"
	if _, err := m.QMP.ExecuteFile(ctx, "getfd", map[string]any{"fdname": name}, conn); err != nil {
		return err
	}
	extra := map[string]any{"tls-creds": creds}
	if creds != "" {
		// PSK checks no host name; QEMU asks for one with TLS over a
		// descriptor.
		extra["tls-hostname"] = "kayo-migration"
	}
	if err := m.migrate(ctx, "fd:"+name, extra); err != nil {
		_, _ = m.QMP.Execute(ctx, "closefd", map[string]any{"fdname": name})
		return err
	}
	return nil
}

func (m *Machine) migrate(ctx context.Context, uri string, extra map[string]any) error {
	p := map[string]any{"tls-creds": ""}
	for k, v := range MigrationParams {
		p[k] = v
	}
	for k, v := range extra {
		p[k] = v
	}
	if _, err := m.QMP.Execute(ctx, "migrate-set-parameters", p); err != nil {
		return err
	}
	_, err := m.QMP.Execute(ctx, "migrate", map[string]any{"uri": uri})
	return err
}

// SaveState starts migrating the machine's state into a socket pair and
// returns the agent's end, which reads the stream until EOF (QEMU
// closes its end when the migration ends). QEMU gets its end over QMP
// (getfd); no one else can connect to it.
func (m *Machine) SaveState(ctx context.Context) (*os.File, error) {
	ours, theirs, err := SocketPair()
	if err != nil {
		return nil, err
	}
	defer func() { _ = theirs.Close() }()
	const name = "kayo-save"
	if _, err := m.QMP.ExecuteFile(ctx, "getfd", map[string]any{"fdname": name}, theirs); err != nil {
		_ = ours.Close()
		return nil, err
	}
	if err := m.migrate(ctx, "fd:"+name, nil); err != nil {
		_, _ = m.QMP.Execute(ctx, "closefd", map[string]any{"fdname": name})
		_ = ours.Close()
		return nil, err
	}
	return ours, nil
}

// ErrNoFD: the QMP connection cannot pass descriptors.
var ErrNoFD = errors.New("qmp: the connection cannot pass file descriptors")
