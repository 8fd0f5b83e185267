package schemas

import (
	"fmt"
	"strings"
)

// Topic base names. The full name is <prefix>.<base>.v<version>; see Topics.
const (
	TopicMetricsRaw     = "metrics.raw"
	TopicMetricsWindows = "metrics.windows"
	TopicForecasts      = "forecasts"
	TopicDecisions      = "decisions"
	TopicActions        = "actions"
	TopicDeadLetter     = "deadletter"
)

// TopicVersion is the contract version of every topic this package defines.
const TopicVersion = 1

// DefaultTopicPrefix is the prefix topic names get unless configured.
const DefaultTopicPrefix = "ebbflow"

// AllTopics lists every topic base name, in pipeline order.
var AllTopics = []string{TopicMetricsRaw, TopicMetricsMetadata, TopicMetricsWindows, TopicForecasts, TopicDecisions, TopicActions, TopicDeadLetter}

// Topics names Kafka topics under a configurable prefix. The zero value
// uses DefaultTopicPrefix.
type Topics struct {
	Prefix string
}

// Name returns the full topic name for a base name, e.g.
// Topics{}.Name(TopicForecasts) == "ebbflow.forecasts.v1".
func (t Topics) Name(base string) string {
	p := t.Prefix
	if p == "" {
		p = DefaultTopicPrefix
	}
	return fmt.Sprintf("%s.%s.v%d", p, base, TopicVersion)
}

// All returns the full names of all topics.
func (t Topics) All() []string {
	out := make([]string, len(AllTopics))
	for i, b := range AllTopics {
		out[i] = t.Name(b)
	}
	return out
}

// NATS subjects. Decisions are published on
// ebbflow.decisions.<kind>.<cluster>.<namespace>, alerts on
// ebbflow.alerts.<severity>.<kind>. Subscribers use wildcards such as
// "ebbflow.decisions.>" or "ebbflow.alerts.critical.>".
const (
	SubjectDecisionsPrefix = "ebbflow.decisions"
	SubjectAlertsPrefix    = "ebbflow.alerts"
	// StreamDecisions and StreamAlerts are the JetStream streams that
	// capture the subjects above.
	StreamDecisions = "EBBFLOW_DECISIONS"
	StreamAlerts    = "EBBFLOW_ALERTS"
)

// Alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// DecisionSubject returns the NATS subject a decision is published on.
// Tokens are sanitised: NATS forbids '.', '*', '>' and whitespace inside a token.
func DecisionSubject(kind, cluster, namespace string) string {
	return strings.Join([]string{SubjectDecisionsPrefix, subjectToken(kind), subjectToken(cluster), subjectToken(namespace)}, ".")
}

// AlertSubject returns the NATS subject an alert is published on.
func AlertSubject(severity, kind string) string {
	return strings.Join([]string{SubjectAlertsPrefix, subjectToken(severity), subjectToken(kind)}, ".")
}

func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\n', '\r':
			return '_'
		}
		return r
	}, s)
}
