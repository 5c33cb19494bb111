"""The network: configuration, encoders, TEM, ARM, the decoders, and the tensors fed to them."""
