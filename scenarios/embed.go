package scenarios

import "embed"

// FS holds every built-in scenario: <id>/scenario.toml and the prebuilt
// slice it names, <id>/<id>.elf. Sources are not embedded; build.sh
// rebuilds the ELFs from them.
//
//go:embed */scenario.toml */*.elf
var FS embed.FS
