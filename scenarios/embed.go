package scenarios

import "embed"

// FS holds every built-in scenario: <id>/scenario.toml, the prebuilt slice
// it names (<id>/<id>.elf), the slice sources (<id>/*.c, *.S, *.h, base/*,
// and the shared libraries <id>/uses names under lib/), which findings point
// into. build.sh rebuilds the ELFs from the sources.
//
//go:embed */scenario.toml */*.elf */*.c */*.S */*.h */uses lib/*/*.c lib/*/*.S lib/*/*.h
var FS embed.FS
