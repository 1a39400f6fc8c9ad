"""Measuring: ``vidstyle bench`` (bench), flicker and fidelity (metrics), arithmetic cost
(flops), timing summaries (stats) and the system block every result carries (system)."""
