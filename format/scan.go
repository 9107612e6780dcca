package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads Arrow IPC message framing directly, for files with no
// footer (a killed run). An encapsulated message is
//
//	0xFFFFFFFF | int32 metadata length M | Message flatbuffer (M bytes, padded) | body
//
// (pre-1.0 writers omit the 0xFFFFFFFF). The Message table has the fields
// version (0), header_type (1), header (2) and bodyLength (3); a
// RecordBatch header has length (0). See format/Message.fbs in Arrow.

const (
	msgSchema     = 1
	msgDictionary = 2
	msgRecord     = 3

	maxMetaLen = 16 << 20 // schema messages carry the ELF; batches are small
)

// block is one message in the file.
type block struct {
	off     int64 // of the continuation marker
	metaLen int64 // prefix + metadata
	bodyLen int64
	typ     uint8
	rows    int64 // record batches: the length field
}

func (b block) end() int64 { return b.off + b.metaLen + b.bodyLen }

// fbTable is a bounds-checked view of a flatbuffer table.
type fbTable struct {
	buf []byte
	pos int
	vt  int
	vtn int
}

func fbRoot(buf []byte) (fbTable, error) {
	if len(buf) < 4 {
		return fbTable{}, errors.New("short flatbuffer")
	}
	return fbAt(buf, int(binary.LittleEndian.Uint32(buf)))
}

func fbAt(buf []byte, pos int) (fbTable, error) {
	if pos < 0 || pos+4 > len(buf) {
		return fbTable{}, errors.New("flatbuffer table out of range")
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(buf[pos:])))
	if vt < 0 || vt+4 > len(buf) {
		return fbTable{}, errors.New("flatbuffer vtable out of range")
	}
	vtn := int(binary.LittleEndian.Uint16(buf[vt:]))
	if vtn < 4 || vt+vtn > len(buf) {
		return fbTable{}, errors.New("flatbuffer vtable size out of range")
	}
	return fbTable{buf: buf, pos: pos, vt: vt, vtn: vtn}, nil
}

// field returns the position of field id and whether it is present and
// has size bytes in range.
func (t fbTable) field(id, size int) (int, bool) {
	slot := 4 + 2*id
	if slot+2 > t.vtn {
		return 0, false
	}
	off := int(binary.LittleEndian.Uint16(t.buf[t.vt+slot:]))
	if off == 0 {
		return 0, false
	}
	p := t.pos + off
	if p+size > len(t.buf) {
		return 0, false
	}
	return p, true
}

func (t fbTable) u8(id int) uint8 {
	if p, ok := t.field(id, 1); ok {
		return t.buf[p]
	}
	return 0
}

func (t fbTable) i64(id int) int64 {
	if p, ok := t.field(id, 8); ok {
		return int64(binary.LittleEndian.Uint64(t.buf[p:]))
	}
	return 0
}

func (t fbTable) table(id int) (fbTable, error) {
	p, ok := t.field(id, 4)
	if !ok {
		return fbTable{}, errors.New("flatbuffer field missing")
	}
	return fbAt(t.buf, p+int(binary.LittleEndian.Uint32(t.buf[p:])))
}

// readBlock parses the message at off. It returns io.EOF at an
// end-of-stream marker and io.ErrUnexpectedEOF when the message does not
// fit in the file.
func readBlock(r io.ReaderAt, off, size int64) (block, error) {
	var pre [8]byte
	if off+4 > size {
		return block{}, io.ErrUnexpectedEOF
	}
	if _, err := r.ReadAt(pre[:4], off); err != nil {
		return block{}, err
	}
	prefix := int64(4)
	n := binary.LittleEndian.Uint32(pre[:4])
	if n == 0xFFFFFFFF {
		if off+8 > size {
			return block{}, io.ErrUnexpectedEOF
		}
		if _, err := r.ReadAt(pre[4:], off+4); err != nil {
			return block{}, err
		}
		prefix = 8
		n = binary.LittleEndian.Uint32(pre[4:])
	}
	if n == 0 {
		return block{}, io.EOF
	}
	if n > maxMetaLen {
		return block{}, fmt.Errorf("message metadata length %d", n)
	}
	if off+prefix+int64(n) > size {
		return block{}, io.ErrUnexpectedEOF
	}
	meta := make([]byte, n)
	if _, err := r.ReadAt(meta, off+prefix); err != nil {
		return block{}, err
	}
	msg, err := fbRoot(meta)
	if err != nil {
		return block{}, fmt.Errorf("message: %w", err)
	}
	b := block{off: off, metaLen: prefix + int64(n), typ: msg.u8(1), bodyLen: msg.i64(3)}
	if b.typ < msgSchema || b.typ > msgRecord {
		return block{}, fmt.Errorf("message type %d", b.typ)
	}
	if b.bodyLen < 0 || b.bodyLen > size {
		return block{}, fmt.Errorf("message body length %d", b.bodyLen)
	}
	if b.typ == msgRecord {
		hdr, err := msg.table(2)
		if err != nil {
			return block{}, fmt.Errorf("record batch header: %w", err)
		}
		b.rows = hdr.i64(0)
		if b.rows < 0 || b.rows > MaxBatchRows {
			return block{}, fmt.Errorf("record batch of %d rows", b.rows)
		}
	}
	if b.end() > size {
		return b, io.ErrUnexpectedEOF
	}
	return b, nil
}

// errCleanEnd: the file ends right after a message.
var errCleanEnd = errors.New("the file ends after a complete message")

// scanStream lists the messages after the magic until the end of stream,
// the first incomplete message or the first bytes that are not a message.
// stop says why the scan ended (nil at an end-of-stream marker).
func scanStream(r io.ReaderAt, size int64) (msgs []block, stop error) {
	off := int64(8)
	for {
		if off == size {
			return msgs, errCleanEnd
		}
		b, err := readBlock(r, off, size)
		if err != nil {
			if err == io.EOF {
				return msgs, nil
			}
			return msgs, err
		}
		msgs = append(msgs, b)
		off = b.end()
	}
}

// vector returns the element count and the position of the first element
// of vector field id, checking that count elements of elem bytes fit.
func (t fbTable) vector(id, elem int) (n, pos int, ok bool) {
	p, ok := t.field(id, 4)
	if !ok {
		return 0, 0, false
	}
	v := p + int(binary.LittleEndian.Uint32(t.buf[p:]))
	if v < 0 || v+4 > len(t.buf) {
		return 0, 0, false
	}
	n = int(binary.LittleEndian.Uint32(t.buf[v:]))
	if n < 0 || n > (len(t.buf)-v-4)/elem {
		return 0, 0, false
	}
	return n, v + 4, true
}

// str returns string field id.
func (t fbTable) str(id int) (string, bool) {
	p, ok := t.field(id, 4)
	if !ok {
		return "", false
	}
	return fbString(t.buf, p)
}

func fbString(buf []byte, p int) (string, bool) {
	s := p + int(binary.LittleEndian.Uint32(buf[p:]))
	if s < 0 || s+4 > len(buf) {
		return "", false
	}
	n := int(binary.LittleEndian.Uint32(buf[s:]))
	if n < 0 || n > len(buf)-s-4 {
		return "", false
	}
	return string(buf[s+4 : s+4+n]), true
}

// footer is what the reader needs from an Arrow file footer: the record
// batch blocks and the footer schema's metadata (the Footer table has
// version (0), schema (1), dictionaries (2), recordBatches (3); Schema has
// custom_metadata (2), a vector of KeyValue{key (0), value (1)}; Block is
// struct {offset int64; metaDataLength int32; pad; bodyLength int64}).
type footer struct {
	start      int64 // offset of the footer flatbuffer
	keys, vals []string
	recs       []block
}

func readFooter(r io.ReaderAt, size int64) (*footer, error) {
	var tail [10]byte
	if size < 8+10 {
		return nil, errors.New("file too small for a footer")
	}
	if _, err := r.ReadAt(tail[:], size-10); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	start := size - 10 - n
	if n <= 0 || start < 8 {
		return nil, fmt.Errorf("footer length %d out of range", n)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, start); err != nil {
		return nil, err
	}
	ft, err := fbRoot(buf)
	if err != nil {
		return nil, err
	}
	f := &footer{start: start}
	sc, err := ft.table(1)
	if err != nil {
		return nil, fmt.Errorf("footer schema: %w", err)
	}
	if f.keys, f.vals, err = schemaKV(sc); err != nil {
		return nil, fmt.Errorf("footer %w", err)
	}
	bn, bp, ok := ft.vector(3, 24)
	if !ok {
		if _, present := ft.field(3, 4); present {
			return nil, errors.New("footer record batch list out of range")
		}
	}
	for i := 0; i < bn; i++ {
		p := bp + 24*i
		b := block{
			off:     int64(binary.LittleEndian.Uint64(buf[p:])),
			metaLen: int64(int32(binary.LittleEndian.Uint32(buf[p+8:]))),
			bodyLen: int64(binary.LittleEndian.Uint64(buf[p+16:])),
			typ:     msgRecord,
		}
		if b.off < 8 || b.metaLen <= 0 || b.bodyLen < 0 || b.off > start || b.metaLen > start || b.bodyLen > start || b.end() > start {
			return nil, fmt.Errorf("footer block %d out of range", i)
		}
		f.recs = append(f.recs, b)
	}
	return f, nil
}

// schemaKV returns a Schema table's custom metadata.
func schemaKV(sc fbTable) (keys, vals []string, err error) {
	kn, kp, ok := sc.vector(2, 4)
	if !ok {
		return nil, nil, nil
	}
	buf := sc.buf
	for i := 0; i < kn; i++ {
		p := kp + 4*i
		kv, err := fbAt(buf, p+int(binary.LittleEndian.Uint32(buf[p:])))
		if err != nil {
			return nil, nil, fmt.Errorf("metadata %d: %w", i, err)
		}
		k, ok1 := kv.str(0)
		v, ok2 := kv.str(1)
		if !ok1 || !ok2 {
			return nil, nil, fmt.Errorf("metadata %d: bad string", i)
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	return keys, vals, nil
}

// messageKV returns the custom metadata of a Schema message's flatbuffer.
func messageKV(meta []byte) (keys, vals []string, err error) {
	msg, err := fbRoot(meta)
	if err != nil {
		return nil, nil, err
	}
	sc, err := msg.table(2)
	if err != nil {
		return nil, nil, fmt.Errorf("schema: %w", err)
	}
	return schemaKV(sc)
}

// checkSchemaMessage checks a Schema message against the shape of a trace
// schema before the Arrow library decodes it: the library sizes slices by
// the vector lengths it finds, so a corrupt length could exhaust memory.
// Schema: fields (1), custom_metadata (2). Field: type_type (2),
// children (5), custom_metadata (6).
func checkSchemaMessage(meta []byte, v int) error {
	msg, err := fbRoot(meta)
	if err != nil {
		return err
	}
	if msg.u8(1) != msgSchema {
		return errors.New("not a schema message")
	}
	sc, err := msg.table(2)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	n, pos, ok := sc.vector(1, 4)
	if !ok || n != numColumnsIn(v) {
		return fmt.Errorf("schema has %d fields, want %d", n, numColumnsIn(v))
	}
	if _, present := sc.field(2, 4); present {
		if kn, _, ok := sc.vector(2, 4); !ok || kn > 1024 {
			return errors.New("schema metadata out of range")
		}
	}
	for i := 0; i < n; i++ {
		p := pos + 4*i
		f, err := fbAt(meta, p+int(binary.LittleEndian.Uint32(meta[p:])))
		if err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		switch f.u8(2) {
		case 2, 4, 5, 6, 15: // Int, Binary, Utf8, Bool, FixedSizeBinary
		default:
			return fmt.Errorf("field %d: type %d", i, f.u8(2))
		}
		if _, present := f.field(5, 4); present {
			if cn, _, ok := f.vector(5, 4); !ok || cn != 0 {
				return fmt.Errorf("field %d: children", i)
			}
		}
		if _, present := f.field(6, 4); present {
			if kn, _, ok := f.vector(6, 4); !ok || kn > 64 {
				return fmt.Errorf("field %d: metadata out of range", i)
			}
		}
	}
	return nil
}
