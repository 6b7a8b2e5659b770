"""ST-Align's image sources: referring expressions, phrase-grounded captions, grounded conversations.

Every source here emits ST image samples: the record's ``image`` names one image, the first human
turn holds one ``<image>``, and boxes are written as LAPE placeholders
``[<WIDTH-*><HEIGHT-*><WIDTH-*><HEIGHT-*>]`` whose values (``[x1, y1, x2, y2]`` divided by the
image's width and height, 3 decimals) sit in ``variables`` (:mod:`m4_pipeline.coords`).

- :mod:`.refcoco`: RefCOCO / RefCOCO+ / RefCOCOg (REC, REG) in the three published forms;
- :mod:`.flickr30k`: Flickr30k Entities (DGC, grounded captioning) in the original and MDETR forms;
- :mod:`.grand`: GranD per-image JSON (stage-2 REC, REG, DGC);
- :mod:`.muse`: MUSE (grounded conversation, ``{seg}`` markers become boxes).

:mod:`.common` holds what they share: the image check, the interleaving of phrases and boxes.
"""
