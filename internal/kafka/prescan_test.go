package kafka

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fillRequest sets every field of a request to a random non-default
// value, with two elements in every array, as a client could send.
func fillRequest(rng *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if name := v.Type().Field(i).Name; name == "Version" || name == "UnknownTags" {
				continue
			}
			fillRequest(rng, v.Field(i), depth)
		}
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(rng.IntN(200) - 1))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(rng.IntN(200)))
	case reflect.Float64:
		v.SetFloat(rng.Float64())
	case reflect.Array:
		for i := range v.Len() {
			fillRequest(rng, v.Index(i), depth)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", rng.IntN(1000)))
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.String {
			s := fmt.Sprintf("p%d", rng.IntN(1000))
			v.Set(reflect.ValueOf(&s))
		}
	case reflect.Slice:
		if depth > 4 {
			return
		}
		n := 2
		if v.Type().Elem().Kind() == reflect.Uint8 {
			n = 1 + rng.IntN(300)
		}
		sl := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			if sl.Index(i).Kind() == reflect.Struct {
				defaultValue(sl.Index(i))
			}
			fillRequest(rng, sl.Index(i), depth+1)
		}
		v.Set(sl)
	}
}

// TestLayoutsAcceptRealRequests: for every key and version served, bare
// and fully populated requests encoded by kmsg pass the length checks and
// decode to what was sent.
func TestLayoutsAcceptRealRequests(t *testing.T) {
	t.Parallel()
	if _, err := layouts(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for key, api := range handlers {
		for v := api.minVersion; v <= api.maxVersion; v++ {
			for i := range 20 {
				req := kmsg.RequestForKey(key)
				req.SetVersion(v)
				if i > 0 {
					fillRequest(rng, reflect.ValueOf(req).Elem(), 0)
				}
				body := req.AppendTo(nil)
				if err := checkBody(key, v, body); err != nil {
					t.Fatalf("%s v%d (sample %d): %v", kmsg.NameForKey(key), v, i, err)
				}
				back := kmsg.RequestForKey(key)
				back.SetVersion(v)
				if err := back.ReadFrom(body); err != nil {
					t.Fatalf("%s v%d: kmsg cannot read it back: %v", kmsg.NameForKey(key), v, err)
				}
				if again := back.AppendTo(nil); string(again) != string(body) {
					t.Fatalf("%s v%d: decoded request encodes differently", kmsg.NameForKey(key), v)
				}
			}
		}
	}
}

// TestLayoutsRejectInflatedLengths: lengths and counts that claim more
// than the request holds are refused before kmsg allocates for them, and
// the refusal is quick.
func TestLayoutsRejectInflatedLengths(t *testing.T) {
	t.Parallel()
	start := time.Now()
	if _, err := layouts(); err != nil {
		t.Fatal(err)
	}
	t.Logf("layouts of every key and version built in %v", time.Since(start))
	// CreateTopics v4 claiming 2^20 topics in a few bytes: kmsg would set
	// aside 2^20 topics (~100 MiB) first.
	create := kbin.AppendInt32(nil, 1<<20) // topics count
	create = append(create, make([]byte, 1<<20)...)
	// A flexible ApiVersions v3 whose top-level tag count is 2^32-1 with
	// nothing after it: kmsg would spin through the count.
	api := []byte{1, 1}                             // two empty compact strings
	api = append(api, 0xff, 0xff, 0xff, 0xff, 0x0f) // tag count
	meta := kbin.AppendInt32(nil, 100000)           // Metadata v1 topics
	meta = append(meta, make([]byte, 100000)...)    // one byte each: too few for a string
	for _, tc := range []struct {
		name         string
		key, version int16
		body         []byte
	}{
		{"create topics count", 19, 4, create},
		{"api versions tag count", apiVersionsKey, 3, api},
		{"metadata topics of one byte", metadataKey, 1, meta},
		{"metadata string longer than the request", metadataKey, 1, append(kbin.AppendInt32(nil, 1), 0x7f, 0xff)},
	} {
		start := time.Now()
		if err := checkBody(tc.key, tc.version, tc.body); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%s: refused after %v", tc.name, d)
		}
	}
}
