package format

import (
	"encoding/binary"
	"fmt"
)

// ColumnSize is what one column of a trace costs on disk, summed over its
// record batches (the stored buffers: validity, values, and for strings
// offsets and data, each as its 8-byte length prefix and zstd frame).
type ColumnSize struct {
	Name     string
	Validity int64 // stored bytes of its validity bitmaps
	Values   int64 // stored bytes of its value buffers (offsets and data for strings)
	Raw      int64 // the value buffers' uncompressed bytes
	NonNull  int64 // rows with a value
}

// Stored is the column's bytes in the file.
func (c ColumnSize) Stored() int64 { return c.Validity + c.Values }

// ColumnSizes reads every record batch's message (checked as Batch
// checks it: checksum and shape) and returns the stored size of each
// column of the file's version, in schema order. Buffer padding and the
// messages' metadata are not counted: the sum of Stored is a little less
// than the file's record batches.
func (r *Reader) ColumnSizes() ([]ColumnSize, error) {
	n := numColumnsIn(r.version)
	out := make([]ColumnSize, n)
	for c := range out {
		out[c].Name = Columns[c].Name
	}
	for i, blk := range r.blocks {
		if blk.metaLen < 8 || blk.metaLen > maxMetaLen || blk.bodyLen < 0 || blk.bodyLen > r.size {
			return nil, corruptErr(r.name, i, fmt.Errorf("message of %d+%d bytes", blk.metaLen, blk.bodyLen))
		}
		m := make([]byte, blk.metaLen+blk.bodyLen)
		if err := r.readMessage(i, m); err != nil {
			return nil, corruptErr(r.name, i, err)
		}
		// readMessage checked the flatbuffer, the node and buffer vectors
		// and every buffer's place in the body.
		msg, err := fbRoot(m[8:blk.metaLen])
		if err != nil {
			return nil, corruptErr(r.name, i, err)
		}
		rb, err := msg.table(2)
		if err != nil {
			return nil, corruptErr(r.name, i, err)
		}
		body := m[blk.metaLen:]
		_, np, _ := rb.vector(1, 16)
		_, bp, _ := rb.vector(2, 16)
		rows := rb.i64(0)
		_, compressed := rb.field(3, 4)
		for c := range n {
			nulls := int64(binary.LittleEndian.Uint64(rb.buf[np+16*c+8:]))
			out[c].NonNull += rows - nulls
			for k := r.bufStart[c]; k < r.bufStart[c+1]; k++ {
				off := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*k:]))
				l := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*k+8:]))
				if k == r.bufStart[c] {
					out[c].Validity += l
					continue
				}
				out[c].Values += l
				switch {
				case compressed && l >= 8:
					u := int64(binary.LittleEndian.Uint64(body[off:]))
					if u == -1 { // stored uncompressed
						u = l - 8
					}
					out[c].Raw += u
				default:
					out[c].Raw += l
				}
			}
		}
	}
	return out, nil
}
