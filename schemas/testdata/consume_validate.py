"""Cross-language proof: a stock Python Kafka client reads what ebbflow produced.

Consumes every record of the given topics with confluent-kafka (librdkafka),
validates JSON records against ebbflow's JSON Schemas with `jsonschema`
(choosing the schema from the CloudEvents ce_type header), decodes
metrics.raw records with pyarrow, and prints one JSON summary line.

usage: consume_validate.py BROKERS SCHEMA_DIR RAW_TOPIC JSON_TOPIC [JSON_TOPIC...]
"""
import json
import os
import sys
import time

import jsonschema
import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

SCHEMA_FOR = {
    "io.ebbflow.window.v1": "window.schema.json",
    "io.ebbflow.forecast.v1": "forecast.schema.json",
    "io.ebbflow.decision.scale.v1": "decision.scale.schema.json",
    "io.ebbflow.action.v1": "action.schema.json",
    "io.ebbflow.deadletter.v1": "deadletter.schema.json",
}


def main():
    brokers, schema_dir, raw_topic = sys.argv[1], sys.argv[2], sys.argv[3]
    json_topics = sys.argv[4:]
    schemas = {}
    for ce_type, name in SCHEMA_FOR.items():
        with open(os.path.join(schema_dir, name)) as f:
            schemas[ce_type] = json.load(f)
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "ebbflow-crosslang-%d" % os.getpid(),
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    })
    c.subscribe([raw_topic] + json_topics)
    out = {"valid": [], "invalid": [], "raw_rows": 0, "raw_columns": [], "raw_values": []}
    deadline = time.time() + 60
    want = int(os.environ.get("WANT_RECORDS", "0"))
    seen = 0
    while time.time() < deadline and seen < want:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit("kafka error: %s" % msg.error())
        seen += 1
        headers = {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}
        if msg.topic() == raw_topic:
            table = pa.ipc.open_stream(msg.value()).read_all()
            out["raw_rows"] += table.num_rows
            out["raw_columns"] = table.schema.names
            out["raw_values"] += table.column("value").to_pylist()
            continue
        ce_type = headers.get("ce_type")
        doc = json.loads(msg.value())
        try:
            jsonschema.validate(doc, schemas[ce_type], cls=jsonschema.Draft202012Validator)
            out["valid"].append({"ce_type": ce_type, "ce_id": headers.get("ce_id"), "key": msg.key().decode()})
        except (KeyError, jsonschema.ValidationError) as e:
            out["invalid"].append({"ce_type": ce_type, "error": str(e)[:300]})
    c.close()
    out["seen"] = seen
    print(json.dumps(out))


if __name__ == "__main__":
    main()
