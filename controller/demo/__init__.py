"""The embedded demo: the real controller on an in-process Kubernetes API emulation, fast clock.

Callers: ``controller.cli`` (the ``tidegate demo`` verb) through ``running.run_demo``.
Nothing outside ``controller.cli`` imports this package, and it imports nothing from
``tests/``. It must not change how the controller decides: it only builds a world
(emulated API, simulated Flux, an alert source, an accelerated clock), plays a
scenario against the unmodified ``controller.main.run_controller`` and reports.
"""
