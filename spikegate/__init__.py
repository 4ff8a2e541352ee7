"""spikegate: Meta-SpikeFormer checkpoints to bit-exact, verified FPGA accelerators.

The Python API (``spikegate.api``, re-exported here) runs the same code as the ``spikegate`` CLI:

    models()                             the embedded trained models (names usable as checkpoints)
    model_info(ckpt)                     one checkpoint's preset, T, shape, parameters, accuracy
    data(name, count, size=)             held-out inputs and labels of a data set ("digits", "mnist")
    load_model(ckpt)                     the float PyTorch model of a checkpoint
    init_checkpoint(preset, out, ...)    a randomly initialised checkpoint of any preset or shape
    quantize_model(ckpt, out=, calib=)   the integer IR (SGIR) and its accuracy report
    save_ir(ir, path) / load_ir(path)    SGIR files
    input_range(ir)                      the input values a model expects
    golden(ir, images, trace=)           the bit-exact integer model: logits (and spike traces)
    compile_ir(ir, target, out_dir)      a build directory: program, memory images, Verilog
    verify_rtl(build_dir, images)        the build's Verilog simulated against the golden model
    synthesize(build_dir, board)         a bitstream with Yosys/nextpnr, Fmax and resources
    write_report(out_dir, ...)           report.md and report.html

Errors caused by the arguments are :class:`spikegate.errors.SpikegateError` with the CLI's
one-line message. The CLI itself lives in ``spikegate.cli`` and ``spikegate.commands``.
"""

__version__ = "0.1.0"

# The API module imports nothing heavy at import time (its functions do), so this stays light.
from spikegate.api import *  # noqa: E402,F401,F403
from spikegate.api import __all__ as _api_names  # noqa: E402
from spikegate.errors import SpikegateError  # noqa: E402

__all__ = [*_api_names, "SpikegateError"]
