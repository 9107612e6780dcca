package emu

import "github.com/patchtrace/patchtrace/internal/slice"

// Perm is a page's access permission set, printed as "rwx" with '-' for a
// missing right (the slice ABI's permission bits, as the trace stores
// them).
type Perm = slice.Perm

const (
	PermR   = slice.PermR
	PermW   = slice.PermW
	PermX   = slice.PermX
	PermRW  = slice.PermRW
	PermRX  = slice.PermRX
	PermRWX = slice.PermRWX
)

// Access is the kind of memory access that faulted.
type Access uint8

const (
	AccessRead Access = iota
	AccessWrite
	AccessExec
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	case AccessExec:
		return "exec"
	}
	return "access?"
}

// need returns the permission an access requires.
func (a Access) need() Perm {
	switch a {
	case AccessWrite:
		return PermW
	case AccessExec:
		return PermX
	}
	return PermR
}
