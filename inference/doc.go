// Package inference will hold inference-server specs: Triton model
// repositories and config.pbtxt, OpenVINO Model Server configuration and
// KServe v2 health checks. It is not built yet; see the project's issues.
package inference
