"""The quality gallery: neural-style's five published pairs, rendered by nst-ort, side by side.

    python -m benchmarks.gallery -o DIR [--size 512] [--pairs tubingen_starry,…] [-- STYLIZE OPTIONS]

Runs `nst-ort stylize` on each pair (with the options after `--`, e.g. `-- --tv-weight 1e-3`), then
writes into DIR, per pair, the result, its report and `PAIR_sheet.png` (content, style, nst-ort,
neural-style at one height), and for all pairs `sheet.png` and `gallery.md` / `gallery.json`:
time, evaluations, loss terms and the artifact scores of ours and of the reference
(nst_ort.quality). A pair whose report is already in DIR with the same command is not run
again. The images come from ../shared/images (`--images`), which a clone does not have: without
it the gallery says so and does nothing. Nothing it writes belongs in the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from nst_ort import quality
from nst_ort.files import write_text
from nst_ort.imageio import load_image, save_image
from nst_ort.studies.sheet import contact_sheet

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
# neural-style's example outputs (reference/), and the content and style each was made from.
PAIRS = {
    "tubingen_starry": ("tubingen.jpg", "starry_night.jpg"),
    "tubingen_scream": ("tubingen.jpg", "the_scream.jpg"),
    "golden_gate_scream": ("golden_gate.jpg", "the_scream.jpg"),
    "golden_gate_escher": ("golden_gate.jpg", "escher_sphere.jpg"),
    "golden_gate_matisse": ("golden_gate.jpg", "woman-with-hat-matisse.jpg"),
}
TERMS = ("loss", "loss.content", "loss.style", "loss.tv")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gallery", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for everything written")
    parser.add_argument("--size", type=int, default=512, help="longest side, px (the references': 512)")
    parser.add_argument(
        "--images", type=Path, default=IMAGES, help="the shared images (default: %(default)s)"
    )
    parser.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated (default: all five)")
    return parser.parse_args(own), extra


def stylize_command(args: argparse.Namespace, pair: str, extra: list[str]) -> list[str]:
    content, style = PAIRS[pair]
    out = args.output
    return [
        "stylize",
        str(args.images / content),
        str(args.images / style),
        "-o",
        str(out / f"{pair}.png"),
        "--size",
        str(args.size),
        "--report",
        str(out / f"{pair}.json"),
        "--quiet",
        *extra,
    ]


def render(args: argparse.Namespace, pair: str, extra: list[str]) -> dict:
    """The pair's report, running `nst-ort stylize` unless a report of the same command is there."""
    command = stylize_command(args, pair, extra)
    report_path = args.output / f"{pair}.json"
    if report_path.is_file() and (args.output / f"{pair}.png").is_file():
        report = json.loads(report_path.read_text())
        if report.get("gallery_command") == command and report.get("status") == "done":
            return report
    code = "from nst_ort.cli import main; main()"
    subprocess.run([sys.executable, "-c", code, *command], check=True)
    report = json.loads(report_path.read_text())
    report["gallery_command"] = command
    write_text(report_path, json.dumps(report, indent=2) + "\n")
    return report


def same_height(images: list[np.ndarray], height: int) -> list[np.ndarray]:
    resized = []
    for image in images:
        picture = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        width = round(picture.width * height / picture.height)
        resized.append(np.asarray(picture.resize((width, height), Image.Resampling.LANCZOS)) / 255.0)
    return resized


def side_by_side(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    height = images[0].shape[0]
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    sheet = np.ones((height, width, 3))
    x = 0
    for image in images:
        sheet[:, x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return sheet


def scores(image: np.ndarray) -> dict:
    return {"artifact_score": quality.artifact_score(image), "peak_ratio": quality.peak_ratio(image)}


def table(rows: list[dict]) -> str:
    head = (
        "| pair | seconds | evaluations | loss | content | style | tv | artifact score (ours / reference) "
        "| peak ratio (ours / reference) |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        ours, ref = r["ours"], r["reference"]
        lines.append(
            f"| {r['pair']} | {r['seconds']:.0f} | {r['evaluations']} | "
            + " | ".join(f"{r[t]:.3g}" for t in TERMS)
            + f" | {ours['artifact_score']:.2f} / {ref['artifact_score']:.2f} "
            f"({ours['artifact_score'] / ref['artifact_score']:.2f}x) "
            f"| {ours['peak_ratio']:.2f} / {ref['peak_ratio']:.2f} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.images / "reference").is_dir():
        print(f"skipped: {args.images} has no reference/ folder (the shared images are not here)")
        return 0
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        print(f"error: unknown pair {', '.join(unknown)}; the pairs are {', '.join(PAIRS)}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    rows, grid = [], []
    for pair in pairs:
        report = render(args, pair, extra)
        content, style = (load_image(args.images / name) for name in PAIRS[pair])
        ours = load_image(args.output / f"{pair}.png")
        reference = load_image(args.images / "reference" / f"{pair}.png")
        row = {
            "pair": pair,
            "seconds": report["total_seconds"],
            "evaluations": report["evaluations"],
            **{t: report["final"][t] for t in TERMS},
            "ours": scores(ours),
            "reference": scores(reference),
        }
        rows.append(row)
        print(
            f"{pair}: {row['seconds']:.0f} s, {row['evaluations']} evaluations, artifact score "
            f"{row['ours']['artifact_score']:.2f} (reference {row['reference']['artifact_score']:.2f})",
            flush=True,
        )
        four = same_height([content, style, ours, reference], ours.shape[0])
        save_image(args.output / f"{pair}_sheet.png", side_by_side(four))
        grid.append(four)
    sheet = contact_sheet(grid, "", ["content", "style", "nst-ort", "neural-style"], "pair", pairs)
    sheet.save(args.output / "sheet.png")
    summary = {"size": args.size, "stylize_options": extra, "pairs": rows}
    write_text(args.output / "gallery.json", json.dumps(summary, indent=2) + "\n")
    write_text(args.output / "gallery.md", table(rows))
    print(f"wrote {args.output}/ (sheet.png, gallery.md, gallery.json, a sheet per pair)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
