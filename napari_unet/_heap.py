"""Short full garbage collections while the dock is open: what existed when it opened is frozen.

A full (generation-2) collection visits every object the process holds, and holds the GIL while it does: with
napari, torch and scikit-learn loaded that is about 480 000 objects and 0.3 s in which napari's event loop
stands still, about once a minute while training (docs/benchmarks.md). Nearly all of those objects are
modules, classes and functions that live as long as the process. ``gc.freeze()`` moves the objects that
exist into a permanent generation that collections skip, so later collections visit only what was made
since (as solara, sglang and Klipper do after start-up).

Frozen objects are still freed when their reference count drops to zero, but a dead reference cycle with a
frozen member stays, with all it refers to, until the freeze ends. So that what the user discards is freed:

- the freeze comes right after a full collection (no garbage is frozen, unless another thread was collecting
  just then, when ``gc.collect`` does nothing);
- it ends (:func:`thaw`) when a layer of the dock's viewer is removed (layers are cycles, and hold the big
  arrays) and when the dock closes; the next full collection then frees them as usual;
- a later Train freezes again (:func:`freeze_long_lived`, one full collection then).

What it does not cover: an object that existed when the dock opened, outside its viewer's layers (another
viewer's layers, another plugin's widget), dropped as a cycle while the freeze holds, is freed only once one of
the above ends it. ``gc.unfreeze`` is process-wide: it also thaws what anything else froze. While frozen,
``gc.get_objects()`` does not list frozen objects (leak-hunting tools then miss them).
"""

from __future__ import annotations

import gc

_state = {"frozen": False}


def freeze_long_lived() -> None:
    """Collect all garbage, then freeze every object left (no-op while this module's freeze holds)."""
    if _state["frozen"]:
        return
    gc.collect()
    gc.freeze()
    _state["frozen"] = True


def thaw(*_event) -> None:
    """Return the frozen objects to the collector (they are collected as usual from now on)."""
    if _state["frozen"]:
        gc.unfreeze()
        _state["frozen"] = False


def is_frozen() -> bool:
    """Whether this module's freeze holds."""
    return _state["frozen"]
