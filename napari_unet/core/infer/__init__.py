"""Prediction: tiled sliding-window inference in memory, and block-wise out-of-core prediction into OME-Zarr."""
