"""lcai capability ``gpu-nvidia``."""

from lcai_core.api import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_capabilities(register):
    from .capability import GpuNvidia

    register(GpuNvidia())
