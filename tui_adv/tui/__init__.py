"""The Textual dashboard (``adv-tui``): history, launch, live runs, run detail, compare, scorecard."""
