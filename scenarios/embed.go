package scenarios

import "embed"

// FS holds every built-in scenario: <id>/scenario.toml, the prebuilt slice
// it names (<id>/<id>.elf), the slice sources (<id>/*.c, *.S, *.h, base/*
// with the linker script base/slice.lds, and the shared libraries under
// lib/ that a scenario.toml's uses = [...] names), which findings point
// into. patchtrace build links the base and libraries from here, for
// scenarios anywhere; build.sh rebuilds the built-in ELFs with it.
//
//go:embed */scenario.toml */*.elf */*.c */*.S */*.h base/slice.lds lib/*/*.c lib/*/*.S lib/*/*.h
var FS embed.FS
