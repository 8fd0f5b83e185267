// Package schemas owns ebbflow's event contracts: the Go types of every
// event, their JSON Schemas (draft 2020-12, embedded from json/), the Arrow
// schema of metrics.raw batches, topic names, NATS subjects, and the
// CloudEvents binary-mode Kafka headers every JSON event carries.
//
// Events are the API. Other teams consume the topics in any language, so
// the JSON Schemas in json/ and asyncapi.yaml are the source of truth; the
// Go types mirror them and tests keep the two in agreement. Breaking a
// schema means a new topic version (ebbflow.<name>.v2), never an in-place
// change; TestSchemasBackwardCompatible compares every schema against the
// released copy in testdata/released.
//
// Encoding and decoding are safe for concurrent use.
package schemas
