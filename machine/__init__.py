"""The machine definition: the one description of the accelerator that the compiler targets and the
hardware generator builds.

* :mod:`.program`: the instruction set (opcodes, fields and their widths, the per-instruction
  products), the instruction encoding and the :class:`~.program.Program` the compiler produces.
* :mod:`.config`: :class:`~.config.MachineConfig` (every width and memory size of one
  accelerator) and the structural choices (the deep ACC pipeline, the block RAM bank depth).
* :mod:`.memory`: the memory geometry (SPRAM packing of the weights).
* :mod:`.host_protocol`: the host link's framed protocol, as pure Python.

This package is a leaf: it imports nothing else of spikegate but the shared base (errors), so ``compiler/`` and ``hw/`` can
both import it without importing each other (``tests/test_imports.py`` checks the arrows).
"""
