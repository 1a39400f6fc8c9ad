"""Per-frame maths without threads: geometry, pixels, styles, guided upsampling and
temporal smoothing."""
