"""Compile a tiny ONNX model (built here) with OpenVINO on the CPU, using the
plugin_config of each rendered OVMS config.json, the way OVMS does.

Usage: compile_ovms.py CONFIG_JSON...   Prints one JSON line per file:
{"file": ..., "ok": true, "hint": ..., "precision": ..., "out": [...]} or
{"file": ..., "ok": false, "error": ...}.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import openvino as ov
from onnx import TensorProto, helper


def tiny_model(path):
    # y = relu(x @ W), x: [batch, 4] (batch dynamic), W: 4x2.
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [1, 0, 0, 1, 1, 0, 0, 1])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


core = ov.Core()
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "model.onnx")
    tiny_model(path)
    for cfg_path in sys.argv[1:]:
        with open(cfg_path) as f:
            cfg = json.load(f)["model_config_list"][0]["config"]
        try:
            model = core.read_model(path)
            batch = str(cfg.get("batch_size", ""))
            rows = 2
            if ":" in batch:
                lo, hi = (int(x) for x in batch.split(":"))
                model.reshape({"x": ov.PartialShape([ov.Dimension(lo, hi), 4])})
                rows = min(rows, hi)
            elif batch.isdigit():
                model.reshape({"x": ov.PartialShape([int(batch), 4])})
                rows = int(batch)
            compiled = core.compile_model(model, cfg["target_device"], cfg.get("plugin_config", {}))
            req = compiled.create_infer_request()
            x = np.array([[1, -2, 3, -4], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
            out = req.infer({"x": x[:rows]})[compiled.output(0)]
            print(json.dumps({
                "file": cfg_path, "ok": True,
                "hint": str(compiled.get_property("PERFORMANCE_HINT")),
                "precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
                "out": out.tolist(),
            }))
        except Exception as e:  # noqa: BLE001 - report any failure for the Go test
            print(json.dumps({"file": cfg_path, "ok": False, "error": str(e)}))
