//go:build !unix

package main

import "time"

// cpuTime is 0 where the process's CPU time is not read (bench then
// reports wall-time figures only).
func cpuTime() time.Duration { return 0 }
