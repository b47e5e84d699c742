// Package flagsfile is the flags-as-code file format of the flagforge CLI: one
// project's flags (definitions), and per environment its flag configurations and
// segments, as YAML or JSON. The contract: Encode is deterministic (flags,
// environments and segments sorted by key, map keys sorted, lists in their
// meaning-bearing order), so an export is diff-friendly and export -> apply ->
// export is byte-identical; Decode is strict (unknown fields and values are errors
// naming the path) and accepts enum short names ("boolean", "semver_gt"). The
// format is described by schema.json (JSON Schema) in this package.
package flagsfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
)

// Version is the file format version written in every file.
const Version = 1

// File is one project as code.
type File struct {
	// Flags are the project's flag definitions (revision and times dropped).
	Flags []*adminv1.Flag
	// Environments maps an environment key to its content.
	Environments map[string]*Environment
}

// Environment is one environment's flag configurations and segments.
type Environment struct {
	// Configs maps a flag key to its configuration in the environment.
	Configs map[string]*manifestv1.FlagConfig
	// Segments are the environment's segments (revision dropped).
	Segments []*manifestv1.Segment
}

// Normalize sorts flags and segments by key and drops server-managed fields
// (revisions, times, archived), so two files with the same meaning encode alike.
func (f *File) Normalize() {
	for i, fl := range f.Flags {
		c := proto.CloneOf(fl)
		c.Revision, c.CreateTime, c.UpdateTime, c.Archived = 0, nil, nil, false
		f.Flags[i] = c
	}
	sort.Slice(f.Flags, func(i, j int) bool { return f.Flags[i].GetKey() < f.Flags[j].GetKey() })
	for _, e := range f.Environments {
		for i, s := range e.Segments {
			c := proto.CloneOf(s)
			c.Revision = 0
			e.Segments[i] = c
		}
		sort.Slice(e.Segments, func(i, j int) bool { return e.Segments[i].GetKey() < e.Segments[j].GetKey() })
	}
}

// tree is the generic (JSON-shaped) form of f, keys as the API's JSON names.
func (f *File) tree() (map[string]any, error) {
	f.Normalize()
	flags := make([]any, 0, len(f.Flags))
	for _, fl := range f.Flags {
		v, err := toTree(fl)
		if err != nil {
			return nil, err
		}
		flags = append(flags, v)
	}
	envs := map[string]any{}
	for key, e := range f.Environments {
		configs := map[string]any{}
		for flag, c := range e.Configs {
			v, err := toTree(c)
			if err != nil {
				return nil, err
			}
			configs[flag] = v
		}
		segs := make([]any, 0, len(e.Segments))
		for _, s := range e.Segments {
			v, err := toTree(s)
			if err != nil {
				return nil, err
			}
			segs = append(segs, v)
		}
		envs[key] = map[string]any{"flags": configs, "segments": segs}
	}
	return map[string]any{"version": Version, "flags": flags, "environments": envs}, nil
}

// toTree renders m as protojson (JSON names, enums as names, defaults omitted)
// decoded into generic values.
func toTree(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return shortEnums(v), nil
}

// shortEnums rewrites the enum names the API writes ("FLAG_TYPE_BOOLEAN") to the
// short names the docs use ("boolean") in the fields that hold enums.
func shortEnums(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok {
				switch k {
				case "type":
					x[k] = strings.ToLower(strings.TrimPrefix(s, "FLAG_TYPE_"))
					continue
				case "operator":
					x[k] = strings.ToLower(strings.TrimPrefix(s, "OPERATOR_"))
					continue
				}
			}
			x[k] = shortEnums(e)
		}
	case []any:
		for i, e := range x {
			x[i] = shortEnums(e)
		}
	}
	return v
}

// Format is an encoding of a file.
type Format string

// The formats.
const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// Encode renders f deterministically.
func Encode(f *File, format Format) ([]byte, error) {
	t, err := f.tree()
	if err != nil {
		return nil, err
	}
	if format == JSON {
		b, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	}
	var buf bytes.Buffer
	buf.WriteString("# FlagForge flags as code (flagforge export). Schema: cli/flagsfile/schema.json\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(jsonNumbers(t)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonNumbers turns json.Number into int64 or float64 for YAML.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonNumbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
	}
	return v
}

// Decode reads a file (YAML or JSON: JSON is YAML) strictly. Errors are an
// *errs.Error listing every problem with its path in the file.
func Decode(data []byte) (*File, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("the file is not valid YAML or JSON: %w", err)
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, errors.New("the file must hold a mapping with version, flags and environments")
	}
	var vs []errs.Violation
	for k := range top {
		if k != "version" && k != "flags" && k != "environments" {
			vs = append(vs, errs.Violation{Field: k, Description: fmt.Sprintf("unknown field %q; the file holds version, flags and environments", k)})
		}
	}
	if v, _ := top["version"].(int); v != Version {
		vs = append(vs, errs.Violation{Field: "version", Description: fmt.Sprintf("must be %d", Version)})
	}
	f := &File{Environments: map[string]*Environment{}}
	flags, _ := top["flags"].([]any)
	for i, e := range flags {
		fl := &adminv1.Flag{}
		vs = append(vs, decodeInto(e, fl, fmt.Sprintf("flags[%d]", i))...)
		f.Flags = append(f.Flags, fl)
	}
	envs, _ := top["environments"].(map[string]any)
	for key, e := range envs {
		p := "environments." + key
		em, ok := e.(map[string]any)
		if !ok && e != nil {
			vs = append(vs, errs.Violation{Field: p, Description: "must be a mapping with flags and segments"})
			continue
		}
		env := &Environment{Configs: map[string]*manifestv1.FlagConfig{}}
		for k := range em {
			if k != "flags" && k != "segments" {
				vs = append(vs, errs.Violation{Field: p + "." + k, Description: fmt.Sprintf("unknown field %q; an environment holds flags and segments", k)})
			}
		}
		cfgs, _ := em["flags"].(map[string]any)
		for flag, c := range cfgs {
			fc := &manifestv1.FlagConfig{}
			vs = append(vs, decodeInto(c, fc, p+".flags."+flag)...)
			env.Configs[flag] = fc
		}
		segs, _ := em["segments"].([]any)
		for i, s := range segs {
			sg := &manifestv1.Segment{}
			vs = append(vs, decodeInto(s, sg, fmt.Sprintf("%s.segments[%d]", p, i))...)
			env.Segments = append(env.Segments, sg)
		}
		f.Environments[key] = env
	}
	if len(vs) > 0 {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Field < vs[j].Field })
		return nil, errs.InvalidAll(vs)
	}
	f.Normalize()
	return f, nil
}

// decodeInto decodes one generic value into m strictly, paths under prefix.
func decodeInto(v any, m proto.Message, prefix string) []errs.Violation {
	b, err := json.Marshal(yamlToJSON(v))
	if err != nil {
		return []errs.Violation{{Field: prefix, Description: err.Error()}}
	}
	err = strictjson.Unmarshal(b, m)
	if err == nil {
		return nil
	}
	vs := errs.ViolationsOf(err)
	if len(vs) == 0 {
		return []errs.Violation{{Field: prefix, Description: err.Error()}}
	}
	out := make([]errs.Violation, len(vs))
	for i, x := range vs {
		out[i] = errs.Violation{Field: prefix + "." + x.Field, Description: x.Description}
	}
	return out
}

// yamlToJSON turns YAML's map[any]any (never produced by v3 for string keys, but
// possible for others) into JSON-encodable values.
func yamlToJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = yamlToJSON(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = yamlToJSON(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = yamlToJSON(e)
		}
	}
	return v
}

// Manifest builds the manifest one environment of f would serve (for offline
// validation and evaluation).
func (f *File) Manifest(env string) (*manifestv1.Manifest, error) {
	e, ok := f.Environments[env]
	if !ok {
		return nil, fmt.Errorf("the file has no environment %q", env)
	}
	m := &manifestv1.Manifest{Environment: env, Version: 1}
	for _, fl := range f.Flags {
		variants := fl.GetVariants()
		if fl.GetType() == manifestv1.FlagType_FLAG_TYPE_BOOLEAN && len(variants) == 0 {
			variants = BooleanVariants()
		}
		cfg := e.Configs[fl.GetKey()]
		if cfg == nil {
			cfg = InitialConfig(fl.GetType(), variants)
		}
		m.Flags = append(m.Flags, &manifestv1.Flag{Key: fl.GetKey(), Type: fl.GetType(), Variants: variants, ClientVisible: fl.GetClientVisible(), Config: cfg})
	}
	m.Segments = e.Segments
	return m, nil
}

// InitialConfig is the configuration the control plane gives a new flag in every
// environment: off, serving its off variant (the false variant of a boolean
// flag, else the first).
func InitialConfig(t manifestv1.FlagType, variants []*manifestv1.Variant) *manifestv1.FlagConfig {
	off := ""
	for _, v := range variants {
		if b, ok := v.GetValue().GetKind().(*structpb.Value_BoolValue); ok && t == manifestv1.FlagType_FLAG_TYPE_BOOLEAN && !b.BoolValue {
			off = v.GetKey()
		}
	}
	if off == "" && len(variants) > 0 {
		off = variants[0].GetKey()
	}
	return &manifestv1.FlagConfig{OffVariant: off, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: off}}}
}
