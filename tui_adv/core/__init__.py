"""Headless core: data, models, attacks, sweeps and training. No textual or rich in here."""
