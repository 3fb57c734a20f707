"""Qt-free engine of napari-unet, grouped by job into subpackages
(``models``, ``train``, ``infer``, ``io``, ``bioimageio``, ``instances``, ``data``); the public API (``api``),
user errors and input checks stay here. The map: docs/architecture.md."""
