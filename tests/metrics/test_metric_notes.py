"""metric_main.format_table prints MS-SSIM's window and scales beside its values whenever they are not the standard
11 voxels and 5 scales; report_metric's JSON lines say where in training the value was measured."""

import json

import pytest

from dnnlib import EasyDict
from metrics import metric_main


def _result(metric, info):
    return EasyDict(metric=metric, results={f"{metric}_fakes": 0.5}, info=info, total_time_str="1.0s")


# (metric, info, the note expected or None)
NOTE_CASES = [
    ("ms_ssim", {"kernel_size": 3, "num_scales": 3},
     "note: ms_ssim: Gaussian window 3 voxels, 3 of 5 scales (standard 11 and 5); compare only at equal window and "
     "scales"),
    ("ms_ssim", {"kernel_size": 7, "num_scales": 5}, "note: ms_ssim: Gaussian window 7 voxels, 5 of 5 scales"),
    ("ms_ssim", {"kernel_size": 11, "num_scales": 5}, None),
    ("mmd", {}, None),
]


@pytest.mark.parametrize("metric, info, note", NOTE_CASES)
def test_ms_ssim_window_and_scales_are_printed_beside_the_value(metric, info, note):
    table = metric_main.format_table([_result(metric, info)])
    notes = [line for line in table.splitlines() if line.startswith("note:")]
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(note)


def test_metric_line_records_step_kimg_and_snapshot(tmp_path):
    result = _result("mmd", {})
    for step in (2, 4):
        metric_main.report_metric(result, run_dir=str(tmp_path), step=step, kimg=step / 500, snapshot=f"s{step}")
    lines = [json.loads(x) for x in open(tmp_path / "metric-mmd.jsonl")]
    assert [(x["step"], x["kimg"], x["snapshot"]) for x in lines] == [(2, 0.004, "s2"), (4, 0.008, "s4")]
