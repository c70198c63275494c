"""sdpo-ttt: test-time discovery on one hard problem with SDPO self-distillation."""

__version__ = "0.1.0"
