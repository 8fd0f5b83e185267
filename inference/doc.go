// Package inference groups what ebbflow does for inference services:
// inference/servers launches Triton and OpenVINO Model Server model
// servers from serving specs (see docs/servers.md).
package inference
