"""The build: sources in, one validated, decontaminated, deduplicated dataset out.

Stages, each its own module: ``ingest`` (parse and validate, in ``parallel`` workers, through ``spill``
files), ``dedup`` (decontamination against the evaluation splits and copies within the collection, on the
keys of ``canon``), then ``shard_writer``, ``reports``, ``card`` and ``provenance``, swapped into place by
``output``. ``pipeline.build`` runs them in order.
"""
