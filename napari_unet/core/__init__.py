"""Qt-free engine of napari-unet: model, sparse-label training, tiled prediction, I/O."""
