package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// ApplyAdmissionPolicies creates a copy of the ValidatingAdmissionPolicies
// and bindings of a manifest file (deploy/admission) for one test: each
// name gets "-"+suffix, and each binding is narrowed to objects matching
// objects (nil: any), so the copy judges only the test's own objects and
// never another test's on the shared API server. The policies' rules and
// messages are the file's. The returned function deletes the copies.
func ApplyAdmissionPolicies(ctx context.Context, cs kubernetes.Interface, path, suffix string, objects *metav1.LabelSelector) (func(), error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var policies, bindings []string
	cleanup := func() {
		ctx := context.WithoutCancel(ctx)
		for _, n := range bindings {
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, n, metav1.DeleteOptions{})
		}
		for _, n := range policies {
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, n, metav1.DeleteOptions{})
		}
	}
	dec := scheme.Codecs.UniversalDeserializer()
	for i, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%s doc %d: %w", path, i, err)
		}
		switch o := obj.(type) {
		case *admissionv1.ValidatingAdmissionPolicy:
			o.Name += "-" + suffix
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{})
			policies = append(policies, o.Name)
		case *admissionv1.ValidatingAdmissionPolicyBinding:
			o.Name += "-" + suffix
			o.Spec.PolicyName += "-" + suffix
			if objects != nil {
				if o.Spec.MatchResources == nil {
					o.Spec.MatchResources = &admissionv1.MatchResources{}
				}
				o.Spec.MatchResources.ObjectSelector = objects
			}
			_, err = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{})
			bindings = append(bindings, o.Name)
		default:
			err = fmt.Errorf("kind %T is not a ValidatingAdmissionPolicy or binding", obj)
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			cleanup()
			return nil, fmt.Errorf("%s doc %d: %w", path, i, err)
		}
	}
	if len(policies) == 0 || len(bindings) == 0 {
		cleanup()
		return nil, fmt.Errorf("%s: no ValidatingAdmissionPolicy with a binding", path)
	}
	return cleanup, nil
}
