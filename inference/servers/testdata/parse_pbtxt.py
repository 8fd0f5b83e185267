"""Parse Triton model configurations with Triton's own ModelConfig protobuf.

Usage: parse_pbtxt.py FILE...   Prints one JSON line per file:
{"file": ..., "ok": true, "platform": ..., "backend": ..., "max_batch_size": ...,
 "kinds": [...], "precision_mode": ...} or {"file": ..., "ok": false, "error": ...}.
text_format.Parse is strict: an unknown field or a wrong enum is an error.
"""
import json
import sys

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

for path in sys.argv[1:]:
    with open(path) as f:
        text = f.read()
    try:
        cfg = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as e:
        print(json.dumps({"file": path, "ok": False, "error": str(e)}))
        continue
    precision = None
    for acc in cfg.optimization.execution_accelerators.gpu_execution_accelerator:
        if acc.name == "tensorrt":
            precision = acc.parameters.get("precision_mode")
    print(json.dumps({
        "file": path, "ok": True, "name": cfg.name, "platform": cfg.platform, "backend": cfg.backend,
        "max_batch_size": cfg.max_batch_size,
        "kinds": [model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind) for g in cfg.instance_group],
        "inputs": [model_config_pb2.DataType.Name(i.data_type) for i in cfg.input],
        "preferred": list(cfg.dynamic_batching.preferred_batch_size),
        "precision_mode": precision,
    }))
