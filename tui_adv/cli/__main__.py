"""``python -m tui_adv.cli``: the same entry point as the ``adv-tui`` console script."""

from . import main

if __name__ == "__main__":
    main()
