// Package badinput holds the bad-input sweep: integration tests that feed
// every Kafka consumer of the pipeline (window processor, forecaster,
// autoscale decider, actuator) garbage, oversize, schema-violating and
// out-of-range records between good ones on the real broker, and check
// that nothing crashes or stalls, that each rejected record lands on the
// dead-letter topic with its reason (and a counter), and that the good
// records around them are processed. It has no code of its own.
package badinput
