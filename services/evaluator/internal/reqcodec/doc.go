// Package reqcodec decodes evaluation requests straight into the engine's context
// type (map[string]any, see eval.NewContext) and encodes evaluation responses, for
// the evaluator's hot path: JSON bodies of POST /v1/evaluate and OFREP, and the
// protobuf wire form of EvaluateRequest. The general decoders (strictjson,
// encoding/json + protojson, proto.Unmarshal into google.protobuf.Struct) cost a
// third of a served evaluation; these skip the intermediate Struct.
//
// The contract is one of agreement, with a fallback: every Decode function either
// reports ok and returns exactly what the general decoder of its endpoint would have
// produced (the same flag key, type, default value and context attributes), or
// reports !ok, and the caller then runs the general decoder, which produces the
// answer or the error (with the field named as the caller spelled it). Decoders
// return !ok for any input they do not fully understand: malformed input, a
// duplicate key, an escape of a surrogate, invalid UTF-8, a number out of range,
// an unknown field, a wire type they do not expect. Errors and unusual inputs thus
// take the general path; the differential tests check both halves of the contract
// on random inputs. Context limits (eval's MaxAttributes ...) are checked by the
// engine when the context is built, as on the general path.
//
// Encoders write the JSON protojson writes, compactly (protojson inserts random
// spaces; the value is the same), and report !ok for what they cannot write the
// same way (a non-finite number, invalid UTF-8), so that the caller falls back to
// protojson and keeps its error.
package reqcodec
