"""adv-tui: reproduce and explore *Explaining and Harnessing Adversarial Examples* from a terminal."""

from __future__ import annotations

__version__ = "0.1.0"


def load_model(run_id: int, db: str | None = None, *, device: str = "cpu"):
    """Return the trained ``torch.nn.Module`` of catalog run ``run_id`` (eval mode; [0,1] images → logits)."""
    from .checkpoints import load_model as _load

    return _load(run_id, db, device=device)


__all__ = ["__version__", "load_model"]
