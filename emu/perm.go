package emu

// Perm is a page's access permission set, printed as "rwx" with '-' for a
// missing right (gVisor hostarch.AccessType style).
type Perm uint8

const (
	PermR Perm = 1 << iota
	PermW
	PermX

	PermRW  = PermR | PermW
	PermRX  = PermR | PermX
	PermRWX = PermR | PermW | PermX
)

func (p Perm) String() string {
	b := []byte("---")
	if p&PermR != 0 {
		b[0] = 'r'
	}
	if p&PermW != 0 {
		b[1] = 'w'
	}
	if p&PermX != 0 {
		b[2] = 'x'
	}
	return string(b)
}

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
