"""Compiler passes, one per file, each a pure function of its input (it never mutates it).

The flow (``compiler.build.lower_to_program``) is::

    check_ops -> schedule -> memory_plan -> pack_parameters -> (Program)

Each stage's result prints for humans (``describe()``).
"""
