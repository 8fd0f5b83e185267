package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// ApplyManifestDir applies every dir/*.yaml with ApplyManifestFile, in
// name order (deploy/rbac's 00-namespace.yaml first), except
// kustomization.yaml (kustomize's, not an object).
func ApplyManifestDir(ctx context.Context, cs kubernetes.Interface, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no manifests in %s: %v", dir, err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		if err := ApplyManifestFile(ctx, cs, f); err != nil {
			return err
		}
	}
	return nil
}

// ApplyManifestFile creates the objects of one manifest file (the kinds
// deploy/rbac uses: Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding,
// Role, RoleBinding). Namespaces and service accounts that exist are left as
// they are; roles and bindings that exist are replaced, so a binding's
// subjects are exactly the file's even after an earlier version was applied.
func ApplyManifestFile(ctx context.Context, cs kubernetes.Interface, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := scheme.Codecs.UniversalDeserializer()
	for i, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return fmt.Errorf("%s doc %d: %w", path, i, err)
		}
		if err := createOrReplace(ctx, cs, obj); err != nil {
			return fmt.Errorf("%s doc %d: %w", path, i, err)
		}
	}
	return nil
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func createOrReplace(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) error {
	c, u := metav1.CreateOptions{}, metav1.UpdateOptions{}
	var err error
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Create(ctx, o, c)
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, c)
	case *rbacv1.ClusterRole:
		if _, err = cs.RbacV1().ClusterRoles().Create(ctx, o, c); apierrors.IsAlreadyExists(err) {
			_, err = cs.RbacV1().ClusterRoles().Update(ctx, o, u)
		}
	case *rbacv1.ClusterRoleBinding:
		if _, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, c); apierrors.IsAlreadyExists(err) {
			_, err = cs.RbacV1().ClusterRoleBindings().Update(ctx, o, u)
		}
	case *rbacv1.Role:
		if _, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, c); apierrors.IsAlreadyExists(err) {
			_, err = cs.RbacV1().Roles(o.Namespace).Update(ctx, o, u)
		}
	case *rbacv1.RoleBinding:
		if _, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, c); apierrors.IsAlreadyExists(err) {
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Update(ctx, o, u)
		}
	default:
		return fmt.Errorf("kind %T not handled", obj)
	}
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
