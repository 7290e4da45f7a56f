"""`edgekit profile` from the command line: --json, report files, the regression check's exit codes,
and one-line errors for mistakes."""
from __future__ import annotations

import json

FAST = ["--warmup", "2", "-n", "8", "--layer-iters", "3"]


def test_json_to_stdout_and_files(cli, bundles, tmp_path):
    code, out, err = cli("profile", bundles["onnx"], bundles["openvino"], *FAST, "--json", "--out", tmp_path / "r.json",
                         "--markdown", tmp_path / "r.md")
    assert code == 0, err
    data = json.loads(out)
    assert [r["bundle"]["target"] for r in data["results"]] == ["onnx", "openvino"]
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["runs"][0]["key"] == \
        data["results"][0]["runs"][0]["key"]
    assert (tmp_path / "r.md").read_text().startswith("## edgekit profile")


def test_tables_by_default(cli, bundles):
    code, out, err = cli("profile", bundles["onnx"], *FAST, "--top", "3")
    assert code == 0, err
    assert "latency on this machine" in out and "top 3 layers (onnxruntime profiling)" in out
    assert "by block: backbone.attn" in out.replace("\n", " ")


def _scaled(path, factor, dest):
    """The baseline with every median multiplied by factor: < 1 makes this run look regressed."""
    data = json.loads(path.read_text())
    for result in data["results"]:
        for run in result["runs"]:
            run["latency_ms"]["median"] *= factor
    dest.write_text(json.dumps(data))
    return dest


def test_regression_check_fails_and_passes_when_it_should(cli, bundles, tmp_path):
    code, _, err = cli("profile", bundles["onnx"], *FAST, "--no-layers", "--quiet", "--out", tmp_path / "last.json")
    assert code == 0, err
    # a baseline five times faster than this machine: the run is ~+400% over it. The factors are wide
    # because 2 shared cores make back-to-back medians of a 0.1 ms model differ by up to ~2x
    fast = _scaled(tmp_path / "last.json", 0.2, tmp_path / "fast.json")
    code, out, err = cli("profile", bundles["onnx"], *FAST, "--no-layers", "--baseline", fast, "--fail-over", "10%",
                         "--out", tmp_path / "now.json")
    assert code == 1, (out, err)
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: median regressed beyond 10%: tiny_classifier/onnx/fp32/b1/tdefault: median ")
    assert "ms vs baseline" in line and "> 10%)" in line
    assert json.loads((tmp_path / "now.json").read_text())["regression"]["failed"]  # the report is still written
    # a baseline ten times slower: an improvement passes
    slow = _scaled(tmp_path / "last.json", 10.0, tmp_path / "slow.json")
    code, out, err = cli("profile", bundles["onnx"], *FAST, "--no-layers", "--baseline", slow, "--fail-over", "10%")
    assert code == 0, err
    assert "passed" in out


def test_usage_errors_are_one_line(cli, bundles, tmp_path):
    cases = [
        (("profile",), "name at least one bundle"),
        (("profile", bundles["onnx"], "--fail-over", "10%"), "--baseline and --fail-over go together"),
        (("profile", bundles["onnx"], "--baseline", tmp_path / "none.json", "--fail-over", "5"), "does not exist"),
        (("profile", bundles["onnx"], "--device", "pdp-11"), "unknown device 'pdp-11'"),
        (("profile", bundles["onnx"], "--duration", "soon"), "not a duration"),
        (("profile", tmp_path, *FAST), "has no manifest.json"),
    ]
    for args, message in cases:
        code, out, err = cli(*args)
        assert code == 2, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)


def test_list_devices(cli):
    code, out, _ = cli("profile", "--list-devices", "--json")
    assert code == 0
    names = [d["name"] for d in json.loads(out)]
    assert names[0] == "host" and {"jetson-orin-agx", "jetson-orin-nano", "iphone-15-pro"} <= set(names)
