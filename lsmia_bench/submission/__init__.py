"""``lsmia-bench submit``: a submitted defense's metadata (:mod:`.meta`), isolated plug-in check
(:mod:`.check`), run and record (:mod:`.submit`, :mod:`.record`).

Nothing is imported here, so that ``python -m lsmia_bench.submission.check`` (the isolated check
process) starts without importing the rest.
"""
