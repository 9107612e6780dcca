package gdbserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The remote serial protocol's framing (gdb manual, "Overview" of the
// remote protocol): a packet is $payload#cc, cc the payload's checksum
// (the sum of its bytes mod 256) in two hex digits; the receiver answers
// + (received) or - (send again) until QStartNoAckMode turns the
// acknowledgements off. '}' escapes the next byte (XOR 0x20) in both
// directions; '*' starts a run-length count in packets from the server,
// which this server never sends.

// maxPacket bounds an incoming packet's payload: gdb sends at most the
// PacketSize the server announces (qSupported); anything longer is
// dropped (and asked for again in ack mode) without being buffered.
const maxPacket = 1 << 16

// errInterrupt is what readPacket returns for a ^C (0x03) outside a packet.
var errInterrupt = errors.New("interrupt")

// conn is one gdb connection's packet layer.
type conn struct {
	r     *bufio.Reader
	w     *bufio.Writer
	noAck bool
	last  []byte // the last packet sent, whole, for a '-' from gdb
	log   func(format string, a ...any)
}

func newConn(rw io.ReadWriter, log func(string, ...any)) *conn {
	return &conn{r: bufio.NewReader(rw), w: bufio.NewWriter(rw), log: log}
}

// readPacket returns the next packet's payload (unescaped). Acks are
// consumed; a '-' sends the last packet again; a packet with a bad
// checksum or too long is answered '-' (in ack mode) and skipped. It
// returns errInterrupt for a ^C, and the read error (io.EOF: gdb went
// away) otherwise.
func (c *conn) readPacket() ([]byte, error) {
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch b {
		case '+':
			continue
		case '-':
			if c.last != nil && !c.noAck {
				if err := c.flushRaw(c.last); err != nil {
					return nil, err
				}
			}
			continue
		case 0x03:
			return nil, errInterrupt
		case '$':
		default:
			continue // noise between packets
		}
		pkt, ok, err := c.readBody()
		if err != nil {
			return nil, err
		}
		if !ok {
			if !c.noAck {
				if err := c.flushRaw([]byte{'-'}); err != nil {
					return nil, err
				}
			}
			continue
		}
		if !c.noAck {
			if err := c.flushRaw([]byte{'+'}); err != nil {
				return nil, err
			}
		}
		return pkt, nil
	}
}

// readBody reads a packet after its '$': the payload up to '#' and the
// checksum. ok is false for a bad checksum, a bad escape or a payload
// longer than maxPacket (read to its end and dropped).
func (c *conn) readBody() (pkt []byte, ok bool, err error) {
	var sum byte
	ok = true
	esc := false
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return nil, false, err
		}
		if b == '#' {
			break
		}
		if b == '$' {
			// A new packet inside this one: gdb gave up on the rest.
			c.log("packet restarted after %d bytes", len(pkt))
			pkt, sum, esc, ok = pkt[:0], 0, false, true
			continue
		}
		sum += b
		if esc {
			b ^= 0x20
			esc = false
		} else if b == '}' {
			esc = true
			continue
		}
		if len(pkt) >= maxPacket {
			ok = false
			continue
		}
		pkt = append(pkt, b)
	}
	var hex [2]byte
	for i := range hex {
		if hex[i], err = c.r.ReadByte(); err != nil {
			return nil, false, err
		}
	}
	want, herr := parseHex(string(hex[:]))
	if herr != nil || byte(want) != sum {
		c.log("packet dropped: checksum %q, computed %02x", hex[:], sum)
		return nil, false, nil
	}
	if esc {
		c.log("packet dropped: ends in an escape")
		return nil, false, nil
	}
	if !ok {
		c.log("packet dropped: longer than %d bytes", maxPacket)
	}
	return pkt, ok, nil
}

// writePacket sends a packet with payload p, escaping what must be.
func (c *conn) writePacket(p []byte) error {
	out := make([]byte, 0, len(p)+8)
	out = append(out, '$')
	var sum byte
	for _, b := range p {
		switch b {
		case '$', '#', '}', '*':
			out = append(out, '}', b^0x20)
			sum += '}' + (b ^ 0x20)
		default:
			out = append(out, b)
			sum += b
		}
	}
	out = append(out, '#', hexDigits[sum>>4], hexDigits[sum&15])
	c.last = out
	return c.flushRaw(out)
}

func (c *conn) writeString(s string) error { return c.writePacket([]byte(s)) }

func (c *conn) flushRaw(b []byte) error {
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.w.Flush()
}

const hexDigits = "0123456789abcdef"

// parseHex reads a hex number (no prefix) of at most 16 digits.
func parseHex(s string) (uint64, error) {
	if s == "" || len(s) > 16 {
		return 0, fmt.Errorf("%q is not a hex number", s)
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := s[i]
		switch {
		case d >= '0' && d <= '9':
			d -= '0'
		case d >= 'a' && d <= 'f':
			d -= 'a' - 10
		case d >= 'A' && d <= 'F':
			d -= 'A' - 10
		default:
			return 0, fmt.Errorf("%q is not a hex number", s)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}

// appendHex appends b as hex digits.
func appendHex(dst, b []byte) []byte {
	for _, x := range b {
		dst = append(dst, hexDigits[x>>4], hexDigits[x&15])
	}
	return dst
}

// decodeHex reads hex-encoded bytes.
func decodeHex(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd number of hex digits")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		v, err := parseHex(s[2*i : 2*i+2])
		if err != nil {
			return nil, err
		}
		out[i] = byte(v)
	}
	return out, nil
}
