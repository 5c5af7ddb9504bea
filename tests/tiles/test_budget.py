"""How large the tiles may be: chosen from the memory given, refused in one line where none fits."""

from __future__ import annotations

import pytest

from nst_ort.config import MIN_TILE, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.memory import estimate_bytes
from nst_ort.tiles.budget import AUTO_SHARE, FULL_BYTES_PER_PIXEL, resolve, tile_bytes

GIB = 2**30
FRAME = (768, 1024)  # tubingen's


@pytest.fixture(scope="module")
def engine(tiny_model):
    # ort-graph on every machine: the bounds below are its memory's; `auto` takes ov-bf16 where
    # the CPU has bf16 arithmetic, whose memory is not measured and is estimated higher
    # (memory.UNMEASURED).
    return Engine(tiny_model, threads=1, backend="ort-graph")


def test_a_run_that_fits_whole_keeps_tile_0(engine):
    config = StylizeConfig(size=512)
    assert resolve(engine, config, FRAME, available=64 * GIB, total=64 * GIB).tile == 0


def test_the_tile_is_the_largest_that_fits_a_third_of_the_machine(engine):
    config = StylizeConfig(size=4096)
    total = 24 * GIB
    tile = resolve(engine, config, FRAME, available=20 * GIB, total=total).tile
    budget = total * AUTO_SHARE
    assert tile % 16 == 0 and tile >= 1024
    assert (
        tile_bytes(engine, config, tile, 3072, 4096)
        <= budget
        < tile_bytes(engine, config, tile + 16, 3072, 4096)
    )
    # Less available than a third: the tile shrinks to what is there.
    smaller = resolve(engine, config, FRAME, available=4 * GIB, total=total).tile
    assert MIN_TILE <= smaller < tile and tile_bytes(engine, config, smaller, 3072, 4096) <= 4 * GIB


def test_what_fits_nowhere_is_refused_with_the_largest_size_that_does(engine):
    with pytest.raises(NstError, match=r"4096x3072 px needs about .* GiB of memory even in tiles") as info:
        resolve(engine, StylizeConfig(size=4096), FRAME, available=GIB, total=GIB)
    assert "the largest size that fits is about `size`" in str(info.value)
    side = int(str(info.value).rsplit(" ", 1)[1])
    smallest = estimate_bytes(engine.model_info, StylizeConfig().loss, MIN_TILE, MIN_TILE, engine.backend)
    assert smallest + FULL_BYTES_PER_PIXEL * side * side * 3 // 4 <= GIB


def test_a_given_tile_is_checked(engine):
    config = StylizeConfig(size=4096, tile=2048)
    assert resolve(engine, config, FRAME, available=64 * GIB, total=64 * GIB) == config
    with pytest.raises(NstError, match=r"`tile` 2048 at 4096x3072 px needs about .* GiB") as info:
        resolve(engine, config, FRAME, available=8 * GIB, total=64 * GIB)
    assert "the largest that fits is about `tile`" in str(info.value)
    # A run whole within its tile is checked as a whole run, and told of the tile that fits.
    config = StylizeConfig(size=4096, tile=4096)
    whole = estimate_bytes(engine.model_info, config.loss, 3072, 4096, engine.backend)
    assert resolve(engine, config, FRAME, available=whole, total=64 * GIB) == config
    with pytest.raises(NstError, match=r"`tile` 4096 at 4096x3072 px needs about .* GiB") as info:
        resolve(engine, config, FRAME, available=whole - 1, total=64 * GIB)
    largest = int(str(info.value).rsplit(" ", 1)[1])
    assert MIN_TILE <= largest < 4096 and tile_bytes(engine, config, largest, 3072, 4096) < whole
