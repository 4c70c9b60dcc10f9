"""A small client for scenario runners: sends well-formed CloudEvents to the events topic."""

from services.emitter.client import Emitter, build_event

__all__ = ["Emitter", "build_event"]
