"""How large the tiles may be: from the memory estimate (nst_ort/memory.py) and what is available.

A tiled pass holds, besides one tile's optimisation, a few arrays of the whole image: the blended
image and Adam's two moments being assembled, their weights, and the pass's result handed on
(FULL_BYTES_PER_PIXEL). Each tile's start, moments and content are cut from the previous pass's
smaller arrays and the content photo, never from full-size copies.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from nst_ort import memory
from nst_ort.config import MIN_TILE, StylizeConfig
from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.imageio import fit_longest
from nst_ort.memory import SIZE_STEP

if TYPE_CHECKING:
    from nst_ort.engine import Engine

# float32: the image, Adam's m and v and the weights being assembled (40 bytes), the result as
# NCHW and as HWC (24), the previous pass's image and moments at half the pixels (18), a style
# image resized to the pass (12).
FULL_BYTES_PER_PIXEL = 100
# A run left to choose its tiles takes at most this share of the machine's memory: beyond tiles
# of about 1.4 megapixels a larger tile saves only overlap, a few percent of the time, while a
# long run holding gigabytes more keeps them from everything else.
AUTO_SHARE = 1 / 3


def tile_bytes(engine: Engine, config: StylizeConfig, tile: int, height: int, width: int) -> int:
    """The estimated peak of a run whose largest pass is height x width, in tiles of `tile` px."""
    side_y, side_x = min(tile, height), min(tile, width)
    need = memory.estimate_bytes(engine.model_info, config.loss, side_y, side_x, engine.backend)
    return need + FULL_BYTES_PER_PIXEL * height * width


def largest_tile(engine: Engine, config: StylizeConfig, height: int, width: int, available: int) -> int:
    """The largest tile side (a multiple of SIZE_STEP) whose run fits in `available`."""
    info, backend = engine.model_info, engine.backend
    left = available - memory.fixed_bytes(info, backend) - FULL_BYTES_PER_PIXEL * height * width
    pixels = left / memory.bytes_per_pixel(info, config.loss, backend)
    return int(math.sqrt(max(pixels, 0.0)) // SIZE_STEP * SIZE_STEP)


def refuse(engine: Engine, config: StylizeConfig, height: int, width: int, available: int) -> NstError:
    """The one line for a size that does not fit even in the smallest tiles."""
    need = tile_bytes(engine, config, MIN_TILE, height, width)
    info, backend = engine.model_info, engine.backend
    smallest = memory.estimate_bytes(info, config.loss, MIN_TILE, MIN_TILE, backend)
    side = memory.side_for((available - smallest) / FULL_BYTES_PER_PIXEL, height, width)
    hint = f"the largest size that fits is about `size` {side}" if side >= MIN_SIDE else "no size fits"
    return NstError(
        f"{width}x{height} px needs about {need / 2**30:.1f} GiB of memory even in tiles, "
        f"{available / 2**30:.1f} GiB is available; {hint}"
    )


def resolve(
    engine: Engine,
    config: StylizeConfig,
    frame: tuple[int, int],
    available: int | None = None,
    total: int | None = None,
) -> StylizeConfig:
    """`config` with its `tile` chosen where it is 0 and the largest pass does not fit whole; the
    run refused, in one line, where even tiles do not fit. `available` and `total` memory: the
    machine's unless given. Host memory only: on CUDA `tile` stays as given (0: every pass
    whole, as the device's memory is not estimated)."""
    height, width = fit_longest(*frame, config.size)
    if engine.device != "cpu":
        return config
    available = memory.available_bytes() if available is None else available
    total = memory.total_bytes() if total is None else total
    if config.tile:
        if height * width <= config.tile**2:  # every pass whole
            need = memory.estimate_bytes(engine.model_info, config.loss, height, width, engine.backend)
        else:
            need = tile_bytes(engine, config, config.tile, height, width)
        if need > available:
            # The hint is a tile that fits, where a smaller `size` would be the untiled run's.
            largest = largest_tile(engine, config, height, width, available)
            hint = f"the largest that fits is about `tile` {largest}" if largest >= MIN_TILE else "none fits"
            raise NstError(
                f"`tile` {config.tile} at {width}x{height} px needs about {need / 2**30:.1f} GiB of memory, "
                f"{available / 2**30:.1f} GiB is available; {hint}"
            )
        return config
    budget = min(available, int(total * AUTO_SHARE))
    if memory.estimate_bytes(engine.model_info, config.loss, height, width, engine.backend) <= budget:
        return config  # the whole image fits: no tiles
    for limit in (budget, available):
        tile = largest_tile(engine, config, height, width, limit)
        if tile >= MIN_TILE:
            return replace(config, tile=tile)
    raise refuse(engine, config, height, width, available)
