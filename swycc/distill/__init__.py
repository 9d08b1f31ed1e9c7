"""Few-step decoding by progressive distillation with guidance folded in (docs/distillation.md).

``swycc.distill.task.distill`` runs the rounds, ``swycc.distill.objective`` holds the PD target
and loss, ``swycc.distill.report`` measures students against their teacher and D_Initial.
"""
