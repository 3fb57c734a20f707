"""Short full garbage collections while the dock is open: what existed when it opened is frozen.

A full (generation-2) collection visits every object the process holds, and holds the GIL while it does: with
napari, torch and scikit-learn loaded that is about 480 000 objects and 0.3 s in which napari's event loop
stands still, about once a minute while training (docs/benchmarks.md). Nearly all of those objects are
modules, classes and functions that live as long as the process. ``gc.freeze()`` moves the objects that
exist into a permanent generation that collections skip, so later collections visit only what was made
since (as solara, sglang and Klipper do after start-up).

Frozen objects are still freed when their reference count drops to zero; only a reference cycle among them
would stay until they are thawed. So that nothing the user discards is kept:

- the freeze comes right after a full collection (no garbage is frozen);
- it ends (:func:`thaw`) when a layer is removed (layers are cycles, and hold the big arrays) and when the
  dock closes; the next collection of the oldest generation then frees them as usual;
- a later Train freezes again (:func:`freeze_long_lived`, one full collection then).
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
