"""spikegate: Meta-SpikeFormer checkpoints to bit-exact, verified FPGA accelerators."""

__version__ = "0.1.0"
