"""Device descriptors: peak compute per precision and memory bandwidth, for the roofline.

A small registry: the CPU a profile runs on, described from its ISA, core count and clock
(theoretical peak = cores x GHz x FLOP per cycle that its vector units retire), plus named edge
devices with their vendors' published figures. ``--device NAME`` picks one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.errors import UsageError


@dataclass(frozen=True)
class DeviceSpec:
    """peak_gflops: precision -> GFLOP/s (GOP/s for int8) of the whole device (all ``cores``).
    per_core: the peak scales with the threads a run uses (CPUs), not fixed (accelerators)."""

    name: str
    description: str
    kind: str  # cpu | gpu | npu
    peak_gflops: dict = field(default_factory=dict)
    bandwidth_gbs: float | None = None
    cores: int | None = None
    per_core: bool = False
    source: str = ""

    def peak(self, precision: str, threads: int | None = None) -> tuple[float | None, str | None]:
        """(peak GFLOP/s for this precision at this thread count, the compute type it assumes)."""
        compute = precision if precision in self.peak_gflops else ("fp32" if precision in ("fp16", "bf16") else None)
        if compute is None or compute not in self.peak_gflops:
            return None, None
        value = self.peak_gflops[compute]
        if self.per_core and self.cores and threads:
            value = value * min(threads, self.cores) / self.cores
        return value, compute

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "kind": self.kind,
                "peak_gflops": dict(self.peak_gflops), "bandwidth_gbs": self.bandwidth_gbs, "cores": self.cores,
                "per_core": self.per_core, "source": self.source}


def _jetson(name, description, cuda_cores, ghz, sparse_int8_tops, bandwidth):
    dense_int8 = sparse_int8_tops / 2 * 1000  # NVIDIA quotes sparse INT8; dense is half
    return DeviceSpec(name, description, "gpu",
                      {"fp32": cuda_cores * 2 * ghz, "fp16": dense_int8 / 2, "int8": dense_int8},
                      bandwidth, source="NVIDIA Jetson Orin data sheet: GPU sparse INT8 TOPS (dense = 1/2, fp16 "
                                        "tensor = 1/4), fp32 = CUDA cores x 2 x max GPU clock; memory bandwidth")


NAMED: dict[str, DeviceSpec] = {d.name: d for d in (
    _jetson("jetson-orin-agx", "NVIDIA Jetson AGX Orin 64GB (2048-core Ampere GPU, 1.3 GHz)", 2048, 1.3, 170, 204.8),
    _jetson("jetson-orin-nx", "NVIDIA Jetson Orin NX 16GB (1024-core Ampere GPU, 918 MHz)", 1024, 0.918, 60, 102.4),
    _jetson("jetson-orin-nano", "NVIDIA Jetson Orin Nano 8GB (1024-core Ampere GPU, 625 MHz)", 1024, 0.625, 40, 68.0),
    DeviceSpec("iphone-15-pro", "Apple iPhone 15 Pro (A17 Pro, 16-core Neural Engine)", "npu",
               {"fp16": 35000.0, "int8": 35000.0}, 51.2,
               source="Apple: A17 Pro Neural Engine up to 35 trillion operations per second; bandwidth: LPDDR5-6400 "
                      "x 64 bit (estimate, not published)"),
    DeviceSpec("iphone-16-pro", "Apple iPhone 16 Pro (A18 Pro, 16-core Neural Engine)", "npu",
               {"fp16": 35000.0, "int8": 35000.0}, 60.0,
               source="Neural Engine taken as A17 Pro's published 35 TOPS (Apple gives no A18 Pro figure); "
                      "bandwidth: LPDDR5X-7500 x 64 bit (estimate, not published)"),
    DeviceSpec("epyc-zen4-2c", "AMD EPYC (Zen 4), 2 cores, AVX-512 VNNI/BF16", "cpu",
               {"fp32": 193.0, "bf16": 415.0}, None, cores=2, per_core=True,
               source="measured: 2048^3 GEMM in PyTorch, median of 10 (96 / 202 GFLOP/s on one core)"),
)}


def flops_per_cycle(cpu: dict) -> tuple[dict, str]:
    """FLOP (int8: ops) per cycle per core for each precision, from the CPU's ISA flags; and why."""
    flags, vendor, family = set(cpu.get("flags", [])), cpu.get("vendor", ""), cpu.get("family")
    machine = cpu.get("machine", "")
    if machine in ("aarch64", "arm64"):
        fp32 = 16.0  # 2 x 128-bit NEON FMA pipes (Cortex-A78AE, Neoverse N1/N2)
        why = ["NEON 2x128-bit FMA"]
        out = {"fp32": fp32}
        if "asimdhp" in flags or "fphp" in flags:
            out["fp16"] = 2 * fp32
            why.append("fp16 arithmetic")
        if "bf16" in flags:
            out["bf16"] = 2 * fp32
            why.append("bf16 dot")
        if "i8mm" in flags or "asimddp" in flags:
            out["int8"] = (8 if "i8mm" in flags else 4) * fp32
            why.append("int8 matmul" if "i8mm" in flags else "int8 dot product")
        return out, ", ".join(why)
    if "avx512f" in flags:
        # Zen 4 runs 512-bit FMAs on two 256-bit pipes; Intel server cores and Zen 5 have two 512-bit ones
        half = "AuthenticAMD" in vendor and family == 0x19
        fp32, why = (32.0, ["AVX-512 on 2x256-bit FMA (Zen 4)"]) if half else (64.0, ["AVX-512 2x512-bit FMA"])
    elif "avx2" in flags and "fma" in flags:
        fp32, why = 32.0, ["AVX2 2x256-bit FMA"]
    elif "avx" in flags:
        fp32, why = 16.0, ["AVX"]
    else:
        fp32, why = 8.0, ["SSE"]
    out = {"fp32": fp32}
    if "avx512_fp16" in flags:
        out["fp16"] = 2 * fp32
        why.append("AVX512-FP16")
    if "amx_bf16" in flags:
        out["bf16"] = 1024.0
        why.append("AMX-BF16")
    elif "avx512_bf16" in flags:
        out["bf16"] = 2 * fp32
        why.append("AVX512-BF16")
    if "amx_int8" in flags:
        out["int8"] = 2048.0
        why.append("AMX-INT8")
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        out["int8"] = 4 * fp32  # vpdpbusd: 4 multiply-adds per 32-bit lane where an FMA does 1
        why.append("VNNI")
    return out, ", ".join(why)


def describe_cpu(cpu: dict, name: str = "host") -> DeviceSpec:
    """A theoretical descriptor of a CPU (as edgekit.engines.measure.cpu_info() reports it)."""
    cores = int(cpu.get("cores") or 1)
    ghz = (cpu.get("mhz") or 2000.0) / 1000.0
    per_cycle, why = flops_per_cycle(cpu)
    peaks = {k: round(v * ghz * cores, 1) for k, v in per_cycle.items()}
    clock = f"{ghz:.2f} GHz" + ("" if cpu.get("mhz") else " (assumed: no clock reported)")
    return DeviceSpec(name, f"{cpu.get('model') or cpu.get('machine')}, {cores} cores", "cpu", peaks, None, cores,
                      per_core=True, source=f"theoretical from ISA: {cores} cores x {clock} x FLOP/cycle ({why})")


def get_device(name: str | None, cpu: dict | None = None) -> DeviceSpec:
    """The named descriptor; None or 'host' describes ``cpu`` (default: this machine's CPU)."""
    if name in (None, "host"):
        if cpu is None:
            from edgekit.engines.measure import cpu_info

            cpu = cpu_info()
        return describe_cpu(cpu)
    if name not in NAMED:
        raise UsageError(f"unknown device {name!r}; choose host or one of: {', '.join(NAMED)}")
    return NAMED[name]


def list_devices() -> list[dict]:
    return [get_device("host").to_dict()] + [d.to_dict() for d in NAMED.values()]
