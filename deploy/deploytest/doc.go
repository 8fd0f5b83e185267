// Package deploytest holds the tests of what deploy/ ships: the Grafana
// dashboard and the alerts name only metrics ebbflow's components register,
// every PromQL expression parses, the kustomize overlays build and cover
// every component, and (integration) the real kube-apiserver accepts each
// overlay with a server-side dry run.
//
// Registered lists what the components register, from their own
// constructors.
package deploytest
