"""A long clip shared by a Ray cluster: chunks of consecutive frames, cross-faded where they meet.

Each chunk is one Ray task (studies/cluster.py's machinery: the model's bytes and the styles in
the object store once, an engine per worker process) that stylises its frames as a run on this
machine would: its first frame from the full schedule, the others from the frame before. Its
last `overlap` frames are also the next chunk's first ones; the output there fades from the one
chunk to the other, 1/(overlap+1) more of the next at each frame.

Why chunks rather than Ruder et al.'s multi-pass scheme: its passes run over the whole clip one
after another and each frame waits for its neighbour, so a cluster gains only in the first,
independent pass; chunks run side by side from the start. What they cost: each chunk's first
frame runs the full schedule, and two chunks reach the frames they share from different starts,
so where they meet the picture changes more than inside a chunk; the fade spreads that change
over overlap+1 frames, where an abrupt cut would show it at once. The run's report gives the
temporal error at the borders and inside the chunks (README, "Video").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from nst_ort.config import Device, Status
from nst_ort.errors import NstError
from nst_ort.imageio import to_uint8
from nst_ort.studies import cluster
from nst_ort.video.config import VideoConfig
from nst_ort.video.frames import Stylizer
from nst_ort.video.sequence import FrameStore, Outcome, run_frames


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # its first frame
    own: int  # one past its own frames; from here to `stop` they are the next chunk's too
    stop: int  # one past the last frame it stylises

    @property
    def frames(self) -> range:
        return range(self.start, self.stop)

    @property
    def label(self) -> str:
        return f"chunk {self.index} (frames {self.start}-{self.stop - 1})"

    @property
    def folder_name(self) -> str:
        return f"chunk_{self.start:06d}-{self.stop:06d}"


def plan_chunks(frames: range, chunk: int, overlap: int) -> list[Chunk]:
    """Chunks of `chunk` frames of their own over `frames`, each running `overlap` frames on."""
    starts = range(frames.start, frames.stop, chunk)
    return [
        Chunk(k, start, min(start + chunk, frames.stop), min(start + chunk + overlap, frames.stop))
        for k, start in enumerate(starts)
    ]


def chunk_size(frames: range, slots: int, overlap: int) -> int:
    """`chunk` 0: the frames split evenly among the cluster's task slots, each at least one frame
    more than the overlap."""
    return max(overlap + 1, math.ceil(len(frames) / max(1, slots)))


def borders(chunks: list[Chunk]) -> set[int]:
    """The frames t whose step from t-1 crosses from one chunk into the next (fade included)."""
    found = set()
    for before, after in zip(chunks, chunks[1:], strict=False):
        found.update(range(after.start, before.stop + 1))
    return found


class MemoryStore:
    """run_frames' store on a worker: the frames of a chunk, kept in memory and handed back."""

    def __init__(self):
        self.images: dict[int, np.ndarray] = {}
        self.records: dict[int, dict] = {}

    def has(self, index: int) -> bool:
        return index in self.images

    def load(self, index: int) -> np.ndarray:
        return self.images[index].astype(np.float32) / 255.0

    def save(self, index: int, image: np.ndarray, record: dict) -> None:
        self.images[index], self.records[index] = to_uint8(image), record


@dataclass
class ChunkResult:
    status: Status
    message: str
    images: dict[int, np.ndarray]  # frame -> uint8 RGB
    records: dict[int, dict]


@dataclass(frozen=True)
class ChunkJob:
    """What every chunk task shares, besides the model's bytes and the styles."""

    job: cluster.Job
    config: VideoConfig
    reference: np.ndarray  # uint8: the first frame of the range (Stylizer's reference)


def stylize_chunk(chunk: Chunk, shared: ChunkJob, model: list, styles: list, contents: list) -> ChunkResult:
    """The Ray task: the chunk's frames (uint8 `contents`) stylised in order on a worker."""
    engine, _ = cluster.worker_engine(shared.job, model)
    as_float = [np.asarray(style, np.float32) for style in styles]
    reference = shared.reference.astype(np.float32) / 255.0
    try:
        stylizer = Stylizer(engine, shared.config, as_float, reference)
    except NstError as exc:
        return ChunkResult(Status.FAILED, str(exc), {}, {})
    frames = [(i, image.astype(np.float32) / 255.0) for i, image in zip(chunk.frames, contents, strict=True)]
    store = MemoryStore()
    outcome = run_frames(stylizer, frames, store)
    return ChunkResult(outcome.status, outcome.message, store.images, store.records)


def run_chunks(
    runner: cluster.Cluster,
    config: VideoConfig,
    chunks: list[Chunk],
    content: Callable[[Chunk], list[np.ndarray]],
    styles: list[np.ndarray],
    reference: np.ndarray,
    store: FrameStore,
    on_chunk: Callable[[Chunk, dict[int, dict]], None] | None = None,
) -> Outcome:
    """Each chunk not in `store` yet as a Ray task; each one's frames written under the store's
    folder as it comes back (chunk_folder), then composed (compose). `content(chunk)`: its
    content frames at the output size, float32."""
    ray = cluster.require_ray()
    todo = [c for c in chunks if chunk_store(store, c).done(c.frames) < len(c.frames)]
    computed = 0
    if todo:
        threads = runner.threads_for(config.stylize.threads, len(todo))
        info = runner.model_info
        job = cluster.Job(
            str(runner.model_path), info.sha256, config.stylize.device.value, threads, config.stylize.backend
        )
        shared = ray.put(ChunkJob(job, config, to_uint8(reference)))
        model = [ray.put(runner.model_path.read_bytes())]
        style_refs = ray.put(styles)
        options = {
            "num_cpus": threads,
            "num_gpus": 1 if config.stylize.device is Device.CUDA else 0,
            "max_retries": runner.retries,
            "retry_exceptions": False,
        }
        task = ray.remote(stylize_chunk)
        try:
            slots = max(1, sum(int(cpus) // threads for cpus in runner.node_cpus()))
            submitted = _submitted(ray, task, options, slots, todo, (shared, model, style_refs), content)
            for chunk, result in submitted:
                if result.status is not Status.DONE:
                    return Outcome(result.status, f"{chunk.label}: {result.message}", computed)
                folder = chunk_store(store, chunk)
                folder.open({"chunk": chunk.label})
                for index in chunk.frames:
                    folder.save(index, result.images[index].astype(np.float32) / 255.0, result.records[index])
                computed += len(chunk.frames)
                if on_chunk is not None:
                    on_chunk(chunk, result.records)
        except KeyboardInterrupt:
            return Outcome(Status.INTERRUPTED, "interrupted", computed)
    compose(store, chunks)
    return Outcome(Status.DONE, "", computed)


def _submitted(ray, task, options, slots, todo, shared, content) -> Iterator[tuple[Chunk, ChunkResult]]:
    """Each chunk with its result as the cluster finishes them, a few in flight per task slot;
    `shared`: the object references every task takes (the job, the model, the styles)."""
    waiting = list(reversed(todo))
    pending: dict = {}
    try:
        while waiting or pending:
            while waiting and len(pending) < cluster.IN_FLIGHT * slots:
                chunk = waiting.pop()
                frames = [to_uint8(image) for image in content(chunk)]
                named = task.options(name=f"nst-ort video {chunk.folder_name}", **options)
                pending[named.remote(chunk, *shared, frames)] = chunk
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=cluster.WAIT_SECONDS)
            for ref in ready:
                chunk = pending.pop(ref)
                yield chunk, _result(ray, ref, chunk)
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def _result(ray, ref, chunk: Chunk) -> ChunkResult:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        raise cluster.task_error(exc, chunk.label) from None
    except ray.exceptions.RayError as exc:
        message = f"lost on the Ray cluster after retries ({type(exc).__name__})"
        return ChunkResult(Status.FAILED, message, {}, {})


def chunk_store(store: FrameStore, chunk: Chunk) -> FrameStore:
    return FrameStore(store.folder / chunk.folder_name)


def compose(store: FrameStore, chunks: list[Chunk]) -> None:
    """The output frames from the chunks' own: each chunk's, and where two share a frame, the
    fade from the earlier to the later."""
    for before, chunk in zip([None, *chunks], chunks, strict=False):
        mine = chunk_store(store, chunk)
        for index in range(chunk.start, chunk.own):
            if store.has(index):
                continue
            image, record = mine.load(index), {**mine.record(index), "chunk": chunk.index}
            if before is not None and index < before.stop:
                share = (index - chunk.start + 1) / (before.stop - chunk.start + 1)
                image = share * image + (1 - share) * chunk_store(store, before).load(index)
                record["fade"] = round(share, 4)
            store.save(index, image, record)
