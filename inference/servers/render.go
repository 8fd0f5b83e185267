package servers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ebbflow/ebbflow/inference/autoscale"
)

// Labels and annotations on every object ebbflow renders. The actuator
// touches only objects labelled managed-by=ebbflow with the model's name.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedByEbbflow = "ebbflow"
	LabelName        = "app.kubernetes.io/name"
	LabelComponent   = "app.kubernetes.io/component"
	LabelModel       = "ebbflow.io/model"
	LabelVersion     = "ebbflow.io/model-version"
	LabelServer      = "ebbflow.io/server"
	// AnnotationSpecDigest is the sha256 of the spec document the objects
	// were rendered from.
	AnnotationSpecDigest = "ebbflow.io/spec-digest"
)

// Ports of both servers: KServe v2 HTTP and gRPC, and Triton's metrics
// (OVMS serves /metrics on its HTTP port).
const (
	PortHTTP          = 8000
	PortGRPC          = 8001
	PortTritonMetrics = 8002
	// ReadyPath is the KServe v2 readiness endpoint both servers serve.
	ReadyPath = "/v2/health/ready"
	LivePath  = "/v2/health/live"
)

// Objects are the Kubernetes objects that run one model version.
type Objects struct {
	ConfigMap  *corev1.ConfigMap
	Deployment *appsv1.Deployment
	Service    *corev1.Service
	// ModelConfig is the server's configuration file (config.pbtxt or
	// config.json), also in the ConfigMap, under ModelConfigName.
	ModelConfig     string
	ModelConfigName string
}

// ConfigMapName is the name of a model version's ConfigMap: one per
// version, so pods of the old version keep their configuration while the
// new version rolls out.
func ConfigMapName(model string, version int64) string {
	return fmt.Sprintf("%s-v%d", model, version)
}

// OwnedLabels are the labels that mark an object as ebbflow's, for one model.
func OwnedLabels(model string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByEbbflow, LabelModel: model}
}

// Render builds the objects of a valid spec. digest is the spec
// document's Digest; replicas the Deployment's replica count (the
// autoscaler changes it afterwards; see the actuator).
func Render(s Spec, digest string, cfg Config, replicas int32) (Objects, error) {
	if err := s.Validate(cfg); err != nil {
		return Objects{}, fmt.Errorf("render %s: %w", s.Name, err)
	}
	ns := s.NamespaceOr(cfg)
	version := strconv.FormatInt(s.Version, 10)
	labels := func(extra map[string]string) map[string]string {
		l := OwnedLabels(s.Name)
		l[LabelName] = s.Name
		l[LabelComponent] = "model-server"
		l[LabelServer] = s.Server
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	o := Objects{}
	if s.Server == ServerTriton {
		o.ModelConfig, o.ModelConfigName = TritonConfig(s, cfg), TritonConfigFile
	} else {
		o.ModelConfig, o.ModelConfigName = string(OVMSConfig(s)), OVMSConfigFile
	}
	o.ConfigMap = &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName(s.Name, s.Version), Namespace: ns,
			Labels:      labels(map[string]string{LabelVersion: version}),
			Annotations: map[string]string{AnnotationSpecDigest: digest}},
		Data: map[string]string{o.ModelConfigName: o.ModelConfig},
	}
	metricsPort, container := int32(PortHTTP), serverContainer(s, cfg)
	if s.Server == ServerTriton {
		metricsPort = PortTritonMetrics
	}
	deployAnn := PolicyAnnotations(s.Scaling)
	deployAnn[AnnotationSpecDigest] = digest
	deployAnn[LabelVersion] = version
	maxUnavailable, maxSurge := intstr.FromInt32(0), intstr.FromInt32(1)
	o.Deployment = &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: ns, Labels: labels(nil),
			Annotations: deployAnn},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: OwnedLabels(s.Name)},
			// The old version keeps serving until each new pod is Ready.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}},
			ProgressDeadlineSeconds: ptr(int32(600)),
			RevisionHistoryLimit:    ptr(int32(3)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels(map[string]string{LabelVersion: version}),
					Annotations: map[string]string{
						"prometheus.io/scrape": "true",
						"prometheus.io/port":   strconv.Itoa(int(metricsPort)),
						"prometheus.io/path":   "/metrics",
						AnnotationSpecDigest:   digest,
					},
				},
				Spec: corev1.PodSpec{
					Affinity:       &corev1.Affinity{NodeAffinity: nodeAffinity(s, cfg)},
					Tolerations:    tolerations(s, cfg),
					InitContainers: []corev1.Container{fetchContainer(s, cfg)},
					Containers:     []corev1.Container{container},
					Volumes: []corev1.Volume{
						{Name: "models", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: o.ConfigMap.Name}}}},
					},
					// Triton drains in-flight requests on SIGTERM.
					TerminationGracePeriodSeconds: ptr(int64(60)),
				},
			},
		},
	}
	svcPorts := []corev1.ServicePort{
		{Name: "http", Port: PortHTTP, TargetPort: intstr.FromString("http")},
		{Name: "grpc", Port: PortGRPC, TargetPort: intstr.FromString("grpc")},
	}
	if s.Server == ServerTriton {
		svcPorts = append(svcPorts, corev1.ServicePort{Name: "metrics", Port: PortTritonMetrics, TargetPort: intstr.FromString("metrics")})
	}
	o.Service = &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: ns, Labels: labels(nil)},
		// Version-free selector: both versions serve during a rollout.
		Spec: corev1.ServiceSpec{Selector: OwnedLabels(s.Name), Ports: svcPorts},
	}
	return o, nil
}

func ptr[T any](v T) *T { return &v }

func serverContainer(s Spec, cfg Config) corev1.Container {
	c := corev1.Container{
		Name: s.Server,
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: PortHTTP, Protocol: corev1.ProtocolTCP},
			{Name: "grpc", ContainerPort: PortGRPC, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: ReadyPath, Port: intstr.FromString("http")}}, PeriodSeconds: 5, FailureThreshold: 3},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: LivePath, Port: intstr.FromString("http")}}, PeriodSeconds: 10, FailureThreshold: 6},
		// Loading a model (and building a TensorRT engine) takes minutes:
		// liveness waits for start-up.
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: LivePath, Port: intstr.FromString("http")}}, PeriodSeconds: 10, FailureThreshold: 60},
		VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: RepositoryPath}},
		Resources:    resources(s, cfg),
	}
	switch s.Server {
	case ServerTriton:
		c.Image = cfg.TritonImage
		c.Command = []string{"tritonserver"}
		c.Args = []string{
			"--model-repository=" + RepositoryPath,
			"--model-control-mode=none",
			"--disable-auto-complete-config",
			"--strict-readiness=true",
			fmt.Sprintf("--http-port=%d", PortHTTP),
			fmt.Sprintf("--grpc-port=%d", PortGRPC),
			fmt.Sprintf("--metrics-port=%d", PortTritonMetrics),
		}
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: PortTritonMetrics, Protocol: corev1.ProtocolTCP})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "config", ReadOnly: true,
			MountPath: RepositoryPath + "/" + s.Name + "/" + TritonConfigFile, SubPath: TritonConfigFile})
	case ServerOVMS:
		c.Image = cfg.OVMSImage
		c.Args = []string{
			"--config_path=" + OVMSConfigDir + "/" + OVMSConfigFile,
			fmt.Sprintf("--rest_port=%d", PortHTTP),
			fmt.Sprintf("--port=%d", PortGRPC),
			"--metrics_enable",
		}
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "config", ReadOnly: true, MountPath: OVMSConfigDir})
	}
	return c
}

// fetchContainer copies the model files from the model store into the
// pod's repository before the server starts.
func fetchContainer(s Spec, cfg Config) corev1.Container {
	return corev1.Container{
		Name:  "fetch-model",
		Image: cfg.FetchImage,
		Args: []string{"inference", "fetch", "--from", s.ModelURI,
			"--to", fmt.Sprintf("%s/%s/%d", RepositoryPath, s.Name, s.Version)},
		VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: RepositoryPath}},
	}
}

func resources(s Spec, cfg Config) corev1.ResourceRequirements {
	rl := corev1.ResourceList{}
	if s.Resources.CPU != "" {
		rl[corev1.ResourceCPU] = resource.MustParse(s.Resources.CPU)
	}
	if s.Resources.Memory != "" {
		rl[corev1.ResourceMemory] = resource.MustParse(s.Resources.Memory)
	}
	if gm, ok := cfg.GPUModels[s.Device]; ok {
		n := s.Resources.GPUs
		if n == 0 {
			n = 1
		}
		rl[corev1.ResourceName(gm.Resource)] = *resource.NewQuantity(int64(n), resource.DecimalSI)
	}
	if len(rl) == 0 {
		return corev1.ResourceRequirements{}
	}
	return corev1.ResourceRequirements{Requests: rl, Limits: rl.DeepCopy()}
}

func nodeAffinity(s Spec, cfg Config) *corev1.NodeAffinity {
	exprs := []corev1.NodeSelectorRequirement{{Key: cfg.PoolLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{cfg.Pool}}}
	if gm, ok := cfg.GPUModels[s.Device]; ok {
		for _, k := range sortedKeys(gm.NodeLabel) {
			exprs = append(exprs, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{gm.NodeLabel[k]}})
		}
	}
	return &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: exprs}}}}
}

func tolerations(s Spec, cfg Config) []corev1.Toleration {
	t := []corev1.Toleration{{Key: cfg.PoolLabel, Operator: corev1.TolerationOpEqual, Value: cfg.Pool, Effect: corev1.TaintEffectNoSchedule}}
	if gm, ok := cfg.GPUModels[s.Device]; ok {
		t = append(t, corev1.Toleration{Key: gm.Resource, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return t
}

// PolicyAnnotations writes a scaling policy as the ebbflow.io/ annotations
// the autoscaler reads from a Deployment (autoscale.PolicyFromAnnotations
// reads them back to the same policy).
func PolicyAnnotations(p autoscale.Policy) map[string]string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	d := func(x time.Duration) string { return x.String() }
	out := map[string]string{
		autoscale.AnnotationMinReplicas:     strconv.Itoa(int(p.MinReplicas)),
		autoscale.AnnotationMaxReplicas:     strconv.Itoa(int(p.MaxReplicas)),
		autoscale.AnnotationMaxStepUp:       strconv.Itoa(int(p.MaxStepUp)),
		autoscale.AnnotationMaxStepDown:     strconv.Itoa(int(p.MaxStepDown)),
		autoscale.AnnotationStartupTime:     d(p.StartupTime),
		autoscale.AnnotationStabilization:   d(p.ScaleDownStabilization),
		autoscale.AnnotationLatencySLOMs:    f(p.LatencySLOMs),
		autoscale.AnnotationErrorRatioLimit: f(p.ErrorRatioLimit),
	}
	for sig, sp := range p.Signals {
		out[autoscale.AnnotationExpectRatePrefix+sig] = f(sp.ExpectRate)
		out[autoscale.AnnotationCapacityPrefix+sig] = f(sp.Capacity)
	}
	return out
}

// ApplyDocument is an object as sent in a server-side apply: its JSON
// without the fields the server owns (status, creationTimestamp), so an
// apply claims only what ebbflow means to set.
func ApplyDocument(obj any) ([]byte, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	prune(m)
	return json.Marshal(m)
}

// prune drops nulls (creationTimestamp) recursively. Empty objects stay:
// emptyDir: {} means something.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
		case []any:
			for _, it := range x {
				if im, ok := it.(map[string]any); ok {
					prune(im)
				}
			}
		}
	}
}

// YAML renders the objects as a multi-document YAML stream in apply order
// (ConfigMap, Deployment, Service), as sent to the API server.
func (o Objects) YAML() ([]byte, error) {
	var out []byte
	for i, obj := range []any{o.ConfigMap, o.Deployment, o.Service} {
		doc, err := ApplyDocument(obj)
		if err != nil {
			return nil, err
		}
		y, err := yaml.JSONToYAML(doc)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, y...)
	}
	return out, nil
}
