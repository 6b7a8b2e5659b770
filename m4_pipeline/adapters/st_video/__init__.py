"""ST-Align's video sources (stages 1-3), grouped by the layout family they share.

- :mod:`.captions`: caption tables (Panda-70M CSV; WebVid, InternVid and ShareGPT4Video are
  declarations in ``recipes/sources/st_*.yaml``).
- :mod:`.moments`: single moments (VTimeLLM stage 2, InternVid-G, HiREST) and the shapes of a
  moment sample; :mod:`.grounding`: the stage-3 TVG sources QuerYD, DiDeMo, VTG-IT.
- :mod:`.dense`: dense captions (COIN, YouCook2, ActivityNet Captions, Moment-10M GESM, HiREST
  steps, ViTT, VTG-IT).
- :mod:`.conversations`: timestamped conversations (LITA ANet-RTL, Moment-10M, Grounded-VideoLLM).
- :mod:`.instructions`: instruction collections (VideoChat2-IT with its subset table, LLaVA-style
  video conversation files).
- :mod:`.videoqa`: raw video QA that needs code (CLEVRER); NExT-QA, IntentQA, STAR, AGQA, SSv2
  and Kinetics are declarations.

Every time becomes a frame of the video as decoded (:mod:`.common`, on :mod:`m4_pipeline.coords`);
``docs/st_video_sources.md`` has the table of layouts, units and differences from the release.
"""
