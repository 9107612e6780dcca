package format

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/apache/arrow/go/v15/arrow"
	"github.com/klauspost/compress/zstd"
)

// This file checks a RecordBatch or DictionaryBatch message against the
// trace schema before the Arrow library decodes it: field-node lengths and
// null counts, buffer places and sizes, and each compressed buffer's
// declared length and zstd frame header. The library trusts all of these
// (it slices and allocates by them, and its zstd decoder sizes its window
// by the frame header), so a hostile value must be refused here, with an
// error, rather than recovered from as a panic. See RATIONALE.md
// "Integrity and resource limits".

const (
	// maxZstdWindow is the largest zstd window a frame may ask for
	// (unless it is a single-segment frame no larger than its buffer):
	// the writer uses at most 4 MiB (zenc), arrow/go's encoder 8 MiB.
	maxZstdWindow = 8 << 20
	// maxDictValues bounds a dictionary (indices are at most int16).
	maxDictValues = 1 << 15
)

// bufSpec is what one Arrow buffer of a column must hold for n rows.
type bufSpec struct {
	width int  // bytes per row; 0: a bitmap; -1: variable (string data)
	plus1 bool // offsets: n+1 entries
}

func (s bufSpec) size(n int) int {
	switch {
	case s.width == 0:
		return (n + 7) / 8
	case s.width < 0:
		return maxAlloc
	case s.plus1:
		return s.width * (n + 1)
	}
	return s.width * n
}

// bufSpecs returns the buffers of a column of type t (validity first).
func bufSpecs(t arrow.DataType) []bufSpec {
	switch t := t.(type) {
	case *arrow.DictionaryType:
		return []bufSpec{{}, {width: t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8}}
	case *arrow.BooleanType:
		return []bufSpec{{}, {}}
	case *arrow.BinaryType, *arrow.StringType:
		return []bufSpec{{}, {width: 4, plus1: true}, {width: -1}}
	case arrow.FixedWidthDataType:
		return []bufSpec{{}, {width: t.BitWidth() / 8}}
	}
	return nil
}

// batchSpecs is the buffer layout of a record batch in a version v file:
// one field node per column, its buffers in column order.
func batchSpecs(v int) (nodes int, bufs []bufSpec) {
	n := numColumnsIn(v)
	for i := range n {
		bufs = append(bufs, bufSpecs(columnType(v, i))...)
	}
	return n, bufs
}

var dictSpecs = bufSpecs(arrow.BinaryTypes.String)

// checkRecordMessage checks a record batch message (meta is the Message
// flatbuffer, body the message body) of a version v file.
func checkRecordMessage(meta, body []byte, v int) error {
	msg, err := fbRoot(meta)
	if err != nil {
		return err
	}
	if msg.u8(1) != msgRecord {
		return fmt.Errorf("message type %d, want a record batch", msg.u8(1))
	}
	if n := msg.i64(3); n != int64(len(body)) {
		return fmt.Errorf("message body length %d, the block has %d", n, len(body))
	}
	rb, err := msg.table(2)
	if err != nil {
		return fmt.Errorf("record batch: %w", err)
	}
	rows := rb.i64(0)
	if rows < 0 || rows > MaxBatchRows {
		return fmt.Errorf("record batch of %d rows", rows)
	}
	nodes, specs := batchSpecs(v)
	return checkBatchBody(rb, body, int(rows), nodes, specs, v, MaxBatchRows)
}

// checkDictionaryMessage checks a dictionary batch message.
func checkDictionaryMessage(meta, body []byte, v int) error {
	msg, err := fbRoot(meta)
	if err != nil {
		return err
	}
	if msg.u8(1) != msgDictionary {
		return fmt.Errorf("message type %d, want a dictionary batch", msg.u8(1))
	}
	if n := msg.i64(3); n != int64(len(body)) {
		return fmt.Errorf("message body length %d, the block has %d", n, len(body))
	}
	db, err := msg.table(2)
	if err != nil {
		return fmt.Errorf("dictionary batch: %w", err)
	}
	if id := db.i64(0); id < 0 || id >= NumColumns {
		return fmt.Errorf("dictionary id %d", id)
	}
	if db.u8(2) != 0 {
		return errors.New("delta dictionary batch")
	}
	rb, err := db.table(1)
	if err != nil {
		return fmt.Errorf("dictionary batch data: %w", err)
	}
	rows := rb.i64(0)
	if rows < 0 || rows > maxDictValues {
		return fmt.Errorf("dictionary of %d values", rows)
	}
	return checkBatchBody(rb, body, int(rows), 1, dictSpecs, v, maxDictValues)
}

// checkBatchBody checks a RecordBatch table (length (0), nodes (1),
// buffers (2), compression (3)) with its body: nodes field nodes of rows
// each, the buffers of specs in order, in range and not overlapping, and
// each compressed buffer's length prefix and zstd frame header.
func checkBatchBody(rb fbTable, body []byte, rows, nodes int, specs []bufSpec, v, maxRows int) error {
	nn, np, ok := rb.vector(1, 16)
	if !ok || nn != nodes {
		return fmt.Errorf("%d field nodes, want %d", nn, nodes)
	}
	for i := 0; i < nn; i++ {
		l := int64(binary.LittleEndian.Uint64(rb.buf[np+16*i:]))
		nulls := int64(binary.LittleEndian.Uint64(rb.buf[np+16*i+8:]))
		if l < 0 || l > int64(maxRows) || l != int64(rows) {
			return fmt.Errorf("field node %d: length %d, the batch has %d rows", i, l, rows)
		}
		if nulls < 0 || nulls > l {
			return fmt.Errorf("field node %d: %d nulls in %d rows", i, nulls, l)
		}
	}
	bn, bp, ok := rb.vector(2, 16)
	if !ok || bn != len(specs) {
		return fmt.Errorf("%d buffers, want %d", bn, len(specs))
	}
	compressed := false
	if _, present := rb.field(3, 4); present {
		c, err := rb.table(3)
		if err != nil {
			return fmt.Errorf("body compression: %w", err)
		}
		if c.u8(0) != codecZstd || c.u8(1) != 0 {
			return fmt.Errorf("body compression codec %d method %d, want zstd per buffer", c.u8(0), c.u8(1))
		}
		compressed = true
	}
	end := int64(0)
	for i := 0; i < bn; i++ {
		off := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*i:]))
		l := int64(binary.LittleEndian.Uint64(rb.buf[bp+16*i+8:]))
		if l == 0 {
			continue
		}
		if off < 0 || l < 0 || off > int64(len(body)) || l > int64(len(body))-off {
			return fmt.Errorf("buffer %d at %d+%d is outside the %d-byte body", i, off, l, len(body))
		}
		if off < end {
			return fmt.Errorf("buffer %d at %d overlaps the previous one (which ends at %d)", i, off, end)
		}
		end = off + l
		max := specs[i].size(rows)
		max = (max + 63) &^ 63 // writers may pad a buffer to 64 bytes
		b := body[off : off+l]
		if !compressed {
			if int64(max) < l {
				return fmt.Errorf("buffer %d: %d bytes, at most %d expected", i, l, max)
			}
			continue
		}
		if err := checkCompressed(b, max, v); err != nil {
			return fmt.Errorf("buffer %d: %w", i, err)
		}
	}
	return nil
}

// checkCompressed checks a compressed IPC buffer (int64 uncompressed
// length, then a zstd frame) that must decode to at most max bytes: the
// length must be in range and the frame header must not ask for more
// memory than that (its content size equal to the length, its window
// bounded).
func checkCompressed(b []byte, max, v int) error {
	if len(b) < 8 {
		return fmt.Errorf("compressed buffer of %d bytes", len(b))
	}
	u := int64(binary.LittleEndian.Uint64(b))
	if u == -1 { // stored uncompressed
		if len(b)-8 > max {
			return fmt.Errorf("%d bytes, at most %d expected", len(b)-8, max)
		}
		return nil
	}
	if u < 0 || u > int64(max) {
		return fmt.Errorf("uncompressed length %d, at most %d expected", u, max)
	}
	var h zstd.Header
	if err := h.Decode(b[8:]); err != nil {
		return fmt.Errorf("zstd frame header: %w", err)
	}
	if h.Skippable || h.DictionaryID != 0 {
		return errors.New("zstd frame is skippable or needs a dictionary")
	}
	switch {
	case h.HasFCS && h.FrameContentSize != uint64(u):
		return fmt.Errorf("zstd frame content size %d, the buffer says %d", h.FrameContentSize, u)
	case !h.SingleSegment && h.WindowSize > maxZstdWindow:
		return fmt.Errorf("zstd frame window of %d bytes (at most %d)", h.WindowSize, maxZstdWindow)
	}
	return nil
}
