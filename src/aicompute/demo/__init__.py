"""The product tour (``aicompute demo``)."""

from aicompute.demo.tour import DemoResult, Step, default_steps, run_demo

__all__ = ["default_steps", "DemoResult", "Step", "run_demo"]
