// Package ingest is ebbflow's front door. It scrapes Prometheus targets
// (static ones, and pods discovered through the Kubernetes API by their
// prometheus.io/* annotations), receives Prometheus remote_write requests,
// maps each series to one of ebbflow's canonical signals for an entity
// (svc/<cluster>/<namespace>/<workload>, node/<cluster>/<node>) with
// configurable rules, and publishes the samples to Kafka's metrics.raw
// topic as Arrow IPC batches keyed by entity.
//
// Nothing is acknowledged before Kafka has acknowledged it: the
// remote_write receiver answers 2xx only after every record of the request
// is written with acks=all, and answers 429 or 503 with Retry-After when the
// bounded publish buffer is full or the brokers are failing, so the sender
// retries instead of losing data.
//
// Run starts everything from a Config; the pieces (Decoder, Mapper,
// Publisher, Receiver, Scraper, Discovery) are usable on their own.
package ingest
