package rest

import "testing"

func TestMarshalWithOriginal(t *testing.T) {
	t.Parallel()
	type inner struct {
		A int `json:"a_b" orig:"aB"`
	}
	type v struct {
		Plain    string  `json:"plain"`
		Renamed  int64   `json:"renamed_field" orig:"renamedField"`
		Same     int     `json:"same" orig:"same"`
		Omitted  string  `json:"omitted,omitempty" orig:"omittedToo"`
		Kept     string  `json:"kept,omitempty" orig:"keptToo"`
		Skipped  int     `json:"-"`
		Nested   []inner `json:"nested"`
		Escaped  string  `json:"escaped"`
		unexport int
	}
	in := v{Plain: "p", Renamed: 7, Same: 1, Kept: "k", Skipped: 9, Nested: []inner{{3}}, Escaped: `"<`, unexport: 1}
	got, err := marshalWithOriginal(in)
	if err != nil {
		t.Fatal(err)
	}
	// Nested values marshal with their own MarshalJSON (none here).
	want := `{"plain":"p","renamed_field":7,"renamedField":7,"same":1,"kept":"k","keptToo":"k","nested":[{"a_b":3}],"escaped":"\"\u003c"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestEither(t *testing.T) {
	t.Parallel()
	one, two := "1", "2"
	for _, c := range []struct {
		ours, theirs *string
		want         *string
		bad          bool
	}{
		{nil, nil, nil, false},
		{&one, nil, &one, false},
		{nil, &two, &two, false},
		{&one, &one, &one, false},
		{&one, &two, nil, true},
	} {
		got, err := either(c.ours, "ours", c.theirs, "theirs")
		if (err != nil) != c.bad || got != c.want {
			t.Fatalf("either(%v, %v) = %v, %v", c.ours, c.theirs, got, err)
		}
	}
}
