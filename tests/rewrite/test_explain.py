"""`edgekit export --explain` lists every rule with its count and why one did not apply; the manifest keeps it."""
import json

from edgekit.rewrite.registry import rules_for, swaps_for
from edgekit.config import Target


def test_export_explain_lists_rules_counts_and_reasons(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: rich wraps table cells at the default 80
    out = tmp_path / "bundle"
    code, stdout, _ = cli("export", "tests.fixtures.tiny:tiny_classifier", "--target", "onnx", "--out", out,
                          "--explain", "--calib-size", "2")
    assert code == 0
    assert "why not applied" in stdout
    for entry in (*rules_for(Target.ONNX), *swaps_for(Target.ONNX)):
        assert entry.name in stdout, f"{entry.name} missing from --explain"
    rewrites = json.loads((out / "manifest.json").read_text())["rewrites"]
    assert rewrites["rules"]["fuse_attention_ort"] == 1 and rewrites["rules"]["fuse_gelu"] == 1
    assert set(rewrites["rules"]) == {r.name for r in rules_for(Target.ONNX)}
    # every rule or swap that did nothing says why
    silent = [k for k, v in {**rewrites["rules"], **rewrites["swaps"]}.items() if v == 0 and k not in rewrites["not_applied"]]
    assert not silent, silent
    assert "LayerNorm" in rewrites["not_applied"]["fuse_layer_norm"]
    assert "LiteMLA" in rewrites["not_applied"]["linear_attention_plugin"]
