"""Dedup: exact keys, pHash bit-identity, banded LSH exactness, clusters, near-duplicate samples."""

import io
from collections import defaultdict

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageOps

from m4_pipeline.dedup import (
    BandPlan,
    Edge,
    MediaKey,
    MinHashConfig,
    MinHashIndex,
    NearDupConfig,
    SampleSignature,
    TextKey,
    TextMediaKey,
    band_records,
    brute_force_pairs,
    build_clusters,
    find_near_duplicates,
    get_exact_key,
    minhash,
    minhash_band_records,
    near_pairs,
    pairs_in_band,
    phash_bytes,
    phash_images,
    signature_of,
)
from m4_pipeline.dedup.phash import hash_hex
from m4_pipeline.dedup.text import _lean, candidate_pairs_in_bucket, lsh_bands
from m4_pipeline.media.images import encode_jpeg
from m4_pipeline.sample import Media, Provenance, Sample, Turn
from m4_pipeline.synthetic import synthetic_image

# --- helpers -------------------------------------------------------------------------------------


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def image_sample(key: str, images: list[Image.Image], question: str, *, quality: int = 90) -> Sample:
    media = [Media("image", slot, jpeg_bytes(im, quality), size=list(im.size)) for slot, im in enumerate(images)]
    return Sample(
        key=key,
        family="m4",
        conversations=[Turn("human", "<image>" * len(images) + "\n" + question), Turn("gpt", "An answer.")],
        media=media,
        provenance=Provenance(dataset=key.split("-")[0], source_file="f", locator="l"),
    )


def video_sample(key: str, frames: list[np.ndarray], question: str, quality: int = 90) -> Sample:
    media = [Media("frame", 0, encode_jpeg(f, quality), frame_index=i, size=[f.shape[1], f.shape[0]])
             for i, f in enumerate(frames)]  # fmt: skip
    return Sample(key=key, family="m4", conversations=[Turn("human", question), Turn("gpt", "ok")], media=media)


def moving_box_frames(seed: int, n: int = 12, size=(160, 96)) -> list[np.ndarray]:
    background = np.asarray(synthetic_image(seed, size))
    frames = []
    for i in range(n):
        f = background.copy()
        x = i * (size[0] - 24) // (n - 1)
        f[30:54, x : x + 24] = (230, 57, 70)
        frames.append(f)
    return frames


def planted_hashes(n: int, threshold: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    for i in range(n // 5):
        v = int(hashes[rng.integers(n // 5, n)])
        for b in rng.choice(64, size=int(rng.integers(0, threshold + 2)), replace=False):
            v ^= 1 << int(b)
        hashes[i] = v
    hashes[-1] = hashes[-2]  # an identical pair
    return hashes


# --- exact --------------------------------------------------------------------------------------


def test_exact_keys_text_media_both():
    a = image_sample("nlvr2-a", [synthetic_image(1)], "Is it red?")
    same_text = image_sample("nlvr2-b", [synthetic_image(2)], "Is  it red? ")  # whitespace only differs
    same_media = image_sample("llava_mix-c", [synthetic_image(1)], "Is it blue?")
    assert TextMediaKey()(a) == TextMediaKey()(image_sample("other-key", [synthetic_image(1)], "Is it red?"))
    assert TextKey()(a) == TextKey()(same_text) and TextKey()(a) != TextKey()(same_media)
    assert MediaKey()(a) == MediaKey()(same_media) and MediaKey()(a) != MediaKey()(same_text)
    assert TextMediaKey()(a) not in {TextMediaKey()(same_text), TextMediaKey()(same_media)}
    text_only = [Sample(key=k, family="m4", conversations=[Turn("human", k)]) for k in ("x", "y")]
    assert MediaKey()(text_only[0]) != MediaKey()(text_only[1])  # no media: never "the same media"
    assert isinstance(get_exact_key("both"), TextMediaKey)
    with pytest.raises(KeyError, match="valid: both, media, text"):
        get_exact_key("pixels")


def test_keep_policy_ignores_edge_order():
    edges = [Edge("b", "c", "near_media"), Edge("a", "b", "near_media"), Edge("d", "e", "near_text")]
    pixels = {"a": 100, "b": 400, "c": 400}
    one = build_clusters(edges, pixels)
    two = build_clusters(list(reversed(edges)), pixels)
    assert [(c.kept, c.members) for c in one] == [(c.kept, c.members) for c in two]
    assert [(c.kept, c.members) for c in one] == [("b", ["a", "b", "c"]), ("d", ["d", "e"])]


# --- pHash --------------------------------------------------------------------------------------


def test_phash_is_bit_identical_to_imagehash():
    rng = np.random.default_rng(0)
    images = [synthetic_image(i, (40 + 37 * i, 30 + 23 * (i % 7))) for i in range(24)]
    images += [Image.fromarray(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8))]
    images += [Image.new("RGB", (64, 48), (90, 90, 90)), Image.new("L", (33, 20), 7)]  # constant: median ties
    images += [images[0].convert("RGBA"), images[1].convert("P"), images[2].convert("L"), ImageOps.mirror(images[3])]
    ours = phash_images(images)
    assert [hash_hex(h) for h in ours] == [str(imagehash.phash(im)) for im in images]
    blobs = [jpeg_bytes(im, 75) for im in images[:8]]
    ref = [str(imagehash.phash(Image.open(io.BytesIO(b)))) for b in blobs]
    assert [hash_hex(h) for h in phash_bytes(blobs)] == ref
    assert [hash_hex(h) for h in phash_bytes(blobs, workers=2)] == ref


def test_signature_hashes_kept_jpegs_from_their_decoded_pixels_bit_identically(monkeypatch):
    """Kept JPEGs are hashed from the pixels normalize_image decoded (no second decode), with the
    same bits as imagehash over the bytes; the pixels are released once the signature is made."""
    from m4_pipeline.dedup import signature as signature_module
    from m4_pipeline.media.images import normalize_image

    rng = np.random.default_rng(1)
    noisy = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    images = [synthetic_image(i, (64 + 45 * i, 48 + 31 * (i % 5))) for i in range(10)] + [noisy]
    blobs = [jpeg_bytes(im, q) for im, q in zip(images, [95, 90, 75, 50, 30, 90, 95, 90, 85, 60, 90])]
    blobs.append(_grey_jpeg(images[1]))  # mode L: kept, hashed from its RGB copy
    blobs.append(_jpeg_444(images[2]))  # no chroma subsampling
    blobs.append(jpeg_bytes(Image.new("RGB", (64, 48), (30, 30, 30))))  # constant: median ties
    normalized = [normalize_image(b, f"img{i}") for i, b in enumerate(blobs)]
    assert all(n.ops == ["kept_original"] and n.decoded is not None for n in normalized)
    media = [Media("image", i, n.data, size=list(n.size), decoded=n.decoded) for i, n in enumerate(normalized)]
    sample = Sample("s-1", "m4", [Turn("human", "<image>" * len(media) + "\nq"), Turn("gpt", "a")], media=media)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the bytes again")

    monkeypatch.setattr(signature_module, "shrink_bytes", no_decoding)
    got = signature_of(sample)
    monkeypatch.undo()
    expected = [str(imagehash.phash(Image.open(io.BytesIO(b)))) for b in blobs]
    assert [hash_hex(s.phashes[0]) for s in got.slots] == expected
    assert all(m.decoded is None for m in sample.media)  # released
    again = signature_of(sample)  # without the pixels: decodes the bytes, same hashes
    assert again.to_row() == got.to_row()
    # re-encoded images carry no pixels (they differ from what their bytes decode to)
    png = io.BytesIO()
    images[0].save(png, "PNG")
    assert normalize_image(png.getvalue(), "a.png").decoded is None
    assert Media("image", 0, blobs[0], decoded=normalized[0].decoded).describe() == {
        "kind": "image", "slot": 0, "ext": "jpg"}  # fmt: skip


def _grey_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("L").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _jpeg_444(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, subsampling=0)
    return buf.getvalue()


# --- banded LSH ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "blocks"), [(0, 1), (3, 4), (6, None), (6, 9), (10, 11), (10, 13)])
def test_lsh_finds_exactly_the_brute_force_pairs(threshold, blocks):
    hashes = planted_hashes(3000, threshold, seed=threshold)
    plan = BandPlan(threshold=threshold, blocks=blocks) if blocks else None
    found = near_pairs(hashes, threshold, plan=plan)
    expected = brute_force_pairs(hashes, threshold)
    assert len(expected) > 100
    np.testing.assert_array_equal(found, expected)


def test_distributed_band_pieces_give_each_pair_once():
    threshold = 6
    hashes = planted_hashes(2000, threshold, seed=11)
    plan = BandPlan.for_items(threshold, len(hashes))
    groups = defaultdict(list)
    for i, h in enumerate(hashes):  # what the executor's shuffle by band key does
        for band_key, item in band_records(f"k{i:05d}", int(h), plan):
            groups[band_key].append(item)
    pairs = [p for (band, _), items in groups.items() for p in pairs_in_band(band, items, plan)]
    assert len(pairs) == len(set(pairs))  # the first-shared-band rule: no pair twice
    expected = {(f"k{a:05d}", f"k{b:05d}", d) for a, b, d in brute_force_pairs(hashes, threshold).tolist()}
    assert set(pairs) == expected


def test_band_plan_validates_and_scales():
    with pytest.raises(ValueError, match="blocks must be"):
        BandPlan(threshold=6, blocks=6)
    with pytest.raises(ValueError, match="threshold must be"):
        BandPlan(threshold=64, blocks=64)
    assert BandPlan(threshold=6, blocks=7).num_bands == 7  # the plain pigeonhole
    assert BandPlan.for_items(6, 1_000_000).num_bands > BandPlan.for_items(6, 1000).num_bands


# --- near-duplicate samples -----------------------------------------------------------------------


def test_near_duplicate_images_cluster_across_sources_keeping_the_larger():
    img, other = synthetic_image(5, (640, 480)), synthetic_image(6, (640, 480))
    big = image_sample("nlvr2-big", [img], "Describe the picture.")
    small = image_sample("llava_mix-small", [img.resize((320, 240))], "Describe the picture.", quality=50)
    different = image_sample("nlvr2-other", [other], "Describe the picture.")
    sigs = [signature_of(s) for s in (small, different, big)]
    result = find_near_duplicates(sigs)
    assert [(c.kept, c.members) for c in result.clusters] == [("nlvr2-big", ["llava_mix-small", "nlvr2-big"])]
    assert result.duplicate_of == {"llava_mix-small": "nlvr2-big"}
    row = result.rows[0]
    assert row["reason"] == "near_media_text" and row["edges"][0]["detail"]["hamming"] <= 6


def test_multi_image_policy_text_media_both():
    a, b = synthetic_image(21), synthetic_image(22)
    base = image_sample("src-base", [a, b], "Which image has more shapes, the first or the second?")
    same_media = image_sample("src-media", [a, b], "Are the two pictures taken on the same day or not?")
    same_text = image_sample("src-text", [synthetic_image(31), synthetic_image(32)], base.conversations[0].value[16:])
    swapped = image_sample("src-swap", [b, a], "Which image has more shapes, the first or the second?")
    sigs = [signature_of(s) for s in (base, same_media, same_text, swapped)]

    def pairs(policy):
        res = find_near_duplicates(sigs, NearDupConfig(policy=policy))
        return sorted(tuple(c.members) for c in res.clusters)

    assert pairs("both") == []  # the same images with another question, or the reverse: kept
    assert pairs("media") == [("src-base", "src-media")]  # slot order matters: the swap is not a copy
    assert pairs("text") == [("src-base", "src-swap", "src-text")]


def test_video_near_duplicates_by_aligned_frame_hashes():
    frames = moving_box_frames(40)
    first = video_sample("vid-a", frames, "What moves?", quality=90)
    resampled = video_sample("vid-b", [np.asarray(Image.fromarray(f).resize((80, 48))) for f in frames[::2]],
                             "What moves?", quality=50)  # fmt: skip
    other = video_sample("vid-c", moving_box_frames(41), "What moves?")
    sigs = [signature_of(s) for s in (first, resampled, other)]
    assert [s.slots[0].kind for s in sigs] == ["video"] * 3 and len(sigs[0].slots[0].phashes) == 12
    result = find_near_duplicates(sigs)
    assert [c.members for c in result.clusters] == [["vid-a", "vid-b"]]


def test_minhash_near_duplicate_text_conversation_and_turn_level():
    def text_sample(key, turns):
        roles = ["human", "gpt"] * len(turns)
        return Sample(key=key, family="m4", conversations=[Turn(r, t) for r, t in zip(roles, turns)])

    long_answer = " ".join(f"word{i}" for i in range(120))  # a long answer shared by all three
    s1 = text_sample("t-1", ["What is on the table in this kitchen photo?", long_answer])
    s2 = text_sample("t-2", ["What is on the table in this kitchen photo ?", long_answer + " Nothing else."])
    s3 = text_sample("t-3", ["Why is the cat sleeping on the warm windowsill?", long_answer])
    s4 = text_sample("t-4", ["A completely different conversation about train timetables in winter.", "Yes."])
    convo = NearDupConfig(text_threshold=0.8)
    turn = NearDupConfig(text_threshold=0.8, text_level="turn")
    found_conv = find_near_duplicates([signature_of(s, convo) for s in (s1, s2, s3, s4)], convo)
    found_turn = find_near_duplicates([signature_of(s, turn) for s in (s1, s2, s3, s4)], turn)
    assert [c.members for c in found_conv.clusters] == [["t-1", "t-2", "t-3"]]  # the long answer dominates
    assert [c.members for c in found_turn.clusters] == [["t-1", "t-2"]]  # every turn must match
    assert found_turn.rows[0]["reason"] == "near_text"


def test_minhash_band_records_agree_with_datasketch():
    cfg = MinHashConfig()
    texts = [f"the quick brown fox number {i % 7} jumps over the lazy dog near the river bank" for i in range(30)]
    texts += [f"completely unrelated sentence {i} about astronomy and distant galaxies" for i in range(10)]
    sigs = {i: minhash(t, cfg) for i, t in enumerate(texts)}
    bands = lsh_bands(0.8, cfg)
    buckets = defaultdict(list)
    for i, sig in sigs.items():
        for bucket, doc in minhash_band_records(i, sig, bands):
            buckets[bucket].append(doc)
    from_records = {p for docs in buckets.values() for p in candidate_pairs_in_bucket(docs)}
    index = MinHashIndex(0.8, cfg)
    for i, sig in sigs.items():
        index.add(i, sig)
    from_lsh = {tuple(sorted((i, j), key=str)) for i in sigs for j in index.lsh.query(_lean(sigs[i], cfg)) if i != j}
    assert from_records == from_lsh and from_records


def test_signature_row_round_trip():
    s = image_sample("nlvr2-x", [synthetic_image(3), synthetic_image(4)], "Same or different?")
    s.record = {"image": ["coco/train2017/000000581857.jpg", "x/y.jpg"]}
    sig = signature_of(s, NearDupConfig(text_level="turn"))
    back = SampleSignature.from_row(sig.to_row())
    assert back.to_row() == sig.to_row() and sig.image_ids == ["coco:581857"] and len(back.turn_minhash) == 2
    with pytest.raises(ValueError, match="policy"):
        NearDupConfig(policy="either")


def test_text_candidates_pair_indices_past_nine():
    """Regression: LSH pairs came back ordered by str ("14" < "2"), so (2, 14) was missed when
    intersected with the media candidates."""
    from m4_pipeline.dedup.near import text_candidates

    samples = [image_sample(f"s{i:02d}", [synthetic_image(i)], f"question number {i % 3} about the picture")
               for i in range(15)]  # fmt: skip
    config = NearDupConfig()
    sigs = [signature_of(s, config) for s in samples]
    pairs = text_candidates(sigs, config)
    assert (2, 14) in pairs and all(a < b for a, b in pairs)
