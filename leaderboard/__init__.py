"""The static leaderboard site: recorded MLflow runs -> typed records -> Jinja2 pages.

Modules: :mod:`~leaderboard.records` (reading MLflow), :mod:`~leaderboard.board` (entries,
seeds aggregated, attacks joined), :mod:`~leaderboard.ranking` (the ranking rule),
:mod:`~leaderboard.columns` (names and explanations of metrics), :mod:`~leaderboard.views` and
:mod:`~leaderboard.charts` (what the templates show), :mod:`~leaderboard.build` (rendering and
writing the site), :mod:`~leaderboard.entry_records` (the committed entry records' schema,
``leaderboard/entries/<suite>/<entry>.json``), :mod:`~leaderboard.publish` (writing records
from runs, ``verify``), :mod:`~leaderboard.cli` (``lsmia-bench leaderboard
build|serve|record|verify``).
"""
