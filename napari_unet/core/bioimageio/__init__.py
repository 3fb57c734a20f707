"""bioimage.io model packages: export, import, and the size grid and TorchScript trace."""
