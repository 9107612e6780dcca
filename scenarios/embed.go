package scenarios

import "embed"

// FS holds every built-in scenario: <id>/scenario.toml, the prebuilt slice
// it names (<id>/<id>.elf), and the slice sources (<id>/*.c, *.S, *.h and
// base/*), which findings point into. build.sh rebuilds the ELFs from the
// sources.
//
//go:embed */scenario.toml */*.elf */*.c */*.S */*.h
var FS embed.FS
