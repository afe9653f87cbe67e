// Package localuser runs commands as an unprivileged local user
// ("nobody"), for the tests that play a local attacker against the
// agent's sockets: setpriv(1) as root (in CI), else the tests skip.
package localuser

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
)

// Command returns name with args run as nobody:nogroup without
// supplementary groups, or why that is impossible here.
func Command(name string, args ...string) (*exec.Cmd, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("running as nobody needs Linux")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("running as nobody needs root (setpriv)")
	}
	sp, err := exec.LookPath("setpriv")
	if err != nil {
		return nil, fmt.Errorf("setpriv not found (util-linux): %w", err)
	}
	if _, err := user.Lookup("nobody"); err != nil {
		return nil, fmt.Errorf("no user nobody: %w", err)
	}
	group := "nogroup"
	if _, err := user.LookupGroup(group); err != nil {
		group = "nobody"
	}
	return exec.Command(sp, append([]string{"--reuid=nobody", "--regid=" + group, "--clear-groups", name}, args...)...), nil
}

// UID is nobody's uid.
func UID() (string, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

// Reachable makes dir and its parents up to the root traversable by
// others (0755, as a data directory under /var/lib is): test directories
// are 0700, which alone would keep nobody out and prove nothing.
func Reachable(dir string) error {
	for d := filepath.Clean(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// Self copies the running executable (a test binary) into dir, mode
// 0755, so nobody can run it: go test's build directory is private.
func Self(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	in, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer func() { _ = in.Close() }()
	dst := filepath.Join(dir, filepath.Base(exe))
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return "", err
	}
	return dst, out.Close()
}

// SkipOrFail skips a test that needs to run something as nobody, with
// the reason, except under CI=true (root there), where it fails.
func SkipOrFail(t interface {
	Helper()
	Skipf(string, ...any)
	Fatalf(string, ...any)
}, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("local-user test cannot run under CI=true: %v", err)
	}
	t.Skipf("cannot run as nobody here, skipping: %v", err)
}
