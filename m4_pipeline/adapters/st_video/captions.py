"""Caption tables that need code: Panda-70M (clips as Python-literal lists in CSV cells) and the
LLaVA-style caption copies of Grounded-VideoLLM's stage-1 mix. WebVid (CSV), InternVid-10M-FLT
(JSONL) and ShareGPT4Video (JSONL) are declarations (``recipes/sources/st_*.yaml``).

**Panda-70M** (snap-research/Panda-70M ``dataset_dataloading/README.md`` [V])::

    panda70m_training_2m.csv   videoID,url,timestamp,caption,matching_score,desirable_filtering,shot_boundary_detection
    videos/<videoID>.mp4       the full YouTube video (a parameter: ``video``)

One row per video; ``timestamp`` is a Python-literal list of ``["H:MM:SS.mmm", "H:MM:SS.mmm"]``
pairs, ``caption`` and ``matching_score`` parallel lists. The cells are parsed with
``ast.literal_eval`` (literals only, never ``eval``). Each clip is one record (id
``<videoID>-<clip>``) and one sample: the clip is ``meta.split`` of the source video, not a cut
file. ``min_matching_score`` keeps clips whose caption-video score reaches it (0: all); the
shape of ``desirable_filtering`` is not verified and is not read.
"""

from __future__ import annotations

import ast
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ...coords import Ops, hms_seconds
from ...sample import Sample
from ...templates import render
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import STVideoAdapter, STVideoParams, caption_text, write_clip
from .instructions import LlavaParams, LlavaVideoConversations

PANDA_COLUMNS = ["videoID", "url", "timestamp", "caption", "matching_score", "desirable_filtering",
                 "shot_boundary_detection"]  # fmt: skip


def literal_list(cell: str, what: str) -> list:
    """A Python-literal list from a CSV cell (``ast.literal_eval``: literals only)."""
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise SourceError(f"{what}: not a Python literal list ({type(err).__name__})") from None
    if not isinstance(value, list):
        raise SourceError(f"{what}: expected a list, got {type(value).__name__}")
    return value


@dataclass
class PandaParams(STVideoParams):
    annotation: str = "panda70m_training_2m.csv"
    video: str = "videos/{videoID}.mp4"
    prompt: str = "@st/caption_prompt"
    min_matching_score: float = 0.0


class Panda70M(STVideoAdapter):
    name = "st_panda70m"
    Params = PandaParams
    description = "Panda-70M CSV (clips as literal lists of H:MM:SS.mmm pairs) as ST captioning of clips"

    def list_records(self):
        rel = self.params.annotation
        seen: dict[str, int] = {}
        for item in self.items(rel, "csv", columns=["videoID", "timestamp", "caption"]):
            if item.error:
                yield self.broken(item, f"{item.locator}")
                continue
            row, where = item.data, f"{rel} {item.locator}"
            vid = row.get("videoID", "").strip() or item.locator.replace(" ", "")
            seen[vid] = seen.get(vid, 0) + 1
            base = vid if seen[vid] == 1 else f"{vid}-dup{seen[vid] - 1}"
            try:
                clips = literal_list(row["timestamp"], f"{where}: timestamp")
                captions = literal_list(row["caption"], f"{where}: caption")
                scores = literal_list(row["matching_score"], f"{where}: matching_score") if row.get(
                    "matching_score", "").strip() else [None] * len(clips)  # fmt: skip
                if not len(clips) == len(captions) == len(scores):
                    raise SourceError(f"{where}: {len(clips)} clips, {len(captions)} captions, {len(scores)} scores")
            except SourceError as err:
                yield RawRecord(rel, item.locator, base, None, str(err))
                continue
            for k, (clip, caption, score) in enumerate(zip(clips, captions, scores)):
                data = {"videoID": vid, "clip": clip, "caption": caption, "score": score}
                yield RawRecord(rel, f"{item.locator} clip {k}", f"{base}-{k}", data)

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        clip = d["clip"]
        if not (isinstance(clip, list) and len(clip) == 2):
            raise SourceError(f"{where}: a clip is a [start, end] pair, got {clip!r:.60}")
        if p.min_matching_score and (d["score"] is None or F.check_number(d["score"], f"{where}: score") <
                                     p.min_matching_score):  # fmt: skip
            raise SourceError(f"{where}: matching score {d['score']} < {p.min_matching_score}", reason="filtered")
        start, end = hms_seconds(clip[0], f"{where}: clip start"), hms_seconds(clip[1], f"{where}: clip end")
        video = render(p.video, {"videoID": d["videoID"]}, where)
        clock = self.clock(video, Ops())
        frames = clock.clip(start, end, f"{where}: clip")
        notes: dict = {}
        prompt = self.template(notes, p.prompt, record, "human")
        values = {"caption": caption_text(d["caption"], f"{where}: caption")}
        return self.video_sample(record, [("human", prompt, {}), ("gpt", "{caption}", values)], video=video,
                                 clock=clock, clip=frames, notes=notes)  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Three videos at 4 fps; one clip ends exactly at the video's end (15 s of a 15 s video),
        one lies past it (quarantined), one row's cell is not a literal, videos repeat nowhere but
        clips of one video share it."""
        root = Path(root)
        for vid, seconds in (("-0aBcD_eF1g", 15), ("Zz9_yYxX8wV", 12), ("a1B2c3D4e5F", 10)):
            write_clip(root, f"videos/{vid}.mp4", fps=4, seconds=seconds, seed=seed)
        rows = [
            ["-0aBcD_eF1g", "https://www.youtube.com/watch?v=-0aBcD_eF1g",
             "[['0:00:00.000', '0:00:04.004'], ['0:00:04.004', '0:00:09.759'], ['0:00:10.510', '0:00:15.000']]",
             "['A red box slides across a gradient.', \"A box's shadow moves right.\", 'The box reaches the edge.']",
             "[0.4512, 0.3817, 0.4120]", "['desirable', 'desirable', 'desirable']", "[[0, 1], [1, 2], [2, 3]]"],
            ["Zz9_yYxX8wV", "https://www.youtube.com/watch?v=Zz9_yYxX8wV",
             "[['0:00:01.001', '0:00:06.006'], ['0:00:06.500', '0:00:20.000']]",  # the second lies past 12 s
             "['A square moves to the right.', 'The square stops.']", "[0.41, 0.39]", "['desirable', 'desirable']",
             "[[0, 1], [1, 2]]"],
            ["a1B2c3D4e5F", "https://www.youtube.com/watch?v=a1B2c3D4e5F", "[['0:00:00.000', '0:00:05.0'",
             "['cut off']", "[0.5]", "['desirable']", "[[0, 1]]"],  # a truncated cell
            ["a1B2c3D4e5F", "https://www.youtube.com/watch?v=a1B2c3D4e5F", "[['0:00:02.000', '0:00:08.000']]",
             "['A coloured box crosses the frame.']", "", "", ""],  # the same video again, no scores
        ]  # fmt: skip
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(PANDA_COLUMNS)
        writer.writerows(rows)
        (root / cls.Params().annotation).write_text(buf.getvalue())


# --- LLaVA-style caption copies (Grounded-VideoLLM's stage-1 mix) ------------------------------


@dataclass
class GVLCaptionParams(LlavaParams):
    annotation: str = "webvid-703k/filtered_train.json"
    video_root: str = "webvid-703k/videos"


class GVLWebVidCaptions(LlavaVideoConversations):
    """Grounded-VideoLLM's WebVid-703K copy (HF ``WHB139426/Grounded-VideoLLM``,
    ``webvid-703k/filtered_train.json``: ``[{id, video, conversations}]`` [V GVLd
    ``mix_pretrain.py``]), the route to WebVid captions now that WebVid itself is withdrawn. The
    same class reads any LLaVA-style caption copy (``annotation`` / ``video_root``)."""

    name = "st_gvl_caption_json"
    Params = GVLCaptionParams
    description = "LLaVA-style caption JSON copies (Grounded-VideoLLM webvid-703k filtered_train.json)"

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        items = [
            {"id": "1066674784", "video": "1066674784.mp4",
             "conversations": [{"from": "human", "value": "Provide a brief description of the given video.\n<video>"},
                               {"from": "gpt", "value": "Aerial shot of a winter forest."}]},
            {"id": "1017410446", "video": "1017410446.mp4",
             "conversations": [{"from": "human", "value": "<video>\nSummarize the video in one sentence."},
                               {"from": "gpt", "value": "Woman typing on a laptop."}]},
            {"id": "1017410447", "video": "1017410447.mp4",
             "conversations": [{"from": "human", "value": "Describe the clip.\n<video>"},
                               {"from": "gpt", "value": " "}]},
        ]  # fmt: skip
        cls.write_llava_miniature(root, items, seed=seed)
