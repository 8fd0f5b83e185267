// Package servers launches model servers: a model serving spec (YAML,
// strict), its validation (errors name the field), and its rendering into
// what a server needs — a Triton model repository with config.pbtxt or an
// OpenVINO Model Server config.json — plus the Kubernetes objects that run
// it (a ConfigMap per model version, a Deployment whose readiness is the
// KServe v2 /v2/health/ready endpoint and whose pods Prometheus scrapes,
// and a Service). It also holds the decider that turns the model store (a
// directory of spec files, local or HDFS) into inference decisions —
// launch, update, retire — and the loop that publishes them.
//
// Pure parts (Parse, Validate, Render, Decide) do no I/O; Run is the loop.
package servers
