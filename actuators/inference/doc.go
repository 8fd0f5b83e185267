// Package inference is the actuator handler of inference decisions: it
// launches, updates and retires model servers (Triton, OpenVINO Model
// Server) by server-side applying the objects inference/servers renders —
// a ConfigMap per model version, a Deployment and a Service — with its own
// field manager (ebbflow-inference), idempotently, and only on objects it
// owns (labelled app.kubernetes.io/managed-by=ebbflow and
// ebbflow.io/model=<name>): a foreign object with the same name is refused
// and left untouched.
//
// An update is a rolling update with maxUnavailable 0 and maxSurge 1 on
// the model's one Deployment: a pod of the old version is removed only
// once a pod of the new version is Ready, so the old version serves until
// the new one does, the Service (selecting every version) never loses its
// endpoints, and the autoscaler keeps scaling the same workload. Each
// version has its own ConfigMap, so old pods keep their configuration;
// ConfigMaps of versions no longer running are deleted by the next
// decision about the model once the rollout is complete.
package inference
