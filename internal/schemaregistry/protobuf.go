package schemaregistry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protobufType: .proto schemas, compiled by bufbuild/protocompile;
// compatibility follows Confluent's documented Protobuf rules for the
// common cases, and also refuses removing a field without reserving its
// number (which lets a later version reuse the number with another
// meaning).
type protobufType struct{}

// protoMain is the file name of the schema being parsed; references are
// its imports, named by their import paths.
const protoMain = "streamhouse_registry_schema.proto"

func (protobufType) canonical(text string, _ bool) (string, error) {
	return strings.TrimSpace(text), nil
}

func (protobufType) parse(text string, deps []dependency) (parsedSchema, error) {
	files := map[string]string{protoMain: text}
	for _, d := range deps {
		if d.typ != TypeProtobuf {
			return nil, fmt.Errorf("reference %s is a %s schema, not PROTOBUF", d.name, d.typ)
		}
		files[d.name] = d.text
	}
	var errs []error
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(files),
		}),
		MaxParallelism: 1,
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			errs = append(errs, err)
			return nil
		}, nil),
	}
	out, err := c.Compile(context.Background(), protoMain)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// protoDescs indexes a file's messages and enums, nested ones included,
// by full name.
type protoDescs struct {
	messages map[protoreflect.FullName]protoreflect.MessageDescriptor
	enums    map[protoreflect.FullName]protoreflect.EnumDescriptor
}

func indexProto(f protoreflect.FileDescriptor) protoDescs {
	d := protoDescs{messages: map[protoreflect.FullName]protoreflect.MessageDescriptor{}, enums: map[protoreflect.FullName]protoreflect.EnumDescriptor{}}
	addEnums := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			d.enums[es.Get(i).FullName()] = es.Get(i)
		}
	}
	var addMessages func(ms protoreflect.MessageDescriptors)
	addMessages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			d.messages[m.FullName()] = m
			addEnums(m.Enums())
			addMessages(m.Messages())
		}
	}
	addEnums(f.Enums())
	addMessages(f.Messages())
	return d
}

// compatible compares what the reader and writer know. Removals are
// judged in the newer schema only: readerIsNew says which that is.
func (protobufType) compatible(reader, writer parsedSchema, readerIsNew bool) []string {
	rf, wf := reader.(protoreflect.FileDescriptor), writer.(protoreflect.FileDescriptor)
	newer, older := rf, wf
	if !readerIsNew {
		newer, older = wf, rf
	}
	var out []string
	add := func(kind, format string, args ...any) {
		out = append(out, kind+": "+fmt.Sprintf(format, args...))
	}
	if newer.Package() != older.Package() {
		add("PACKAGE_CHANGED", "package %q became %q", older.Package(), newer.Package())
		return out
	}
	nd, od := indexProto(newer), indexProto(older)
	for name, om := range od.messages {
		nm, ok := nd.messages[name]
		if !ok {
			add("MESSAGE_REMOVED", "message %s was removed", name)
			continue
		}
		protoFieldsCompat(nm, om, add)
	}
	for name, oe := range od.enums {
		ne, ok := nd.enums[name]
		if !ok {
			add("ENUM_REMOVED", "enum %s was removed", name)
			continue
		}
		vals := oe.Values()
		for i := range vals.Len() {
			v := vals.Get(i)
			if ne.Values().ByNumber(v.Number()) == nil && !ne.ReservedRanges().Has(v.Number()) && !ne.ReservedNames().Has(v.Name()) {
				add("ENUM_CONST_REMOVED", "value %s (%d) of enum %s was removed without reserving it", v.Name(), v.Number(), name)
			}
		}
	}
	return out
}

// protoFieldsCompat compares the fields of one message in its older and
// newer forms.
func protoFieldsCompat(nm, om protoreflect.MessageDescriptor, add func(kind, format string, args ...any)) {
	ofs, nfs := om.Fields(), nm.Fields()
	for i := range ofs.Len() {
		of := ofs.Get(i)
		nf := nfs.ByNumber(of.Number())
		if nf == nil {
			if of.Cardinality() == protoreflect.Required {
				add("REQUIRED_FIELD_REMOVED", "required field %s.%s (%d) was removed", om.FullName(), of.Name(), of.Number())
			} else if !nm.ReservedRanges().Has(of.Number()) && !nm.ReservedNames().Has(of.Name()) {
				add("FIELD_REMOVED", "field %s.%s (%d) was removed without reserving its number", om.FullName(), of.Name(), of.Number())
			}
			continue
		}
		where := fmt.Sprintf("field %s.%s (%d)", om.FullName(), of.Name(), of.Number())
		switch ok, named := protoKinds(of), protoKinds(nf); {
		case ok.kind != named.kind:
			add("FIELD_KIND_CHANGED", "%s changed from %s to %s", where, ok.kind, named.kind)
		case ok.kind == "message" || ok.kind == "enum":
			if ok.name != named.name {
				add("FIELD_NAMED_TYPE_CHANGED", "%s changed from %s to %s", where, ok.name, named.name)
			}
		case ok.name != named.name:
			add("FIELD_SCALAR_KIND_CHANGED", "%s changed from %s to %s", where, of.Kind(), nf.Kind())
		}
		if of.IsMap() != nf.IsMap() || (of.Cardinality() == protoreflect.Repeated) != (nf.Cardinality() == protoreflect.Repeated) {
			add("FIELD_LABEL_CHANGED", "%s changed between repeated and single", where)
		}
		if of.Cardinality() != protoreflect.Required && nf.Cardinality() == protoreflect.Required {
			add("REQUIRED_FIELD_ADDED", "%s became required", where)
		}
	}
	for i := range nfs.Len() {
		nf := nfs.Get(i)
		if ofs.ByNumber(nf.Number()) == nil && nf.Cardinality() == protoreflect.Required {
			add("REQUIRED_FIELD_ADDED", "required field %s.%s (%d) was added", nm.FullName(), nf.Name(), nf.Number())
		}
	}
}

// protoKind is a field's type for comparison: kind is "message", "enum" or
// "scalar"; name is the type's full name or, for scalars, the group of
// wire-compatible kinds.
type protoKind struct{ kind, name string }

func protoKinds(f protoreflect.FieldDescriptor) protoKind {
	if f.IsMap() {
		return protoKind{"map", string(f.MapKey().Kind().String()) + "," + protoKinds(f.MapValue()).name}
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return protoKind{"message", string(f.Message().FullName())}
	case protoreflect.EnumKind:
		return protoKind{"enum", string(f.Enum().FullName())}
	case protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Uint64Kind, protoreflect.BoolKind:
		return protoKind{"scalar", "varint"}
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protoKind{"scalar", "zigzag"}
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return protoKind{"scalar", "fixed32"}
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return protoKind{"scalar", "fixed64"}
	case protoreflect.StringKind, protoreflect.BytesKind:
		return protoKind{"scalar", "length-delimited"}
	}
	return protoKind{"scalar", f.Kind().String()}
}
