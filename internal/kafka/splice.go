package kafka

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Splicing: a Fetch response is mostly record batches that already sit in
// the log's memory (hot tail, read cache). Encoding the response with kmsg
// would copy every byte into the response buffer (and joining a partition's
// pieces first would copy it again); instead the response is encoded with a
// marker in place of each partition's records, and the connection writes
// the encoded response and the records with one writev, the records taken
// from where they are.
//
// The marker is 16 random bytes chosen at start, never sent to a client:
// nothing a client sends or names can contain it, so the n-th marker in the
// encoded response is the n-th record set. Its length prefix, whose form
// depends on the version (INT32 before flexible versions, an unsigned
// varint of length+1 after), is rewritten for the true length, and the
// frame's size adjusted. TestSpliceMatchesEncoding checks the result byte
// for byte against kmsg's own encoding at every version.

var spliceMarker = func() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("kafka: splice marker: %v", err))
	}
	return b
}()

// splicedResponse is a response some of whose byte fields are written from
// pieces held elsewhere; each such field holds spliceMarker when encoded.
type splicedResponse struct {
	kmsg.Response
	fields []splicedField // in encoding order
}

type splicedField struct {
	pieces [][]byte
	size   int
}

// spliceMin is the record bytes from which a response is written with
// writev; below it copying into the connection's buffer is cheaper than a
// system call of its own, and lets pipelined responses share one write.
const spliceMin = 64 << 10

// size is the total length of the spliced fields.
func (r *splicedResponse) size() int {
	n := 0
	for _, f := range r.fields {
		n += f.size
	}
	return n
}

// splice returns what to put in a byte field that should carry pieces
// (size bytes in all): the marker, or an empty slice for no bytes.
func (r *splicedResponse) splice(pieces [][]byte, size int) []byte {
	if size == 0 {
		return []byte{}
	}
	r.fields = append(r.fields, splicedField{pieces: pieces, size: size})
	return spliceMarker
}

// encodeSpliced frames r as encodeResponse does into dst and returns the
// buffers to write: dst's parts and the fields' pieces in order.
func encodeSpliced(dst []byte, h requestHeader, r *splicedResponse) (net.Buffers, []byte, error) {
	dst = encodeResponse(dst, h, r.Response)
	if len(r.fields) == 0 {
		if bytes.Contains(dst, spliceMarker) {
			return nil, dst, fmt.Errorf("splice: a marker but no record sets")
		}
		return net.Buffers{dst}, dst, nil
	}
	flexible := r.IsFlexible()
	oldPrefix := appendBytesLen(nil, len(spliceMarker), flexible)
	// The rewritten prefixes go after the encoded response, in dst's spare
	// room, so the buffers below may point into dst.
	encLen := len(dst)
	for _, f := range r.fields {
		dst = appendBytesLen(dst, f.size, flexible)
	}
	enc, prefixes := dst[:encLen], dst[encLen:]
	bufs := make(net.Buffers, 0, 3*len(r.fields)+1)
	cur, grow := 0, 0
	for _, f := range r.fields {
		at := bytes.Index(enc[cur:], spliceMarker)
		if at < 0 {
			return nil, dst, fmt.Errorf("splice: %d record sets but fewer markers", len(r.fields))
		}
		at += cur
		pstart := at - len(oldPrefix)
		if pstart < cur || !bytes.Equal(enc[pstart:at], oldPrefix) {
			return nil, dst, fmt.Errorf("splice: marker at %d without its length prefix", at)
		}
		n := len(appendBytesLen(nil, f.size, flexible))
		bufs = append(bufs, enc[cur:pstart], prefixes[:n:n])
		prefixes = prefixes[n:]
		for _, p := range f.pieces {
			if len(p) > 0 {
				bufs = append(bufs, p)
			}
		}
		grow += n + f.size - len(oldPrefix) - len(spliceMarker)
		cur = at + len(spliceMarker)
	}
	if bytes.Contains(enc[cur:], spliceMarker) {
		return nil, dst, fmt.Errorf("splice: more markers than the %d record sets", len(r.fields))
	}
	bufs = append(bufs, enc[cur:])
	binary.BigEndian.PutUint32(enc[0:4], uint32(len(enc)-4+grow))
	return bufs, dst, nil
}

// appendBytesLen appends the length prefix of a byte field of n bytes:
// INT32 in classic versions, unsigned varint of n+1 in flexible ones.
func appendBytesLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return binary.AppendUvarint(dst, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}
