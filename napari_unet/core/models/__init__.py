"""The U-Net and its model files: network, configuration, model cards and sources, devices, precision, normalisation."""
