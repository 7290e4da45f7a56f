"""Engine inspector layers -> ONNX nodes -> PyTorch modules, per-layer times, and the attention audit.

The inspector JSON here is written the way TensorRT 10 writes it (detailed verbosity: a layer's
``Metadata`` lists its ONNX nodes as ``[ONNX Layer: name]`` separated by \\x1f); what a real engine
fuses can only be seen on a device.
"""
from __future__ import annotations

import json

import pytest

from edgekit.targets.tensorrt.layers import (NodeIndex, audit_attention, find_attention_blocks, map_layers,
                                             parse_layer_info, parse_profile)

SEP = "\x1f"


def _layer(name, kind, *nodes, tactic=""):
    return {"Name": name, "LayerType": kind, "Metadata": SEP.join(f"[ONNX Layer: {n}]" for n in nodes),
            "TacticName": tactic}


def _info(*layers):
    return json.dumps({"Layers": list(layers), "Bindings": ["input", "output"]})


def test_module_paths_from_torchscript_names():
    assert NodeIndex.module("/backbone/attn/qkv/MatMul_output_0") == "backbone.attn.qkv"
    assert NodeIndex.module("/layers/layers.0/blocks/blocks.1/attn/Softmax") == "layers.0.blocks.1.attn"
    assert NodeIndex.module("/ReduceMean") == "" and NodeIndex.module("node_Conv_0") == ""


def test_layer_info_and_profile_parsing():
    layers = parse_layer_info(_info(_layer("conv + relu", "CaskConvolution", "/a/Conv", "/a/Relu", tactic="sm80_x")))
    assert layers == [{"name": "conv + relu", "type": "CaskConvolution", "tactic": "sm80_x",
                       "onnx_nodes": ["/a/Conv", "/a/Relu"]}]
    # built without detailed verbosity: names only, nodes read from the fused name
    (named,) = parse_layer_info(json.dumps({"Layers": ["/a/Conv + /a/Relu"]}))
    assert named["onnx_nodes"] == ["/a/Conv", "/a/Relu"]
    # trtexec --exportProfile: first entry is the run count, times are totals over the runs
    profile = [{"count": 10}, {"name": "conv + relu", "timeMs": 2.0, "averageMs": 0.2, "percentage": 80.0},
               {"name": "other", "timeMs": 0.5}]
    assert parse_profile(json.dumps(profile)) == {"conv + relu": 0.2, "other": pytest.approx(0.05)}


def test_softmax_attention_fused_or_separate(tiny_onnx):
    model, _ = tiny_onnx
    (block,) = find_attention_blocks(model)
    assert block.module == "backbone.attn" and block.kind == "softmax"
    assert block.nodes == {"qk": "/backbone/attn/MatMul", "softmax": "/backbone/attn/Softmax",
                           "av": "/backbone/attn/MatMul_1"}
    fused = parse_layer_info(_info(
        _layer("qkv", "CaskGemm", "/backbone/attn/qkv/MatMul_output_0"),
        _layer("_gemm_mha_v2_myl3_6", "gemm", "/backbone/attn/Mul", "/backbone/attn/MatMul", "/backbone/attn/Softmax",
               "/backbone/attn/MatMul_1", tactic="fmha_v2_flash_attention_fp16")))
    rows = map_layers(fused, model, {"_gemm_mha_v2_myl3_6": 0.031, "qkv": 0.01})
    assert rows[1]["module"] == "backbone.attn" and rows[1]["time_ms"] == 0.031
    (audit,) = audit_attention([block], rows)
    assert audit["ran_as"] == "fused kernel" and audit["layers"] == ["_gemm_mha_v2_myl3_6"]
    assert audit["time_ms"] == pytest.approx(0.031)
    separate = parse_layer_info(_info(_layer("mm1", "CaskGemm", "/backbone/attn/MatMul"),
                                      _layer("sm", "CaskSoftMax", "/backbone/attn/Softmax"),
                                      _layer("mm2", "CaskGemm", "/backbone/attn/MatMul_1")))
    (audit,) = audit_attention([block], map_layers(separate, model))
    assert audit["ran_as"] == "separate matmuls" and audit["layers"] == ["mm1", "sm", "mm2"]
    region = "{ForeignNode[/backbone/attn/MatMul.../backbone/attn/MatMul_1]}"
    myelin = parse_layer_info(json.dumps({"Layers": [region]}))
    (audit,) = audit_attention([block], map_layers(myelin, model))
    assert audit["ran_as"].startswith("one Myelin region")
    (audit,) = audit_attention([block], map_layers(parse_layer_info(_info(_layer("x", "Shuffle", "/other"))), model))
    assert audit["ran_as"].startswith("not found")


def test_plugin_attention_as_plugin_or_function_body(plugin_onnx):
    model, _ = plugin_onnx
    blocks = find_attention_blocks(model)
    assert sorted(b.nodes["plugin"] for b in blocks) == ["/LinearAttention", "/WindowAttention"]
    as_plugin = parse_layer_info(_info(_layer("/WindowAttention", "PluginV3", "/WindowAttention"),
                                       _layer("/LinearAttention", "PluginV3", "/LinearAttention")))
    assert {a["ran_as"] for a in audit_attention(blocks, map_layers(as_plugin, model))} == {"plugin"}
    # plain trtexec builds the nodes from their function bodies: layers carry the calling node's name as prefix
    body = parse_layer_info(_info(_layer("wa_mm", "CaskGemm", "/WindowAttention/MatMul"),
                                  _layer("wa_sm", "CaskSoftMax", "/WindowAttention/Softmax"),
                                  _layer("la", "Myelin", "/LinearAttention_Relu", "/LinearAttention_MatMul")))
    verdicts = {a["nodes"]["plugin"]: a["ran_as"] for a in audit_attention(blocks, map_layers(body, model))}
    assert verdicts == {"/WindowAttention": "function body as separate layers", "/LinearAttention": "fused kernel"}
