"""Training losses: frozen perceptual feature nets and eq. (5) (:mod:`swycc.losses.perceptual`),
DISTS (:mod:`swycc.losses.dists`), adversarial terms (:mod:`swycc.losses.adversarial`), and the
registry that builds a perceptual net by name (:mod:`swycc.losses.registry`)."""
