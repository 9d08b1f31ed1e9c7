"""Files the library writes: all-or-nothing outputs (:mod:`swycc.io.outputs`), latents files
(:mod:`swycc.io.latents`), image grids, variance maps and figures (:mod:`swycc.io.visual`)."""
