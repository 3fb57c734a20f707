"""Sample data and voxel sizes: the synthetic nuclei generator, lengths in finest voxels."""
