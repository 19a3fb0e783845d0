"""What a bundle costs at the line, and the machine a timing is read beside."""

from __future__ import annotations

import os
from pathlib import Path

from trainer.evaluation.footprint import KERNEL_FEATURES, bundle_mb, machine_facts
from trainer.retrain.dataset import CROPS_DIR

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Example Xeon 9999
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile
processor\t: 1
model name\t: Example Xeon 9999
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw amx_tile
"""


def test_machine_facts_name_the_cpu_and_the_kernel_features_it_offers(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO, encoding="utf-8")

    facts = machine_facts(cpuinfo)

    assert facts == {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": "Example Xeon 9999",
        "kernel_features": ["avx2", "avx512f", "amx_tile"],
    }


def test_machine_facts_without_cpuinfo_say_unknown(tmp_path: Path) -> None:
    facts = machine_facts(tmp_path / "absent")

    assert (facts["cpu"], facts["kernel_features"]) == ("unknown", [])
    assert facts["cpus"] >= 1


def test_this_machine_reports_only_known_kernel_features() -> None:
    assert set(machine_facts()["kernel_features"]) <= set(KERNEL_FEATURES)


def test_bundle_size_leaves_out_the_report_and_training_crops(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / CROPS_DIR).mkdir()
    (tmp_path / "model.onnx").write_bytes(b"x" * 1_500_000)
    (tmp_path / "report" / "roc.png").write_bytes(b"x" * 4_000_000)
    (tmp_path / CROPS_DIR / "a.png").write_bytes(b"x" * 4_000_000)

    assert bundle_mb(tmp_path) == 1.5
