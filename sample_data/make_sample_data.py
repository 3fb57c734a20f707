"""Write the bundled sample data as TIFF files next to this script (deterministic; no downloads).

    python sample_data/make_sample_data.py

Files: nuclei2d_image.tif, nuclei2d_strokes.tif, nuclei2d_truth.tif and the same for nuclei3d
(ZYX, Z spacing 2). Strokes: 0 = unpainted, 1 = background, 2 = nucleus. Truth: instance labels.
"""

from pathlib import Path

import tifffile

from napari_unet.sample_data import nuclei_sample

HERE = Path(__file__).parent


def main() -> None:
    for dim in (2, 3):
        sample = nuclei_sample(dim)
        imagej = {"spacing": sample.spacing[0]} if dim == 3 else {}
        for name, array in (
            ("image", sample.image),
            ("strokes", sample.strokes),
            ("truth", sample.instances.astype("uint16")),
        ):
            path = HERE / f"nuclei{dim}d_{name}.tif"
            tifffile.imwrite(path, array, imagej=True, metadata={"axes": "ZYX"[-dim:], **imagej}, compression="zlib")
            print(path)


if __name__ == "__main__":
    main()
