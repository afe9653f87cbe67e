package store

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest key, in bytes, a Store accepts.
const MaxKeyLen = 4096

// CheckKey returns an error wrapping ErrInvalid unless key is a valid key:
// non-empty, at most MaxKeyLen bytes, without NUL bytes.
func CheckKey(key string) error {
	if err := checkKey("key", key); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func checkKey(what, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty %s: %w", what, ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%s %.40q... is %d bytes, at most %d allowed: %w", what, key, len(key), MaxKeyLen, ErrInvalid)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte: %w", what, key, ErrInvalid)
	}
	return nil
}

// MaxGetMany is the most keys one GetMany reads: etcd's default limit of
// operations in one transaction (--max-txn-ops).
const MaxGetMany = 128

// CheckKeys returns an error wrapping ErrInvalid unless keys may be passed
// to GetMany: at most MaxGetMany keys, each valid.
func CheckKeys(keys []string) error {
	if len(keys) > MaxGetMany {
		return fmt.Errorf("store: get many: %d keys, at most %d allowed: %w", len(keys), MaxGetMany, ErrInvalid)
	}
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	return nil
}

// CheckPrefix returns an error wrapping ErrInvalid unless prefix may be
// passed to List: "" (every key) or anything valid as a key.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := checkKey("prefix", prefix); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// CheckCommit returns an error wrapping ErrInvalid unless cmps and ops form
// a valid Commit: every key valid, no negative revision in a Cmp, at least
// one Op, and no key written twice by one Commit (etcd refuses that too).
func CheckCommit(cmps []Cmp, ops []Op) error {
	for _, c := range cmps {
		if err := checkKey("comparison key", c.Key); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
		if c.ModRevision < 0 {
			return fmt.Errorf("store: commit: comparison on key %q has negative revision %d (0 means absent): %w", c.Key, c.ModRevision, ErrInvalid)
		}
	}
	if len(ops) == 0 {
		return fmt.Errorf("store: commit has no operations: %w", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(ops))
	for _, op := range ops {
		if err := checkKey("operation key", op.Key); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
		if op.Lease < 0 || (op.Delete && op.Lease != 0) {
			return fmt.Errorf("store: commit: operation on key %q has lease %d (a put takes a lease granted by the store, a delete none): %w", op.Key, op.Lease, ErrInvalid)
		}
		if _, dup := seen[op.Key]; dup {
			return fmt.Errorf("store: commit writes key %q twice: %w", op.Key, ErrInvalid)
		}
		seen[op.Key] = struct{}{}
	}
	return nil
}
