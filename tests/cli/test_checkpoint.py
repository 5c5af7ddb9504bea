"""A tiled pass's checkpoint: what a run writes beside its report reads back as it was."""

from __future__ import annotations

import numpy as np

from nst_ort import StylizeConfig, stylize
from nst_ort.cli.checkpoint import Checkpoint
from nst_ort.tiles import Tiling


def test_a_checkpoint_reads_back_the_start_and_the_tiles(tiny_model, make_image, tmp_path):
    checkpoint, events = Checkpoint(tmp_path / "run.json"), []

    def on_tile(event):
        events.append(event)
        checkpoint.on_tile(event)

    config = StylizeConfig(
        model=tiny_model, size=96, scales=(48,), scale_iterations=(2, 2), tile=48, threads=1
    )
    stylize(
        make_image("c.png", 72, 96), [make_image("s.png", 48, 48, seed=1)], config, tiling=Tiling(on_tile)
    )
    assert checkpoint.folder == tmp_path / "run.tiles"
    names = sorted(p.name for p in checkpoint.folder.iterdir())
    assert names == ["start.npz"] + [f"tile-{i:04d}.npz" for i in range(6)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written whole, renamed

    resumed = checkpoint.load()
    start = events[0].start
    assert (resumed.start.index, resumed.start.grid) == (1, start.grid)
    assert np.array_equal(resumed.start.image, start.image) and start.image.shape == (36, 48, 3)
    assert np.array_equal(resumed.start.adam.m, start.adam.m) and resumed.start.adam.t == start.adam.t == 2
    finished = [e.finished for e in events if e.finished is not None]
    assert sorted(resumed.tiles) == [r.tile.index for r in finished]
    for desired in finished:
        actual = resumed.tiles[desired.tile.index]()
        assert actual.tile == desired.tile and actual.records == desired.records
        assert actual.info == desired.info and actual.evaluations == desired.evaluations == 2
        assert np.array_equal(actual.image, desired.image)
        assert np.array_equal(actual.adam.v, desired.adam.v) and actual.adam.t == 4

    (checkpoint.folder / "start.npz").write_bytes(b"not a checkpoint")
    assert checkpoint.load() is None  # the pass then runs all its tiles again
    checkpoint.clear()
    assert not checkpoint.folder.exists() and checkpoint.load() is None
