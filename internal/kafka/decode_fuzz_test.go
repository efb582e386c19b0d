package kafka

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Decoding a request of n bytes allocates at most decodeAllocFactor*n +
// decodeAllocSlack bytes, whatever the bytes claim, and takes little time.
// The factor covers kmsg setting aside a slice of Go structs for an array
// (at most the element's Go size over its smallest encoding, below 32 for
// every request served) plus the strings it copies and maps of unknown
// tags; the slack covers the request struct itself and the measurement.
const (
	decodeAllocFactor = 48
	decodeAllocSlack  = 256 << 10
	decodeMaxTime     = time.Second
)

// decodeInput is a fuzz input: api key and version, then the body.
func decodeInput(key, version int16, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	return append(b, body...)
}

// decodeSeeds are, for every key and version served, a bare and a
// populated request, and requests whose lengths claim far more than they
// hold (the cases that cost memory or CPU before the length checks).
func decodeSeeds() [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]int16, 0, len(handlers))
	for k := range handlers {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var out [][]byte
	for _, key := range keys {
		api := handlers[key]
		for v := api.minVersion; v <= api.maxVersion; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			out = append(out, decodeInput(key, v, req.AppendTo(nil)))
			fillRequest(rng, reflect.ValueOf(req).Elem(), 0)
			out = append(out, decodeInput(key, v, req.AppendTo(nil)))
		}
	}
	return append(out, inflatedSeeds()...)
}

// inflatedSeeds claim large counts in small requests.
func inflatedSeeds() [][]byte {
	createTopics := kbin.AppendInt32(nil, 1<<20)
	createTopics = append(createTopics, make([]byte, 1<<20)...)
	createTopicsFlex := kbin.AppendUvarint(nil, 1<<20)
	createTopicsFlex = append(createTopicsFlex, make([]byte, 1<<20)...)
	return [][]byte{
		decodeInput(19, 4, createTopics),
		decodeInput(19, 5, createTopicsFlex),
		decodeInput(apiVersionsKey, 3, []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}),
		decodeInput(metadataKey, 12, append([]byte{0xff, 0xff, 0x3f}, make([]byte, 1<<16)...)),
		decodeInput(fetchKey, 12, append(make([]byte, 21), append([]byte{0xff, 0xff, 0x3f}, make([]byte, 1<<16)...)...)),
	}
}

// decodeCost decodes one fuzz input as the connection would and returns
// the bytes allocated and the time taken.
func decodeCost(in []byte) (body []byte, alloc uint64, took time.Duration, ok bool) {
	if len(in) < 4 {
		return nil, 0, 0, false
	}
	key, version := int16(binary.BigEndian.Uint16(in)), int16(binary.BigEndian.Uint16(in[2:]))
	api, served := handlers[key]
	if !served || version < api.minVersion || version > api.maxVersion {
		return nil, 0, 0, false
	}
	body = in[4:]
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, _ = decodeRequest(key, version, body)
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	return body, after.TotalAlloc - before.TotalAlloc, took, true
}

func checkDecodeCost(t *testing.T, in []byte) {
	t.Helper()
	body, alloc, took, ok := decodeCost(in)
	if !ok {
		return
	}
	key, version := int16(binary.BigEndian.Uint16(in)), int16(binary.BigEndian.Uint16(in[2:]))
	if limit := uint64(decodeAllocFactor*len(body) + decodeAllocSlack); alloc > limit {
		t.Fatalf("%s v%d: a %d-byte body allocated %d bytes decoding (limit %d)", kmsg.NameForKey(key), version, len(body), alloc, limit)
	}
	if took > decodeMaxTime {
		t.Fatalf("%s v%d: a %d-byte body took %v to decode", kmsg.NameForKey(key), version, len(body), took)
	}
}

// TestDecodeCostBounded runs the seeds of FuzzDecodeBounded, among them
// the requests that inflate allocations or spin without the length checks.
func TestDecodeCostBounded(t *testing.T) {
	if _, err := layouts(); err != nil {
		t.Fatal(err)
	}
	for _, in := range decodeSeeds() {
		checkDecodeCost(t, in)
	}
}

// FuzzDecodeBounded decodes arbitrary requests of every served key and
// version (the input starts with the key and version) and fails when one
// allocates more than decodeAllocFactor bytes per request byte (plus
// slack) or takes long: memory and CPU stay bounded whatever lengths a
// client claims.
func FuzzDecodeBounded(f *testing.F) {
	if _, err := layouts(); err != nil {
		f.Fatal(err)
	}
	for _, in := range decodeSeeds() {
		f.Add(in)
	}
	f.Fuzz(checkDecodeCost)
}

// TestDecodeSeedsCoverEveryKey keeps the seeds in step with the keys
// served.
func TestDecodeSeedsCoverEveryKey(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, in := range decodeSeeds() {
		seen[fmt.Sprint(binary.BigEndian.Uint16(in), "v", binary.BigEndian.Uint16(in[2:]))] = true
	}
	for key, api := range handlers {
		for v := api.minVersion; v <= api.maxVersion; v++ {
			if !seen[fmt.Sprint(uint16(key), "v", uint16(v))] {
				t.Errorf("no seed for %s v%d", kmsg.NameForKey(key), v)
			}
		}
	}
}
