"""Whole stylisations side by side: the time to a finished picture, and what the picture is worth.

Each run is `nst_ort.stylize` from a fresh Engine (model loaded, sessions built or compiled) to
the final image: what `nst-ort stylize` costs a user after Python has started. The runs share
the machine in turns (race.Turns): one runs at a time, handing the turn on at its first step
after holding it for TURN_SECONDS, and its clock runs only while it holds the turn. So the load
of a shared machine, which moves over the minutes a run takes, falls on every run alike.

A run is a name and a StylizeConfig; `at_size` moves a schedule written for 512 px (the
128..512 ladder) to another size by scaling its ladder, and `scaled_steps` shrinks its steps
for a smoke run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.race import Turns
from nst_ort import quality
from nst_ort.config import Optimizer, StylizeConfig, config_from_dict
from nst_ort.engine import Engine
from nst_ort.files import write_text
from nst_ort.imageio import save_image
from nst_ort.report import plain

TURN_SECONDS = 1.0
TERMS = ("loss", "loss.content", "loss.style", "loss.tv")
# The size the schedules are written for: their ladders are scaled from it (at_size).
SCHEDULE_SIZE = 512


def today() -> StylizeConfig:
    """The default before the time-to-picture work, pinned: 900 Adam steps over the five-pass
    ladder 128..512 (300 at the first size, 150 at each other), float32 ort-graph. Only the
    schedule is pinned; the loss stays StylizeConfig's, so that the losses compare."""
    return dataclasses.replace(
        StylizeConfig(),
        size=SCHEDULE_SIZE,
        optimizer=Optimizer.ADAM,
        iterations=900,
        scales=None,
        min_scale=128,
        scale_iterations=(300, 150, 150, 150, 150),
        lr=0.02,
        ema_decay=0.99,
        backend="ort-graph",
    )


def with_fields(base: StylizeConfig, overrides: dict) -> StylizeConfig:
    """`base` with fields given as in a report's config (JSON values: lists, enum values)."""
    return config_from_dict({**plain(base), **overrides})


def at_size(config: StylizeConfig, size: int) -> StylizeConfig:
    """`config`, written for SCHEDULE_SIZE, at `size`: its ladder (min_scale or scales) scaled
    with it, so the passes and their step counts stay as they are."""
    factor = size / SCHEDULE_SIZE
    scales = tuple(max(16, round(s * factor)) for s in config.scales) if config.scales else None
    min_scale = max(16, round(config.min_scale * factor)) if config.min_scale else 0
    return dataclasses.replace(config, size=size, scales=scales, min_scale=min_scale)


def scaled_steps(config: StylizeConfig, factor: float) -> StylizeConfig:
    """`config` with its steps (total and per pass) times `factor`, at least one each."""
    per_pass = config.scale_iterations
    return dataclasses.replace(
        config,
        iterations=max(1, math.ceil(config.iterations * factor)),
        scale_iterations=tuple(max(1, math.ceil(n * factor)) for n in per_pass) if per_pass else None,
    )


@dataclass
class Run:
    name: str
    config: StylizeConfig
    backend: str = ""  # the backend that ran (auto resolved)
    seconds: float = 0.0  # own clock: from Engine() to the final image
    report: dict | None = None
    image: np.ndarray | None = None
    error: BaseException | None = None


class _Clock:
    """A run's share of the turns: the loop's callback hands the turn on every TURN_SECONDS."""

    def __init__(self, run: Run, turns: Turns):
        self.run, self.turns, self.resumed = run, turns, 0.0

    def _held(self) -> float:
        return time.perf_counter() - self.resumed

    def step(self, record, image) -> None:
        if self._held() >= TURN_SECONDS:
            self.run.seconds += self._held()
            self.turns.pass_on(self.run.name)
            self.turns.wait(self.run.name)
            self.resumed = time.perf_counter()

    def __call__(self, content: np.ndarray, style: np.ndarray) -> None:
        from nst_ort import stylize

        run = self.run
        self.turns.wait(run.name)
        self.resumed = time.perf_counter()
        try:
            config = run.config
            engine = Engine(config.model, config.device, config.threads, backend=config.backend)
            run.backend = engine.backend
            result = stylize(content, [style], config, callback=self.step, engine=engine)
            run.seconds += self._held()
            run.report = result.report.finish(result.status, result.message, None)
            run.image = result.image
        except BaseException as exc:  # reported after every thread is done
            run.error = exc
        finally:
            self.turns.done(run.name)


def run_in_turns(runs: list[Run], content: np.ndarray, style: np.ndarray) -> None:
    """Every run to its final picture, in turns; raises the first run's failure after all end."""
    turns = Turns([r.name for r in runs])
    threads = [threading.Thread(target=_Clock(r, turns), args=(content, style), name=r.name) for r in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [r for r in runs if r.error is not None]
    if failed:
        raise RuntimeError(f"run {failed[0].name} failed") from failed[0].error


def summary(runs: list[Run], reference: str) -> list[dict]:
    """One row per run: seconds and their ratio to `reference`'s, evaluations, loss terms,
    the artifact scores of the picture (nst_ort.quality), the passes."""
    base = next(r for r in runs if r.name == reference).seconds
    rows = []
    for run in runs:
        report = run.report
        rows.append(
            {
                "run": run.name,
                "backend": run.backend,
                "seconds": round(run.seconds, 2),
                "ratio": round(run.seconds / base, 3),
                "evaluations": report["evaluations"],
                "status": str(report["status"]),
                **{term: report["final"].get(term) for term in TERMS},
                "artifact_score": round(quality.artifact_score(run.image), 4),
                "peak_ratio": round(quality.peak_ratio(run.image), 3),
                "passes": [
                    f"{p['width']}x{p['height']}: {p['evaluations']} ({p['artifacts_seconds']:.1f} s build)"
                    for p in report["passes"]
                ],
                "config": plain(run.config),
            }
        )
    return rows


def markdown(rows: list[dict], conditions: str, reference: str) -> str:
    lines = [
        conditions,
        "",
        f"| run | backend | seconds | × {reference} | evaluations | loss | content | style | tv "
        "| artifact score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        terms = " | ".join(f"{row[t]:.4g}" if row[t] is not None else "–" for t in TERMS)
        lines.append(
            f"| {row['run']} | {row['backend']} | {row['seconds']:.1f} | {row['ratio']:.3f} | "
            f"{row['evaluations']} | {terms} | {row['artifact_score']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write(folder: Path, runs: list[Run], rows: list[dict], conditions: str) -> None:
    """Each run's picture and report, sheet.png (the pictures side by side, in the runs' order)
    and results.json / results.md, into `folder`."""
    from benchmarks.gallery import same_height, side_by_side

    folder.mkdir(parents=True, exist_ok=True)
    for run in runs:
        save_image(folder / f"{run.name}.png", run.image)
        write_text(folder / f"{run.name}.json", json.dumps(plain(run.report), indent=2) + "\n")
    pictures = [run.image for run in runs]
    save_image(folder / "sheet.png", side_by_side(same_height(pictures, pictures[0].shape[0])))
    results = {"conditions": conditions, "reference": runs[0].name, "runs": rows}
    write_text(folder / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(folder / "results.md", markdown(rows, conditions, runs[0].name))
