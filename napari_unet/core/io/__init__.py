"""Files: images read whole or lazily, OME-Zarr metadata, label images, sessions, and safe atomic writes."""
