"""A Steam Web API + Store API simulator: a real HTTP server with Steam's shapes and quirks."""

from .ids import ProfileKind, SimulatedProfile, steam_id_for
from .server import SimulatorServer

__all__ = ["ProfileKind", "SimulatedProfile", "SimulatorServer", "steam_id_for"]
