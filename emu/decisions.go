package emu

import (
	"encoding/binary"
	"fmt"
)

// DecisionsFormat names the encoding of EncodeDecisions, as recorded in
// trace metadata.
const DecisionsFormat = "patchtrace-decisions-v1"

// EncodeDecisions packs a decision log: per decision a uvarint of
// kind | cpu<<2, then for a step a uvarint step count, for an IRQ the vector
// byte. Runs of quanta compress well under zstd.
func EncodeDecisions(ds []Decision) []byte {
	out := make([]byte, 0, 3*len(ds))
	for _, d := range ds {
		out = binary.AppendUvarint(out, uint64(d.Kind)|uint64(d.CPU)<<2)
		switch d.Kind {
		case DecStep:
			out = binary.AppendUvarint(out, uint64(d.N))
		case DecIRQ:
			out = append(out, byte(d.Vector))
		}
	}
	return out
}

// DecodeDecisions unpacks EncodeDecisions' output.
func DecodeDecisions(b []byte) ([]Decision, error) {
	var ds []Decision
	for off := 0; off < len(b); {
		h, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return nil, fmt.Errorf("decision log: bad header at byte %d", off)
		}
		off += n
		d := Decision{Kind: DecisionKind(h & 3), CPU: uint16(h >> 2)}
		if h>>2 >= MaxCPUs {
			return nil, fmt.Errorf("decision log: decision %d names cpu %d", len(ds), h>>2)
		}
		switch d.Kind {
		case DecStep:
			v, n := binary.Uvarint(b[off:])
			if n <= 0 || v == 0 || v > 1<<31 {
				return nil, fmt.Errorf("decision log: bad step count at byte %d", off)
			}
			d.N = uint32(v)
			off += n
		case DecIRQ:
			if off >= len(b) || irqBit(Vector(b[off])) == 0 {
				return nil, fmt.Errorf("decision log: bad IRQ vector at byte %d", off)
			}
			d.Vector = Vector(b[off])
			off++
		case DecNMI:
		default:
			return nil, fmt.Errorf("decision log: unknown kind %d at decision %d", d.Kind, len(ds))
		}
		ds = append(ds, d)
	}
	return ds, nil
}
