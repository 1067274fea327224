"""gitfirm: a GitOps reconciler for VyOS router firmware.

Stages live in sub-packages (model, source, devices, images, planning, rollout, report,
simulator) and exchange plain data. Only ``daemon`` and ``cli`` wire them together.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
