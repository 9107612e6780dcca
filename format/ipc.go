package format

import (
	"encoding/binary"

	"github.com/apache/arrow/go/v15/arrow"
	flatbuffers "github.com/google/flatbuffers/go"
)

// This file encodes the Arrow IPC messages of a trace file (Schema.fbs,
// Message.fbs, File.fbs of the Arrow format, metadata version V5). The
// writer produces its own messages so that it can compress each buffer
// itself (see zstdframe.go and RATIONALE.md "Writing the IPC file");
// what it writes is checked against the Arrow library's reader, pyarrow
// and DuckDB by the tests.

const (
	metadataV5 = 4 // MetadataVersion.V5

	hdrSchema     = 1 // MessageHeader union
	hdrDictionary = 2
	hdrRecord     = 3

	typeInt             = 2 // Type union
	typeUtf8            = 5
	typeBool            = 6
	typeFixedSizeBinary = 15

	codecZstd = 1 // CompressionType.ZSTD
)

// ipcBuffer is a buffer's place in a message body.
type ipcBuffer struct{ off, len int64 }

// ipcNode is a field node: an array's length and null count.
type ipcNode struct{ len, nulls int64 }

// fileBlock is a footer entry.
type fileBlock struct {
	off     int64
	metaLen int32
	bodyLen int64
}

func fbKeyValues(b *flatbuffers.Builder, keys, vals []string) flatbuffers.UOffsetT {
	kvs := make([]flatbuffers.UOffsetT, len(keys))
	for i := range keys {
		k := b.CreateString(keys[i])
		v := b.CreateString(vals[i])
		b.StartObject(2)
		b.PrependUOffsetTSlot(0, k, 0)
		b.PrependUOffsetTSlot(1, v, 0)
		kvs[i] = b.EndObject()
	}
	return fbOffsets(b, kvs)
}

func fbOffsets(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	b.StartVector(4, len(offs), 4)
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

func fbInt(b *flatbuffers.Builder, bitWidth int, signed bool) flatbuffers.UOffsetT {
	b.StartObject(2)
	b.PrependInt32Slot(0, int32(bitWidth), 0)
	b.PrependBoolSlot(1, signed, false)
	return b.EndObject()
}

// dictID is the dictionary id of each dictionary-encoded column, -1 for
// the others: ids count the dictionary columns in column order.
var dictID = func() (ids [NumColumns]int64) {
	n := int64(0)
	for i, c := range Columns {
		ids[i] = -1
		if _, ok := c.Type.(*arrow.DictionaryType); ok {
			ids[i] = n
			n++
		}
	}
	return ids
}()

// fbSchema builds the Schema table of the trace schema with the given
// metadata.
func fbSchema(b *flatbuffers.Builder, keys, vals []string) flatbuffers.UOffsetT {
	return fbSchemaN(b, keys, vals, NumColumns)
}

// fbSchemaN builds the Schema table of the first n columns.
func fbSchemaN(b *flatbuffers.Builder, keys, vals []string, n int) flatbuffers.UOffsetT {
	fields := make([]flatbuffers.UOffsetT, n)
	for i, c := range Columns[:n] {
		name := b.CreateString(c.Name)
		t := c.Type
		var dict flatbuffers.UOffsetT
		if dt, ok := t.(*arrow.DictionaryType); ok {
			it := dt.IndexType.(arrow.FixedWidthDataType)
			signed := false
			switch it.ID() {
			case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64:
				signed = true
			}
			idx := fbInt(b, it.BitWidth(), signed)
			b.StartObject(4)
			b.PrependInt64Slot(0, dictID[i], 0)
			b.PrependUOffsetTSlot(1, idx, 0)
			b.PrependBoolSlot(2, dt.Ordered, false)
			dict = b.EndObject()
			t = dt.ValueType
		}
		var typ flatbuffers.UOffsetT
		var tt byte
		switch t := t.(type) {
		case *arrow.StringType:
			tt = typeUtf8
			b.StartObject(0)
			typ = b.EndObject()
		case *arrow.BooleanType:
			tt = typeBool
			b.StartObject(0)
			typ = b.EndObject()
		case *arrow.FixedSizeBinaryType:
			tt = typeFixedSizeBinary
			b.StartObject(1)
			b.PrependInt32Slot(0, int32(t.ByteWidth), 0)
			typ = b.EndObject()
		case *arrow.Uint8Type, *arrow.Uint16Type, *arrow.Uint32Type, *arrow.Uint64Type:
			tt = typeInt
			typ = fbInt(b, t.(arrow.FixedWidthDataType).BitWidth(), false)
		default:
			panic("format: column " + c.Name + " has a type the IPC encoder does not know")
		}
		children := fbOffsets(b, nil)
		b.StartObject(7)
		b.PrependUOffsetTSlot(0, name, 0)
		b.PrependBoolSlot(1, !c.Common, false)
		b.PrependByteSlot(2, tt, 0)
		b.PrependUOffsetTSlot(3, typ, 0)
		if dict != 0 {
			b.PrependUOffsetTSlot(4, dict, 0)
		}
		b.PrependUOffsetTSlot(5, children, 0)
		fields[i] = b.EndObject()
	}
	fv := fbOffsets(b, fields)
	var md flatbuffers.UOffsetT
	if len(keys) > 0 {
		md = fbKeyValues(b, keys, vals)
	}
	b.StartObject(4)
	b.PrependInt16Slot(0, 0, 0) // little-endian
	b.PrependUOffsetTSlot(1, fv, 0)
	if md != 0 {
		b.PrependUOffsetTSlot(2, md, 0)
	}
	return b.EndObject()
}

// fbMessage finishes a Message table around hdr and appends the framed
// message to dst: continuation marker, length, flatbuffer, padding to 8
// bytes.
func fbMessage(dst []byte, b *flatbuffers.Builder, hdrType byte, hdr flatbuffers.UOffsetT, bodyLen int64) []byte {
	b.StartObject(5)
	b.PrependInt16Slot(0, metadataV5, 0)
	b.PrependByteSlot(1, hdrType, 0)
	b.PrependUOffsetTSlot(2, hdr, 0)
	b.PrependInt64Slot(3, bodyLen, 0)
	b.Finish(b.EndObject())
	fb := b.FinishedBytes()
	n := (len(fb) + 8 + 7) &^ 7
	dst = binary.LittleEndian.AppendUint32(dst, 0xFFFFFFFF)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n-8))
	dst = append(dst, fb...)
	var pad [8]byte
	return append(dst, pad[:n-8-len(fb)]...)
}

// schemaMessage returns the framed Schema message.
func schemaMessage(keys, vals []string) []byte { return schemaMessageN(keys, vals, NumColumns) }

// schemaMessageN is schemaMessage with the first n columns (the schema of
// an older format version: see numColumnsIn).
func schemaMessageN(keys, vals []string, n int) []byte {
	b := flatbuffers.NewBuilder(64 << 10)
	return fbMessage(nil, b, hdrSchema, fbSchemaN(b, keys, vals, n), 0)
}

// fbRecordBatch builds a RecordBatch table (compressed with zstd when
// compressed is set).
func fbRecordBatch(b *flatbuffers.Builder, rows int64, nodes []ipcNode, bufs []ipcBuffer, compressed bool) flatbuffers.UOffsetT {
	b.StartVector(16, len(nodes), 8)
	for i := len(nodes) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(nodes[i].nulls)
		b.PrependInt64(nodes[i].len)
	}
	nv := b.EndVector(len(nodes))
	b.StartVector(16, len(bufs), 8)
	for i := len(bufs) - 1; i >= 0; i-- {
		b.Prep(8, 16)
		b.PrependInt64(bufs[i].len)
		b.PrependInt64(bufs[i].off)
	}
	bv := b.EndVector(len(bufs))
	var comp flatbuffers.UOffsetT
	if compressed {
		b.StartObject(2)
		b.PrependInt8Slot(0, codecZstd, 0)
		b.PrependInt8Slot(1, 0, 0) // BodyCompressionMethod.BUFFER
		comp = b.EndObject()
	}
	b.StartObject(5)
	b.PrependInt64Slot(0, rows, 0)
	b.PrependUOffsetTSlot(1, nv, 0)
	b.PrependUOffsetTSlot(2, bv, 0)
	if comp != 0 {
		b.PrependUOffsetTSlot(3, comp, 0)
	}
	return b.EndObject()
}

// recordMessage appends a framed RecordBatch message to dst.
func recordMessage(dst []byte, b *flatbuffers.Builder, rows int64, nodes []ipcNode, bufs []ipcBuffer, bodyLen int64) []byte {
	b.Reset()
	return fbMessage(dst, b, hdrRecord, fbRecordBatch(b, rows, nodes, bufs, true), bodyLen)
}

// dictionaryMessage returns a framed DictionaryBatch message.
func dictionaryMessage(id int64, rows int64, nodes []ipcNode, bufs []ipcBuffer, bodyLen int64) []byte {
	b := flatbuffers.NewBuilder(1024)
	rb := fbRecordBatch(b, rows, nodes, bufs, true)
	b.StartObject(3)
	b.PrependInt64Slot(0, id, 0)
	b.PrependUOffsetTSlot(1, rb, 0)
	b.PrependBoolSlot(2, false, false)
	return fbMessage(nil, b, hdrDictionary, b.EndObject(), bodyLen)
}

func fbBlocks(b *flatbuffers.Builder, blocks []fileBlock) flatbuffers.UOffsetT {
	b.StartVector(24, len(blocks), 8)
	for i := len(blocks) - 1; i >= 0; i-- {
		b.Prep(8, 24)
		b.PrependInt64(blocks[i].bodyLen)
		b.Pad(4)
		b.PrependInt32(blocks[i].metaLen)
		b.PrependInt64(blocks[i].off)
	}
	return b.EndVector(len(blocks))
}

// footerBytes returns the file's tail: the Footer flatbuffer, its length
// and the closing magic.
func footerBytes(keys, vals []string, dicts, recs []fileBlock) []byte {
	b := flatbuffers.NewBuilder(64<<10 + 24*len(recs))
	sc := fbSchema(b, keys, vals)
	dv := fbBlocks(b, dicts)
	rv := fbBlocks(b, recs)
	b.StartObject(5)
	b.PrependInt16Slot(0, metadataV5, 0)
	b.PrependUOffsetTSlot(1, sc, 0)
	b.PrependUOffsetTSlot(2, dv, 0)
	b.PrependUOffsetTSlot(3, rv, 0)
	b.Finish(b.EndObject())
	fb := b.FinishedBytes()
	out := make([]byte, 0, len(fb)+10)
	out = append(out, fb...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(fb)))
	return append(out, "ARROW1"...)
}
