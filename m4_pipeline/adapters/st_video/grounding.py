"""Stage-3 temporal grounding sources (TVG): QuerYD, DiDeMo, VTG-IT moment retrieval.

Their layouts and units are described in :mod:`.moments`, whose sample shapes they share.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ...readers import AnnotationFileError, load_data
from ...sample import Sample
from ...templates import render
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import caption_text, write_clip
from .moments import NUMBER, MomentAdapter, MomentParams, vtg_text

# --- QuerYD ---------------------------------------------------------------------------------------


@dataclass
class QuerYDParams(MomentParams):
    captions: str = "raw_captions_combined_filtered.pkl"
    times: str = "times_captions_combined_filtered.pkl"
    split_list: str = ""  # a file of video keys, one per line ("" = every video of the pickles)
    video: str = "videos/{key}"  # QuerYD's downloader saves "video-<ytid>" files without a suffix


class QuerYD(MomentAdapter):
    name = "st_queryd"
    Params = QuerYDParams
    description = "QuerYD moments from its pickles (plain data only) as TVG, point answers where start == end"

    def list_records(self):
        p = self.params
        captions, times = load_data(self.src, p.captions), load_data(self.src, p.times)
        if not isinstance(captions, dict) or not isinstance(times, dict):
            raise AnnotationFileError(p.captions, "the captions and times pickles must be objects keyed by video")
        keep = None
        if p.split_list:
            keep = {ln.strip() for ln in self.src.annotation(p.split_list).read_text().splitlines() if ln.strip()}
        for key, caps in captions.items():
            if keep is not None and key not in keep:
                continue
            spans = times.get(key)
            if not isinstance(caps, list) or not isinstance(spans, list) or len(caps) != len(spans):
                yield RawRecord(p.captions, f"key {key}", f"{key}", None,
                                f"{p.captions} key {key}: captions and times do not pair up")  # fmt: skip
                continue
            for k, (cap, span) in enumerate(zip(caps, spans)):
                yield RawRecord(p.captions, f"key {key} [{k}]", f"{key}-{k}", {"key": str(key), "caption": cap,
                                                                                "times": span})  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        d, where = record.data, record.locator
        cap = d["caption"]
        words = " ".join(w for w in cap if isinstance(w, str)) if isinstance(cap, (list, tuple)) else cap
        query = caption_text(words, f"{where}: caption").rstrip(" .")
        span = d["times"]
        if not (isinstance(span, (list, tuple)) and len(span) == 2):
            raise SourceError(f"{where}: times must be [start, end] seconds, got {span!r:.60}")
        video = render(self.params.video, {"key": d["key"]}, where)
        return self.tvg(record, video, self.clock(video), None, query, span[0], span[1])

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Python-2-style pickles (protocol 2, plain data): one video with a point answer, one with
        a moment past its end; a split list leaving one video out."""
        root = Path(root)
        for key, seconds in (("video-fTcSVQJ2h8g", 30), ("video--L2yxB3CUg", 20), ("video-unlisted0", 10)):
            write_clip(root, f"videos/{key}", fps=4, seconds=seconds, seed=seed)
        caps = {"video-fTcSVQJ2h8g": [["a", "box", "slides", "right"], ["the", "box", "stops"], ["a", "flash"]],
                "video--L2yxB3CUg": [["a", "square", "appears"], ["it", "moves", "on"]],
                "video-unlisted0": [["not", "in", "the", "split"]]}  # fmt: skip
        times = {"video-fTcSVQJ2h8g": [[1.5, 9.25], [20.0, 30.0], [12.0, 12.0]],
                 "video--L2yxB3CUg": [(0.0, 5.5), [8.0, 26.0]],
                 "video-unlisted0": [[1.0, 2.0]]}  # fmt: skip
        p = cls.Params()
        (root / p.captions).write_bytes(pickle.dumps(caps, protocol=2))
        (root / p.times).write_bytes(pickle.dumps(times, protocol=2))
        (root / "train_list.txt").write_text("video-fTcSVQJ2h8g\nvideo--L2yxB3CUg\n")


# --- DiDeMo ---------------------------------------------------------------------------------------

DIDEMO_CHUNK = 5.0  # seconds per chunk (LocalizingMoments)


def didemo_seconds(times: list, duration: float, where: str) -> tuple[float, float, list[int]]:
    """(start, end, [a, b]) of the annotators' most frequent chunk pair: ``[5a, min(5(b+1), duration)]``."""
    pairs = []
    for k, t in enumerate(times):
        if not (isinstance(t, list) and len(t) == 2):
            raise SourceError(f"{where}: times[{k}] is not a pair of chunk indices")
        a, b = (F.check_integer(x, f"{where}: times[{k}]", lo=0, hi=5) for x in t)
        if a > b:
            raise SourceError(f"{where}: times[{k}] = {t} ends before it starts")
        pairs.append((a, b))
    if not pairs:
        raise SourceError(f"{where}: no annotator times")
    a, b = Counter(pairs).most_common(1)[0][0]
    start, end = DIDEMO_CHUNK * a, min(DIDEMO_CHUNK * (b + 1), duration)
    if start >= duration:
        raise SourceError(f"{where}: chunk {a} starts at {start:g} s, past the video's end ({duration:.3f} s)")
    return start, end, [a, b]


@dataclass
class DiDeMoParams(MomentParams):
    splits: list[str] = field(default_factory=lambda: ["train"])
    annotation: str = "data/{split}_data.json"
    video_root: str = "videos"


class DiDeMo(MomentAdapter):
    name = "st_didemo"
    Params = DiDeMoParams
    description = "DiDeMo moments (5-second chunk indices, four annotators) as TVG"

    def list_records(self):
        for split in self.params.splits:
            rel = self.params.annotation.replace("{split}", split)
            for i, item in enumerate(self.items(rel)):
                if item.error or not isinstance(item.data, dict):
                    yield self.broken(item, f"{split}-index{i}", f"{rel} {item.locator}: expected an object")
                    continue
                aid = item.data.get("annotation_id")
                sid = f"{split}-{aid}" if isinstance(aid, (int, str)) and not isinstance(aid, bool) else f"{split}-i{i}"
                yield RawRecord(rel, item.locator, sid, item.data)

    def to_sample(self, record: RawRecord) -> Sample:
        item, where, root = record.data, record.locator, self.params.video_root
        video = f"{root}/{F.text(item, 'video', where)}" if root else F.text(item, "video", where)
        clock = self.clock(video)
        start, end, chunks = didemo_seconds(F.listing(item, "times", where), clock.duration, where)
        clock.ops.add(f"didemo_chunks: {chunks} -> [{start:g}, {end:g}] s")
        return self.tvg(record, video, clock, None, caption_text(F.need(item, "description", where),
                                                                  f"{where}: description"), start, end)  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Flickr-named videos (.avi / .mov / .mp4) at 10 fps, one 27 s long (its chunk 5 ends at
        27 s, not 30), one 22 s (chunk 5 starts past its end: quarantined)."""
        root = Path(root)
        videos = {"54322086@N00_2408598493_274c77d26a.avi": 27, "91941069@N00_6062003834_dc3d6e5e16.mov": 30,
                  "10015567@N08_3655084291_d8b58466fa.mp4": 22}  # fmt: skip
        for name, seconds in videos.items():
            write_clip(root, f"videos/{name}", fps=10, seconds=seconds, seed=seed)
        a, b, c = videos
        items = [
            {"annotation_id": 0, "description": "the box reaches the right edge", "video": a,
             "times": [[5, 5], [5, 5], [4, 5], [5, 5]], "download_link": "https://www.flickr.com/", "num_segments": 6},
            {"annotation_id": 1, "description": "a box starts moving", "video": b,
             "times": [[0, 1], [0, 0], [0, 1], [1, 1]], "download_link": "https://www.flickr.com/", "num_segments": 6},
            {"annotation_id": 2, "description": "the box is in the middle", "video": a,
             "times": [[2, 2], [2, 3], [3, 3], [2, 3]], "download_link": "https://www.flickr.com/", "num_segments": 6},
            {"annotation_id": 3, "description": "the end of the clip", "video": c,
             "times": [[5, 5], [5, 5], [5, 5], [4, 5]], "download_link": "https://www.flickr.com/", "num_segments": 6},
        ]  # fmt: skip
        path = root / cls.Params().annotation.replace("{split}", "train")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items))


# --- VTG-IT moment retrieval -------------------------------------------------------------------


def vtg_moment(answer: str, where: str) -> tuple[float, float]:
    """The (start, end) seconds of a VTG-IT grounding answer; one time gives start == end."""
    numbers = [float(x) for x in NUMBER.findall(vtg_text(answer))]
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    raise SourceError(f"{where}: expected one or two times in the answer, found {len(numbers)}: {answer!r:.80}")


def quoted_query(question: str, where: str) -> str:
    """The query VTG-LLM quotes in its prompt ('...'): from the first quote to the last."""
    first, last = question.find("'"), question.rfind("'")
    if first < 0 or last <= first + 1:
        raise SourceError(f"{where}: no quoted query in the question {question!r:.80}")
    return question[first + 1 : last].strip()


@dataclass
class VTGITParams(MomentParams):
    files: list[str] = field(default_factory=lambda: ["VTG-IT/moment_retrieval/*/*.json"])
    video_root: str = ""  # VTG-IT's "video" paths are relative to its data root


class VTGITMoments(MomentAdapter):
    name = "st_vtgit_tvg"
    Params = VTGITParams
    description = "VTG-IT moment retrieval ({video, QA:[{q, a}]}, times in the answer text) as TVG"

    def list_records(self):
        for pattern in self.params.files:
            for rel in self.src.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]:
                stem = rel.rsplit("/", 2)[-2] + "/" + Path(rel).stem if rel.count("/") else Path(rel).stem
                for i, item in enumerate(self.items(rel)):
                    if item.error or not isinstance(item.data, dict) or not isinstance(item.data.get("QA"), list):
                        yield self.broken(item, f"{stem}-{i}", f"{rel} {item.locator}: expected {{video, QA}}")
                        continue
                    for j, qa in enumerate(item.data["QA"]):
                        yield RawRecord(rel, f"{item.locator} QA {j}", f"{stem}-{i}-{j}", {"video": item.data.get(
                            "video"), "qa": qa})  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        d, where, root = record.data, record.locator, self.params.video_root
        video = F.check_text(d["video"], f"{where}: video")
        video = f"{root}/{video}" if root else video
        qa = d["qa"]
        query = quoted_query(F.text(qa, "q", where), where)
        start, end = vtg_moment(F.text(qa, "a", where), where)
        return self.tvg(record, video, self.clock(video), None, query, start, end)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "yttemporal/videos/video--7kE8JN7t4c", fps=4, seconds=30, seed=seed)
        write_clip(root, "charades/videos/AO8RW.mp4", fps=4, seconds=20, seed=seed)
        q = "Localize the visual content described by the given textual query '{}' in the video, and output the " \
            "start and end timestamps in seconds."  # fmt: skip
        files = {
            "VTG-IT/moment_retrieval/charades/instruct_tvg_12.4k_charades.json": [
                {"video": "charades/videos/AO8RW.mp4", "QA": [
                    {"q": q.format("a person's box slides right"),
                     "a": "The given query happens in 1.5 - 6.9 seconds."},
                    {"q": q.format("the box stops"),
                     "a": "The given query happens in 0012.0 - 0019.0 seconds."}]}],  # fixed-width form
            "VTG-IT/moment_retrieval/yttemporal/instruct_tvg_yttemporal.json": [
                {"video": "yttemporal/videos/video--7kE8JN7t4c", "QA": [
                    {"q": q.format("a flash"), "a": "The given query happens in <TIME_ONE><TIME_TWO><TIME_DOT>"
                                                    "<TIME_FIVE> seconds."}]},  # digit tokens, one time
                {"video": "yttemporal/videos/video--7kE8JN7t4c", "QA": [
                    {"q": "Where is it?", "a": "The given query happens in 2.0 - 3.0 seconds."}]}],  # no quoted query
        }  # fmt: skip
        for rel, items in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(items, indent=1))
