//go:build integration

// Integration tests against the real services of deploy/dev/services.sh:
//
//	deploy/dev/services.sh up && source .dev/services.env
//	go test -tags integration ./internal/devsvc/...
package devsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/colinmarc/hdfs/v2"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/ebbflow/ebbflow/internal/natsbus"
	"github.com/ebbflow/ebbflow/schemas"
)

func suffix() string { return fmt.Sprintf("%d-%06d", time.Now().Unix(), rand.IntN(1_000_000)) }

// ---------------------------------------------------------------------------------- Kafka

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_9_0_0
	c.ClientID = "ebbflow-it"
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	return c
}

func kafkaAdmin(t *testing.T, brokers []string) sarama.ClusterAdmin {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("kafka at %v does not answer: %v", brokers, err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

func createTopic(t *testing.T, admin sarama.ClusterAdmin, name string, partitions int32) {
	t.Helper()
	err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() { _ = admin.DeleteTopic(name) })
}

// readAll reads every partition of topic from the oldest offset up to the high-water mark
// taken at call time, with the given isolation level.
func readAll(t *testing.T, brokers []string, topic string, iso sarama.IsolationLevel) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := saramaConfig()
	cfg.Consumer.IsolationLevel = iso
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("kafka consumer: %v", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		// With read_committed the consumer stops at the last stable offset; the high-water
		// mark may be past the last record (control records), so read until the partition
		// goes quiet after the last offset below the high-water mark.
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("high-water mark %s/%d: %v", topic, p, err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		deadline := time.After(2 * time.Minute)
	loop:
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				if m.Offset >= hwm-1 {
					break loop
				}
			case err := <-pc.Errors():
				t.Fatalf("consume %s/%d: %v", topic, p, err)
			case <-time.After(10 * time.Second):
				// Only control records (commit/abort markers) or filtered aborted records remain.
				break loop
			case <-deadline:
				t.Fatalf("consume %s/%d: timed out at %d records (hwm %d)", topic, p, len(out), hwm)
			}
		}
		pc.Close()
	}
	return out
}

func TestKafkaIdempotentZstdProducer(t *testing.T) {
	brokers := KafkaBrokers(t)
	admin := kafkaAdmin(t, brokers)
	topic := "ebbflow-it-idem-" + suffix()
	createTopic(t, admin, topic, 4)

	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Compression = sarama.CompressionZSTD
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 10
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatalf("idempotent producer: %v", err)
	}
	defer p.Close()

	const n = 2000
	want := map[string]string{}
	var msgs []*sarama.ProducerMessage
	for i := range n {
		k, v := fmt.Sprintf("k%05d", i), strings.Repeat(fmt.Sprintf("value-%d;", i), 8)
		want[k] = v
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(v)})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("send %d messages: %v", n, err)
	}

	got := readAll(t, brokers, topic, sarama.ReadUncommitted)
	if len(got) != n {
		t.Fatalf("read back %d messages, want exactly %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, m := range got {
		k := string(m.Key)
		if seen[k] {
			t.Fatalf("duplicate message %s", k)
		}
		seen[k] = true
		if want[k] != string(m.Value) {
			t.Fatalf("message %s: value %q, want %q", k, m.Value, want[k])
		}
	}
}

// ctpHandler is the consume-transform-produce loop: for each record of topic A it produces the
// transformed record to B and commits the consumed offset in the same transaction.
type ctpHandler struct {
	producer sarama.SyncProducer
	group    string
	out      string
	want     int

	mu    sync.Mutex
	done  int
	err   error
	once  sync.Once
	doneC chan struct{}
}

func (h *ctpHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *ctpHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *ctpHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		// One producer, one transaction at a time: claims of several partitions take turns.
		h.mu.Lock()
		if h.err != nil {
			h.mu.Unlock()
			return h.err
		}
		err := h.process(msg)
		if err != nil {
			h.err = err
		} else {
			h.done++
		}
		finished := err != nil || h.done == h.want
		h.mu.Unlock()
		if finished {
			h.once.Do(func() { close(h.doneC) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *ctpHandler) process(msg *sarama.ConsumerMessage) error {
	if err := h.producer.BeginTxn(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	_, _, err := h.producer.SendMessage(&sarama.ProducerMessage{
		Topic: h.out,
		Key:   sarama.ByteEncoder(msg.Key),
		Value: sarama.StringEncoder(strings.ToUpper(string(msg.Value))),
	})
	if err == nil {
		err = h.producer.AddMessageToTxn(msg, h.group, nil)
	}
	if err != nil {
		_ = h.producer.AbortTxn()
		return fmt.Errorf("transform %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err)
	}
	if err := h.producer.CommitTxn(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func TestKafkaTransactionalConsumeTransformProduce(t *testing.T) {
	brokers := KafkaBrokers(t)
	admin := kafkaAdmin(t, brokers)
	sfx := suffix()
	topicA, topicB, group := "ebbflow-it-txa-"+sfx, "ebbflow-it-txb-"+sfx, "ebbflow-it-ctp-"+sfx
	createTopic(t, admin, topicA, 4)
	createTopic(t, admin, topicB, 1) // one partition: record order tells what precedes what

	// Input.
	pcfg := saramaConfig()
	pcfg.Producer.Idempotent = true
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pcfg.Producer.Return.Successes = true
	pcfg.Net.MaxOpenRequests = 1
	in, err := sarama.NewSyncProducer(brokers, pcfg)
	if err != nil {
		t.Fatalf("input producer: %v", err)
	}
	const n = 20
	for i := range n {
		if _, _, err := in.SendMessage(&sarama.ProducerMessage{Topic: topicA, Key: sarama.StringEncoder(fmt.Sprintf("k%02d", i)), Value: sarama.StringEncoder(fmt.Sprintf("event-%02d", i))}); err != nil {
			t.Fatalf("produce input %d: %v", i, err)
		}
	}
	in.Close()

	// Transactional producer.
	tcfg := saramaConfig()
	tcfg.Producer.Idempotent = true
	tcfg.Producer.RequiredAcks = sarama.WaitForAll
	tcfg.Producer.Return.Successes = true
	tcfg.Producer.Transaction.ID = "ebbflow-it-txn-" + sfx
	tcfg.Producer.Transaction.Timeout = 30 * time.Second
	tcfg.Producer.Compression = sarama.CompressionZSTD
	tcfg.Net.MaxOpenRequests = 1
	txp, err := sarama.NewSyncProducer(brokers, tcfg)
	if err != nil {
		t.Fatalf("transactional producer: %v", err)
	}
	defer txp.Close()

	// Consumer group on A, offsets committed only through the transactions.
	ccfg := saramaConfig()
	ccfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	ccfg.Consumer.Offsets.AutoCommit.Enable = false
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cg, err := sarama.NewConsumerGroup(brokers, group, ccfg)
	if err != nil {
		t.Fatalf("consumer group: %v", err)
	}
	defer cg.Close()
	h := &ctpHandler{producer: txp, group: group, out: topicB, want: n, doneC: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topicA}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				t.Logf("consume: %v", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.doneC:
	case <-time.After(90 * time.Second):
		cancel()
		wg.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		t.Fatalf("consume-transform-produce: %d of %d records after 90s", h.done, n)
	}
	cancel()
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		t.Fatalf("consume-transform-produce: %v", h.err)
	}

	// An aborted transaction, then one more committed, so the aborted records lie before the
	// last stable offset.
	if err := txp.BeginTxn(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	for i := range 3 {
		if _, _, err := txp.SendMessage(&sarama.ProducerMessage{Topic: topicB, Value: sarama.StringEncoder(fmt.Sprintf("ABORTED-%d", i))}); err != nil {
			t.Fatalf("send in aborted txn: %v", err)
		}
	}
	if err := txp.AbortTxn(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if err := txp.BeginTxn(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, _, err := txp.SendMessage(&sarama.ProducerMessage{Topic: topicB, Value: sarama.StringEncoder("FINAL")}); err != nil {
		t.Fatalf("send final: %v", err)
	}
	if err := txp.CommitTxn(); err != nil {
		t.Fatalf("commit final: %v", err)
	}

	// read_committed sees exactly the committed records.
	var got []string
	for _, m := range readAll(t, brokers, topicB, sarama.ReadCommitted) {
		got = append(got, string(m.Value))
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("EVENT-%02d", i))
	}
	want = append(want, "FINAL")
	sortedGot := append([]string(nil), got...)
	sort.Strings(sortedGot)
	sort.Strings(want)
	if strings.Join(sortedGot, ",") != strings.Join(want, ",") {
		t.Fatalf("read_committed on %s saw %v\nwant %v", topicB, sortedGot, want)
	}
	if got[len(got)-1] != "FINAL" {
		t.Fatalf("read_committed: last record %q, want FINAL", got[len(got)-1])
	}
	// read_uncommitted does see the aborted records: the check above is not vacuous.
	aborted := 0
	for _, m := range readAll(t, brokers, topicB, sarama.ReadUncommitted) {
		if strings.HasPrefix(string(m.Value), "ABORTED-") {
			aborted++
		}
	}
	if aborted != 3 {
		t.Fatalf("read_uncommitted saw %d aborted records, want 3", aborted)
	}

	// The group's committed offsets (written by the transactions) cover all of A.
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topicA)
	if err != nil {
		t.Fatalf("partitions: %v", err)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topicA: parts})
	if err != nil {
		t.Fatalf("group offsets: %v", err)
	}
	for _, p := range parts {
		hwm, err := client.GetOffset(topicA, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("hwm: %v", err)
		}
		blk := resp.GetBlock(topicA, p)
		if blk == nil || blk.Offset != hwm {
			got := int64(-1)
			if blk != nil {
				got = blk.Offset
			}
			t.Fatalf("group %s committed offset %s/%d = %d, want %d", group, topicA, p, got, hwm)
		}
	}
}

// ----------------------------------------------------------------------------------- HDFS

// closeHDFS closes w, retrying while the NameNode has not yet had the DataNode's block report
// (hdfs.ErrReplicating: the data is written; calling Close again is documented as safe).
func closeHDFS(w *hdfs.FileWriter) error {
	backoff := 50 * time.Millisecond
	for i := 0; ; i++ {
		err := w.Close()
		if err == nil || !hdfs.IsErrReplicating(err) || i == 10 {
			return err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

func TestHDFSWriteRenameReadList(t *testing.T) {
	nn := HDFSNamenode(t)
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{nn}, User: HDFSUser()})
	if err != nil {
		t.Fatalf("hdfs client for %s: %v", nn, err)
	}
	defer c.Close()
	dir := "/ebbflow-it/" + suffix()
	if err := c.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("namenode %s does not answer: mkdir %s: %v", nn, dir, err)
	}
	t.Cleanup(func() { _ = c.RemoveAll(path.Dir(dir)) })

	tmp, final := path.Join(dir, ".part-0000.tmp"), path.Join(dir, "part-0000.bin")
	payload := bytes.Repeat([]byte("ebbflow history block\n"), 50_000) // ~1.1 MB
	w, err := c.Create(tmp)
	if err != nil {
		t.Fatalf("create %s: %v", tmp, err)
	}
	if _, err := w.Write(payload); err != nil {
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := closeHDFS(w); err != nil {
		t.Fatalf("close %s: %v", tmp, err)
	}
	if err := c.Rename(tmp, final); err != nil {
		t.Fatalf("rename %s -> %s: %v", tmp, final, err)
	}

	r, err := c.Open(final)
	if err != nil {
		t.Fatalf("open %s: %v", final, err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatalf("read %s: %v", final, err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(payload))
	}

	entries, err := c.ReadDir(dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "part-0000.bin" {
		t.Fatalf("list %s = %v, want [part-0000.bin]", dir, names)
	}
	if _, err := c.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat %s after rename: err=%v, want not-exist", tmp, err)
	}
}

// ----------------------------------------------------------------------------- Kubernetes

const (
	actuatorSANamespace = "ebbflow"
	actuatorSAName      = "ebbflow-actuator"
)

// actuatorRBAC builds the Role and RoleBinding that let the actuator scale Deployments in ns.
// The one place the rules are constructed; to be replaced by loading deploy/rbac.
func actuatorRBAC(ns string) (*rbacv1.Role, *rbacv1.RoleBinding) {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "ebbflow-actuator", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"apps"},
			Resources: []string{"deployments/scale"},
			Verbs:     []string{"get", "patch", "update"},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ebbflow-actuator", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{
			Kind:      rbacv1.ServiceAccountKind,
			Name:      actuatorSAName,
			Namespace: actuatorSANamespace,
		}},
	}
	return role, binding
}

func deployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	one := int32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "model",
					Image: "registry.k8s.io/pause:3.10",
				}}},
			},
		},
	}
}

// deleteNamespace deletes ns and, as no namespace controller runs, finalizes it by hand.
func deleteNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = cs.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = cs.RbacV1().RoleBindings(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = cs.RbacV1().Roles(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	obj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		return
	}
	obj.Spec.Finalizers = nil
	if _, err := cs.CoreV1().Namespaces().Finalize(ctx, obj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("finalize namespace %s: %v", ns, err)
	}
}

func TestKubeActuatorRBAC(t *testing.T) {
	k := KubeEnv(t)
	admin := k.Clientset(t, k.AdminToken)
	actuator := k.Clientset(t, k.ActuatorToken)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := admin.Discovery().ServerVersion(); err != nil {
		t.Fatalf("kube-apiserver %s does not answer: %v", k.Server, err)
	}
	ns := "ebbflow-it-" + strings.ReplaceAll(suffix(), "-", "")
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() { deleteNamespace(t, admin, ns) })

	const name = "model-server"
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, deployment(ns, name), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	// No "forbidden before the binding" check here: the actuators package's
	// tests apply deploy/rbac (a ClusterRoleBinding for the same identity) to
	// the same API server, possibly at the same time. The refusals below
	// hold under both this Role and deploy/rbac's ClusterRole.

	role, binding := actuatorRBAC(ns)
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rolebinding: %v", err)
	}

	// The RBAC authorizer sees new bindings through an informer: retry briefly.
	patch := []byte(`{"spec":{"replicas":3}}`)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := actuator.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "scale")
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("actuator patch deployments/scale: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sc, err := actuator.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("actuator get scale: %v", err)
	}
	if sc.Spec.Replicas != 3 {
		t.Fatalf("scale spec.replicas = %d, want 3", sc.Spec.Replicas)
	}
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("admin get deployment: %v", err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Fatalf("deployment spec.replicas = %v, want 3", d.Spec.Replicas)
	}
	// update (not just patch) through the scale subresource works too. The
	// deployment controller writes the object too (status, revision), so an
	// update read before it may conflict: read again and retry, as a client must.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := actuator.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = 2
		_, err = actuator.AppsV1().Deployments(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatalf("actuator update scale: %v", err)
	}

	// Anything else is forbidden.
	if err := actuator.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("actuator delete deployment: err=%v, want Forbidden", err)
	}
	if _, err := actuator.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("actuator list secrets: err=%v, want Forbidden", err)
	}
	if _, err := actuator.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("actuator update (PUT) deployment itself: err=%v, want Forbidden", err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "intruder", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}}}
	if _, err := actuator.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("actuator create pod: err=%v, want Forbidden", err)
	}
}

// ----------------------------------------------------------------------------------- NATS

// TestJetStreamDecisionReplay runs on the real nats-server (TLS, account user), shared by
// concurrent tests: its subject and durable are unique to the run.
func TestJetStreamDecisionReplay(t *testing.T) {
	cfg := NATS(t)
	nc, err := natsbus.Connect(cfg, "it-replay")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := natsbus.EnsureStreams(ctx, js, time.Hour); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}

	run := fmt.Sprintf("c%d", time.Now().UnixNano())
	subject := "ebbflow.decisions.scale." + run + ".default"
	body := []byte(`{"cluster":"c1","namespace":"default","replicas":3}`)
	ack, err := js.Publish(ctx, subject, body)
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	if ack.Stream != schemas.StreamDecisions {
		t.Fatalf("captured by stream %q, want %q", ack.Stream, schemas.StreamDecisions)
	}

	// A consumer created after the publish replays it.
	cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamDecisions, jetstream.ConsumerConfig{
		Durable:           "it-replay-" + run,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		FilterSubject:     "ebbflow.decisions.scale." + run + ".>",
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Minute))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
		_ = m.Ack()
	}
	if batch.Error() != nil {
		t.Fatalf("fetch: %v", batch.Error())
	}
	if len(got) != 1 {
		t.Fatalf("replayed %d messages, want 1", len(got))
	}
	if got[0].Subject() != subject || !bytes.Equal(got[0].Data(), body) {
		t.Fatalf("replayed %s %q, want %s %q", got[0].Subject(), got[0].Data(), subject, body)
	}
}
