// Package openapi embeds the OpenAPI (Swagger 2.0) documents generated from the
// protos, so servers can serve them without reading files at run time.
package openapi

import _ "embed"

// Admin is the admin API's OpenAPI document (admin.swagger.json).
//
//go:embed admin.swagger.json
var Admin []byte

// Evaluation is the evaluation API's OpenAPI document (evaluation.swagger.json).
//
//go:embed evaluation.swagger.json
var Evaluation []byte
