package batch

// Codecs, written and read the way Kafka clients expect:
//
//   - gzip: written as one member (klauspost/compress, the stdlib's format);
//     read with any number of members.
//   - snappy: written as one raw snappy block, as franz-go writes it; read as
//     either a raw block or the xerial framing the Java client writes.
//   - lz4: the LZ4 frame format with independent 64 KiB blocks, the block
//     size the Java client writes (its reader takes any standard size).
//   - zstd: written as one frame; read with any number of frames.
//
// Every decoder is bounded by its caller's limit, at most
// MaxDecompressedSize, so a small batch cannot expand into gigabytes (a zip
// bomb); going over is ErrTooLarge. The bound is enforced while decoding,
// before the output grows past it, except for a zstd frame that does not
// declare its size (zstd-jni's streams), which one shared decoder bounds by
// MaxDecompressedSize and the limit is checked after.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize bounds what one compressed batch may decompress to on
// any path, whatever the topic allows. Producers size batches by their
// compressed bytes (1 MiB by default in Kafka), and even very compressible
// data stays well under this.
const MaxDecompressedSize = 64 << 20

var errDecompressLimit = fmt.Errorf("decompressed size exceeds %d bytes", MaxDecompressedSize)

// appendWriter is an io.Writer appending to b, so that stream encoders can
// write straight into the caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

type gzipEncoder struct {
	w   *gzip.Writer
	dst appendWriter
}

type lz4Encoder struct {
	w   *lz4.Writer
	dst appendWriter
}

// The gzip and lz4 decoders are pooled with the reader they read from, so
// that a decompress allocates only its output.
type gzipDecoder struct {
	r   gzip.Reader
	src bytes.Reader
}

type lz4Decoder struct {
	r   *lz4.Reader
	src bytes.Reader
}

// zstdStreamer decodes zstd frame by frame, block by block, so that a bound
// smaller than MaxDecompressedSize stops it before the output outgrows the
// bound. window is the window bound its options were last set to.
type zstdStreamer struct {
	d      *zstd.Decoder
	src    bytes.Reader
	window int
}

// minZstdWindow is the window every bounded zstd decode accepts, whatever
// its output bound: producers streaming zstd (zstd-jni, as the Java client
// does) write frames with a window of up to 8 MiB, which the format
// recommends every decoder support, even for little data.
const minZstdWindow = 8 << 20

// The codec state is shared by every caller in the process; it holds no
// data between calls, only reusable buffers.
var (
	gzipEncoders = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return &gzipEncoder{w: w}
	}}
	lz4Encoders = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.CompressionLevelOption(lz4.Fast)); err != nil {
			panic(err) // constant options; cannot fail
		}
		return &lz4Encoder{w: w}
	}}
	gzipDecoders  = sync.Pool{New: func() any { return new(gzipDecoder) }}
	lz4Decoders   = sync.Pool{New: func() any { return &lz4Decoder{r: lz4.NewReader(nil)} }}
	zstdStreamers = sync.Pool{New: func() any {
		// One goroutine-free streaming decoder each, bounded per call.
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			panic(err)
		}
		return &zstdStreamer{d: d}
	}}

	// EncodeAll and DecodeAll are safe for concurrent use and run up to
	// GOMAXPROCS calls at once, so one of each serves the whole process.
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithZeroFrames(true))
		if err != nil {
			panic(err)
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxDecompressedSize),
			zstd.WithDecoderMaxWindow(MaxDecompressedSize),
		)
		if err != nil {
			panic(err)
		}
		return d
	})
)

// compress appends src compressed with c to dst.
func compress(c Codec, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		e := gzipEncoders.Get().(*gzipEncoder)
		defer gzipEncoders.Put(e)
		e.dst.b = dst
		e.w.Reset(&e.dst)
		_, err := e.w.Write(src)
		if err == nil {
			err = e.w.Close()
		}
		out := e.dst.b
		e.dst.b = nil
		return out, err
	case CodecSnappy:
		at := len(dst)
		dst = slices.Grow(dst, s2.MaxEncodedLen(len(src)))
		block := s2.EncodeSnappy(dst[at:cap(dst)], src)
		return dst[:at+len(block)], nil
	case CodecLZ4:
		e := lz4Encoders.Get().(*lz4Encoder)
		defer lz4Encoders.Put(e)
		e.dst.b = dst
		e.w.Reset(&e.dst)
		_, err := e.w.Write(src)
		if err == nil {
			err = e.w.Close()
		}
		out := e.dst.b
		e.dst.b = nil
		return out, err
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return nil, fmt.Errorf("compress: unknown codec %d", c)
}

// decompress appends src decompressed with c to dst, failing with
// errDecompressLimit if more than limit (at most MaxDecompressedSize) bytes
// come out. Other errors are not wrapped in a sentinel; the caller knows
// what a failure means.
func decompress(c Codec, dst, src []byte, limit int) ([]byte, error) {
	limit = min(limit, MaxDecompressedSize)
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		d := gzipDecoders.Get().(*gzipDecoder)
		defer func() { d.src.Reset(nil); gzipDecoders.Put(d) }() // pool no reference to src
		d.src.Reset(src)
		if err := d.r.Reset(&d.src); err != nil {
			return dst, err
		}
		// The trailer's ISIZE is the uncompressed size mod 2^32: a hint
		// that lets the output grow once. It is trusted only as far as
		// deflate can expand (about 1032x), so a forged ISIZE cannot make
		// a tiny batch allocate the whole limit.
		hint := 0
		if len(src) >= 4 {
			hint = min(int(binary.LittleEndian.Uint32(src[len(src)-4:])), 1032*len(src))
		}
		return readBounded(dst, &d.r, hint, limit)
	case CodecSnappy:
		return decodeSnappy(dst, src, limit)
	case CodecLZ4:
		d := lz4Decoders.Get().(*lz4Decoder)
		defer func() { d.r.Reset(nil); d.src.Reset(nil); lz4Decoders.Put(d) }()
		d.src.Reset(src)
		d.r.Reset(&d.src)
		return readBounded(dst, d.r, 4*len(src), limit)
	case CodecZstd:
		// A first frame declaring more than limit is refused before
		// anything is allocated.
		var fh zstd.Header
		hint := 4 * len(src)
		if fh.Decode(src) == nil && fh.HasFCS {
			if fh.FrameContentSize > uint64(limit) {
				return dst, errDecompressLimit
			}
			// A claim is only a claim: a few header bytes may declare up
			// to the limit, so the output is sized from the claim only as
			// far as the input could plausibly expand, and grows as bytes
			// really come out.
			hint = int(min(fh.FrameContentSize, uint64(max(64*len(src), 64<<10))))
		}
		if limit < MaxDecompressedSize {
			return decodeZstdBounded(dst, src, hint, limit)
		}
		// At the process-wide bound, the shared decoder enforces it
		// itself (refusing a frame declaring more, stopping one that
		// outgrows it), decoding whole frames at once.
		out, err := zstdDecoder().DecodeAll(src, dst)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > MaxDecompressedSize {
			return out, errDecompressLimit
		}
		return out, err
	}
	return dst, fmt.Errorf("decompress: unknown codec %d", c)
}

// decodeZstdBounded decodes src as a stream, so that output past limit is
// never produced: memory is the output (at most limit) plus the frame's
// window (at most max(limit, minZstdWindow)), whatever src claims.
func decodeZstdBounded(dst, src []byte, hint, limit int) ([]byte, error) {
	z := zstdStreamers.Get().(*zstdStreamer)
	defer func() {
		_ = z.d.Reset(nil) // pool no reference to src
		z.src.Reset(nil)
		zstdStreamers.Put(z)
	}()
	z.src.Reset(src)
	window := min(max(limit, minZstdWindow), MaxDecompressedSize)
	var err error
	if window != z.window {
		// In streaming mode both options bound the window; the output is
		// bounded by readBounded. Set only when it changes: setting
		// allocates.
		err = z.d.ResetWithOptions(&z.src, zstd.WithDecoderMaxWindow(uint64(window)), zstd.WithDecoderMaxMemory(uint64(window)))
		z.window = window
	} else {
		err = z.d.Reset(&z.src)
	}
	if err != nil {
		return dst, err
	}
	out, err := readBounded(dst, z.d, hint, limit)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		err = errDecompressLimit
	}
	return out, err
}

// readBounded appends everything r produces to dst, failing once more than
// limit bytes have come out. hint is a guess at the size, used (up to the
// limit) to size the output once.
func readBounded(dst []byte, r io.Reader, hint, limit int) ([]byte, error) {
	if limit < 0 {
		return dst, errDecompressLimit
	}
	start := len(dst)
	dst = slices.Grow(dst, min(max(hint, 512), limit)+1) // +1: room to see EOF without growing
	for empty := 0; ; {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(cap(dst)-start, limit+1-(len(dst)-start)))
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if n == 0 && err == nil {
			if empty++; empty > 100 {
				return dst, io.ErrNoProgress
			}
		} else {
			empty = 0
		}
		if len(dst)-start > limit {
			return dst, errDecompressLimit
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// xerialMagic opens the framing snappy-java's SnappyOutputStream writes:
// the magic, then a version and a minimum compatible version (int32 each),
// then blocks, each a big endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16
	maxSnappyRatio   = 22
)

func decodeSnappy(dst, src []byte, limit int) ([]byte, error) {
	if len(src) >= xerialHeaderSize && bytes.HasPrefix(src, xerialMagic) {
		return decodeXerial(dst, src[xerialHeaderSize:], limit)
	}
	return decodeSnappyBlock(dst, src, limit)
}

// decodeSnappyBlock appends one raw snappy block to dst. The block states
// its decoded length up front, so the limit is checked before allocating.
func decodeSnappyBlock(dst, src []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, err
	}
	if n > limit {
		return dst, errDecompressLimit
	}
	// A snappy element expands at most 64 bytes out of 3, so a larger
	// claim is a lie; checking it keeps a forged length from allocating.
	if n > maxSnappyRatio*len(src)+64 {
		return dst, fmt.Errorf("snappy block of %d bytes claims %d decoded bytes", len(src), n)
	}
	at := len(dst)
	dst = slices.Grow(dst, n)
	if _, err := s2.Decode(dst[at:at+n], src); err != nil {
		return dst, err
	}
	return dst[:at+n], nil
}

func decodeXerial(dst, src []byte, limit int) ([]byte, error) {
	// Sum the blocks' decoded lengths first so that dst grows once and the
	// limit is enforced before anything is decoded.
	total := 0
	for rest := src; len(rest) > 0; {
		block, next, err := xerialBlock(rest)
		if err != nil {
			return dst, err
		}
		n, err := s2.DecodedLen(block)
		if err != nil {
			return dst, err
		}
		if total += n; total > limit {
			return dst, errDecompressLimit
		}
		rest = next
	}
	dst = slices.Grow(dst, total)
	for len(src) > 0 {
		block, next, _ := xerialBlock(src)
		var err error
		if dst, err = decodeSnappyBlock(dst, block, limit); err != nil {
			return dst, err
		}
		src = next
	}
	return dst, nil
}

func xerialBlock(src []byte) (block, rest []byte, err error) {
	if len(src) < 4 {
		return nil, nil, errors.New("xerial snappy: truncated block length")
	}
	n := binary.BigEndian.Uint32(src)
	src = src[4:]
	if uint64(n) > uint64(len(src)) {
		return nil, nil, errors.New("xerial snappy: truncated block")
	}
	return src[:n], src[n:], nil
}
