//go:build !linux

package main

import "syscall"

// bindNoPort does nothing here: the port is chosen at bind.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }
