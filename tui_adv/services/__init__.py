"""What you can do with runs, for both front ends: the CLI's commands and the dashboard call these
functions and neither reaches the other (the dashboard never spawns the CLI to get at its own code).

- :mod:`.runs`: the run document (``runs show --json``, ``run --json``, the export), the rows of
  ``runs list --json``, resuming a run in the background.
- :mod:`.cancel`: cancelling a run from anywhere (a request on its row, SIGTERM when it runs here).
- :mod:`.export`: a run as JSON or CSV, written to a file or returned as text.
- :mod:`.launch`: the configs a launcher offers (read through the validated config model) and starting
  ``adv-tui`` processes detached, with their output in a private launch log.
- :mod:`.scorecard`: the scorecard as rows for a table, and the runs behind a row.

No textual or rich imports here (``tests/test_boundary.py`` and the import-linter contracts check it).
"""
