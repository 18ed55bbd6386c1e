"""Batch enhance and colorize with Ray Data: list → read → decode → model actors → encode → write, with a manifest.

``pixelplexus enhance|colorize INPUT OUTPUT`` (:mod:`.command`) and ``jobs/batch.py`` build a
:class:`.run.BatchRequest` and call :func:`.run.run_batch`; :func:`.manifest.read_manifest` reads what
runs wrote under OUTPUT. Modules: :mod:`~pixelplexus.io.locations` (folders, S3 prefixes, list files),
:mod:`.planning` (what to do with each input, on Arrow tables; the plan's parts), :mod:`.pipeline` (the Ray
Data stages), :mod:`.manifest` (one Parquet row per input, written as parts), :mod:`.run` (the driver). Nothing is
imported here, so that registering the commands does not load torch or Ray.
"""
