"""Threads and stages: the generic runner, the stage list every path shares, the stylizer,
live scheduling and sizing, the memory check and the delivery meter."""
