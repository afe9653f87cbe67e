//go:build !linux

package qemutest

import "errors"

// InNetNS runs f; network namespaces are Linux's ("" only).
func InNetNS(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	return errors.New("network namespaces need Linux")
}

func binIn(dir, ns, bin string) (string, error) {
	if ns == "" {
		return bin, nil
	}
	return "", errors.New("network namespaces need Linux")
}
