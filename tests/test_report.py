"""The run report: JSON values, records, passes, resume's continuation, the final terms."""

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from nst_ort import contract
from nst_ort.config import Status, StylizeConfig
from nst_ort.loop import StepRecord
from nst_ort.report import Report, plain, record_dict


class Colour(str, Enum):
    RED = "red"


@dataclass
class Thing:
    path: Path
    colour: Colour
    pairs: tuple


def test_plain_makes_json_values():
    actual = plain({"thing": Thing(Path("/a/b"), Colour.RED, ((1, 2), [3]))})
    assert actual == {"thing": {"path": "/a/b", "colour": "red", "pairs": [[1, 2], [3]]}}


class Info:
    def as_dict(self):
        return {"weights": "random:0"}


def terms(loss: float) -> dict[str, float]:
    return dict(zip(contract.TERMS, (loss, loss / 2, loss / 2, 0.0), strict=True))


def test_a_report_from_start_to_finish(tmp_path):
    report = Report(StylizeConfig(size=64), Info(), "cpu", {"content": "c.png", "size": [48, 64]})
    assert report.data["status"] == "running" and report.data["config"]["size"] == 64
    report.add_records(
        [StepRecord(1, 2, terms(10.0), 0.5), StepRecord(2, 3, terms(8.0), 1.0)], wall_start=100.0
    )
    report.add_pass({"height": 48, "width": 64}, evaluations=3)
    data = report.finish(Status.DONE, "", tmp_path / "o.png", tmp_path / "r.json")
    assert data["status"] == "done" and data["evaluations"] == 3
    assert data["final"] == terms(8.0)
    assert [it["time"] for it in data["iterations"]] == [100.5, 101.0]
    report.write(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "done"


def test_resume_puts_the_earlier_run_first():
    previous = {
        "iterations": [record_dict(StepRecord(1, 1, terms(9.0), 0.1), 0.0)],
        "passes": [{"evaluations": 1}],
    }
    report = Report(StylizeConfig(), Info(), "cpu", {})
    report.add_records([StepRecord(2, 2, terms(7.0), 0.1)], wall_start=0.0)
    report.add_pass({}, evaluations=1)
    report.continue_from(previous)
    data = report.finish(Status.DONE, "", None)
    assert data["resumed_from_step"] == 1
    assert [it["step"] for it in data["iterations"]] == [1, 2] and data["evaluations"] == 2
