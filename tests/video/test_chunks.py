"""A clip shared by a Ray cluster: chunks that run on into the next, faded where they meet; on a
real local Ray (conftest.py's ray_local)."""

import json

import numpy as np

from nst_ort.imageio import load_image
from nst_ort.video.chunks import Chunk, borders, chunk_size, compose, plan_chunks
from nst_ort.video.sequence import FrameStore
from tests import requires
from tests.video.clips import write_clip

pytestmark = requires.needs_video


def test_chunks_run_on_into_the_next_by_the_overlap():
    actual = plan_chunks(range(2, 12), 4, 2)
    assert actual == [Chunk(0, 2, 6, 8), Chunk(1, 6, 10, 12), Chunk(2, 10, 12, 12)]
    assert [c.frames for c in actual] == [range(2, 8), range(6, 12), range(10, 12)]
    # the steps into frames 6, 7, 8 cross from chunk 0 to chunk 1 (fading over 6 and 7); 10, 11, 12
    assert borders(actual) == {6, 7, 8, 10, 11, 12}
    assert chunk_size(range(48), 2, 4) == 24 and chunk_size(range(6), 8, 4) == 5


def test_compose_fades_from_one_chunk_to_the_next(tmp_path):
    chunks = plan_chunks(range(6), 3, 2)  # frames 0-4 and 3-5
    store = FrameStore(tmp_path)
    for chunk, value in zip(chunks, (0.2, 0.8), strict=True):
        part = FrameStore(tmp_path / chunk.folder_name)
        part.open({})
        for index in chunk.frames:
            part.save(index, np.full((16, 16, 3), value, np.float32), {"frame": index})
    compose(store, chunks)
    actual = [float(store.load(i).mean()) for i in range(6)]
    desired = [0.2, 0.2, 0.2, 0.2 + 0.6 / 3, 0.2 + 1.2 / 3, 0.8]
    np.testing.assert_allclose(actual, desired, rtol=0, atol=1 / 255)
    assert [store.record(i).get("fade") for i in range(6)] == [None, None, None, 0.3333, 0.6667, None]
    assert [store.record(i)["chunk"] for i in range(6)] == [0, 0, 0, 1, 1, 1]


@requires.needs_ffprobe
def test_a_clip_on_ray_is_every_chunk_faded_and_measured(ray_local, tmp_path, tiny_model, make_image, cli):
    from tests.video.clips import ffprobe

    clip, style = write_clip(tmp_path / "in.mp4", frames=8), make_image("s.png", 40, 40, seed=3)
    output, report = tmp_path / "out.mp4", tmp_path / "run.json"
    result = cli(
        "video", clip, style, "-o", output, "--model", tiny_model, "--size", 48, "--iterations", 4,
        "--min-scale", 0, "--frame-iterations", 3, "--threads", 1, "--ray", "auto", "--chunk", 4,
        "--overlap", 2, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Ray cluster: 1 node, 2 CPUs" in result.stderr
    assert "at chunk borders" in result.stdout
    assert int(ffprobe(output)["video"]["nb_read_frames"]) == 8
    data = json.loads(report.read_text())
    assert data["chunks"] == [[0, 4, 6], [4, 8, 8]]
    assert [f["kind"] for f in data["frames"]] == ["full", "warped", "warped", "warped"] * 2
    assert [f["chunk"] for f in data["frames"]] == [0] * 4 + [1] * 4
    measured = data["temporal_error"]
    assert measured["borders"] >= 0 and measured["inside"] >= 0 and measured["pairs"] == 7
    folder = tmp_path / "out.mp4.frames"
    for index, share in ((4, 1 / 3), (5, 2 / 3)):
        first, second = (
            load_image(folder / name / f"frame_{index:06d}.png")
            for name in ("chunk_000000-000006", "chunk_000004-000008")
        )
        desired = share * second + (1 - share) * first
        np.testing.assert_allclose(
            load_image(folder / f"frame_{index:06d}.png"), desired, rtol=0, atol=1 / 255 + 1e-6
        )

    again = cli(
        "video", clip, style, "-o", output, "--model", tiny_model, "--size", 48, "--iterations", 4,
        "--min-scale", 0, "--frame-iterations", 3, "--threads", 1, "--ray", "auto", "--chunk", 4,
        "--overlap", 2, "--quiet",
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr  # every chunk done: nothing is sent to the cluster
