// Package inference groups what ebbflow does for inference services:
// inference/autoscale is the elastic-scaling decider, inference/servers
// launches, updates and retires Triton and OpenVINO Model Server model
// servers from serving specs (see docs/servers.md).
package inference
