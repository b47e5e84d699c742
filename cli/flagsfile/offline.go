package flagsfile

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/eval"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// BooleanVariants are the variants the control plane gives a boolean flag
// created without any.
func BooleanVariants() []*manifestv1.Variant {
	return []*manifestv1.Variant{
		{Key: "on", Value: structpb.NewBoolValue(true)},
		{Key: "off", Value: structpb.NewBoolValue(false)},
	}
}

// Validate runs the engine's checks (the same the control plane runs on save) on
// every environment of f and returns one line per problem ("production:
// flags[2].config.rules[0]...: ..."), sorted; none when f is valid.
func Validate(f *File) []string {
	var out []string
	envs := make([]string, 0, len(f.Environments))
	for e := range f.Environments {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	for _, env := range envs {
		m, err := f.Manifest(env)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		err = eval.ValidateManifest(m)
		var ve *eval.ValidationError
		switch {
		case errors.As(err, &ve):
			for _, fe := range ve.Errors {
				out = append(out, fmt.Sprintf("%s: %s", env, filePath(m, fe.Path))+": "+fe.Message)
			}
		case err != nil:
			out = append(out, env+": "+err.Error())
		}
		for key := range f.Environments[env].Configs {
			if !hasFlag(f, key) {
				out = append(out, fmt.Sprintf("%s: environments.%s.flags.%s: no flag %q in flags", env, env, key, key))
			}
		}
	}
	return out
}

func hasFlag(f *File, key string) bool {
	for _, fl := range f.Flags {
		if fl.GetKey() == key {
			return true
		}
	}
	return false
}

// filePath turns a manifest path ("flags[3].config.rules[0]") into the file's
// ("environments.production.flags.new-ui.rules[0]", "flags[3].variants[1]").
func filePath(m *manifestv1.Manifest, p string) string {
	var i int
	if _, err := fmt.Sscanf(p, "flags[%d]", &i); err == nil && i < len(m.GetFlags()) {
		rest := p[strings.Index(p, "]")+1:]
		if strings.HasPrefix(rest, ".config") {
			return "environments." + m.GetEnvironment() + ".flags." + m.GetFlags()[i].GetKey() + strings.TrimPrefix(rest, ".config")
		}
		return fmt.Sprintf("flags[%d]%s (%s)", i, rest, m.GetFlags()[i].GetKey())
	}
	if _, err := fmt.Sscanf(p, "segments[%d]", &i); err == nil {
		return "environments." + m.GetEnvironment() + "." + p
	}
	return p
}

// Decision is one offline evaluation with its explanation.
type Decision struct {
	Flag, Environment string
	Value             any
	Variant, Reason   string
	RuleID            string
	ErrorCode         string
	ErrorMessage      string
}

// Evaluate decides flag in env of f for the context attributes (offline, with
// the same engine as the evaluator and the SDKs).
func Evaluate(f *File, env, flag string, context map[string]any) (*Decision, error) {
	m, err := f.Manifest(env)
	if err != nil {
		return nil, err
	}
	cm, err := eval.Compile(m)
	if err != nil {
		return nil, err
	}
	s, err := structpb.NewStruct(context)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	c, err := eval.ContextFromStruct(s)
	if err != nil {
		return nil, fmt.Errorf("context: %w", err)
	}
	r := cm.Evaluate(flag, c, eval.Any, nil)
	return &Decision{Flag: flag, Environment: env, Value: r.Value, Variant: r.Variant, Reason: string(r.Reason),
		RuleID: r.RuleID, ErrorCode: string(r.ErrorCode), ErrorMessage: r.ErrorMessage}, nil
}

// Explain renders d for people: what was served and why.
func (d *Decision) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flag %s in %s: value %v", d.Flag, d.Environment, d.Value)
	if d.Variant != "" {
		fmt.Fprintf(&b, " (variant %q)", d.Variant)
	}
	fmt.Fprintf(&b, "\nreason: %s", d.Reason)
	switch d.Reason {
	case "TARGETING_MATCH":
		if d.RuleID != "" {
			fmt.Fprintf(&b, ": rule %q matched", d.RuleID)
		} else {
			b.WriteString(": the targetingKey is listed in the flag's targets")
		}
	case "SPLIT":
		b.WriteString(": the context's bucket fell in this variant's share of the rollout")
		if d.RuleID != "" {
			fmt.Fprintf(&b, " of rule %q", d.RuleID)
		}
	case "DEFAULT":
		b.WriteString(": no target or rule matched; the default serve applies")
	case "STATIC":
		b.WriteString(": the flag serves one variant to everyone")
	case "DISABLED":
		b.WriteString(": the flag is off; the off variant is served")
	case "PREREQUISITE_FAILED":
		b.WriteString(": a prerequisite flag did not serve a required variant")
	case "ERROR":
		fmt.Fprintf(&b, ": %s %s", d.ErrorCode, d.ErrorMessage)
	}
	b.WriteString("\n")
	return b.String()
}
