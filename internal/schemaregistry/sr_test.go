package schemaregistry

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// TestFranzGoClient drives the registry with franz-go's pkg/sr client and
// its serde: the calls a Confluent-compatible client makes.
func TestFranzGoClient(t *testing.T) {
	t.Parallel()
	a := newAPI(t, nil)
	ctx := t.Context()
	cl, err := sr.NewClient(sr.URLs(a.url))
	if err != nil {
		t.Fatal(err)
	}
	types, err := cl.SupportedTypes(ctx)
	if err != nil || len(types) != 3 {
		t.Fatalf("SupportedTypes: %v, %v", types, err)
	}
	ss, err := cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: userV1, Type: sr.TypeAvro})
	if err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	if ss.Subject != "users-value" || ss.Version != 1 || ss.ID <= 0 || ss.Type != sr.TypeAvro {
		t.Fatalf("CreateSchema: %+v", ss)
	}
	got, err := cl.SchemaByID(ctx, ss.ID)
	if err != nil || got.Schema != userV1 {
		t.Fatalf("SchemaByID: %+v, %v", got, err)
	}
	found, err := cl.LookupSchema(ctx, "users-value", sr.Schema{Schema: userV1})
	if err != nil || found.ID != ss.ID || found.Version != 1 {
		t.Fatalf("LookupSchema: %+v, %v", found, err)
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"users-value"}) {
		t.Fatalf("Subjects: %v, %v", subjects, err)
	}
	check, err := cl.CheckCompatibility(ctx, "users-value", -1, sr.Schema{Schema: userV3})
	if err != nil || check.Is {
		t.Fatalf("CheckCompatibility (incompatible): %+v, %v", check, err)
	}
	if _, err := cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: userV3}); err == nil {
		t.Fatal("an incompatible schema was registered")
	} else if re := (*sr.ResponseError)(nil); !asResponseError(err, &re) || re.ErrorCode != 409 {
		t.Fatalf("incompatible CreateSchema: %v", err)
	}
	res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}, "users-value")
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("SetCompatibility: %+v", res)
	}
	levels := cl.Compatibility(ctx, "users-value")
	if len(levels) != 1 || levels[0].Err != nil || levels[0].Level != sr.CompatFull {
		t.Fatalf("Compatibility: %+v", levels)
	}
	v2, err := cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: userV2})
	if err != nil || v2.Version != 2 {
		t.Fatalf("CreateSchema v2: %+v, %v", v2, err)
	}

	// The serde: Confluent wire format (magic 0, 4-byte id) around Avro.
	type user struct {
		Name string `avro:"name"`
		Age  int    `avro:"age"`
	}
	schema := avro.MustParse(userV2)
	var serde sr.Serde
	serde.Register(v2.ID, user{},
		sr.EncodeFn(func(v any) ([]byte, error) { return avro.Marshal(schema, v) }),
		sr.DecodeFn(func(b []byte, v any) error { return avro.Unmarshal(schema, b, v) }))
	enc, err := serde.Encode(user{Name: "ada", Age: 36})
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != 0 || int(binary.BigEndian.Uint32(enc[1:5])) != v2.ID {
		t.Fatalf("wire format header: % x", enc[:5])
	}
	var back user
	if err := serde.Decode(enc, &back); err != nil || back != (user{Name: "ada", Age: 36}) {
		t.Fatalf("Decode: %+v, %v", back, err)
	}

	deleted, err := cl.DeleteSubject(ctx, "users-value", sr.SoftDelete)
	if err != nil || !slices.Equal(deleted, []int{1, 2}) {
		t.Fatalf("DeleteSubject soft: %v, %v", deleted, err)
	}
	if deleted, err = cl.DeleteSubject(ctx, "users-value", sr.HardDelete); err != nil || !slices.Equal(deleted, []int{1, 2}) {
		t.Fatalf("DeleteSubject hard: %v, %v", deleted, err)
	}
	if _, err := cl.SchemaByID(ctx, ss.ID); err == nil {
		t.Fatal("schema readable after a permanent delete")
	}
}
