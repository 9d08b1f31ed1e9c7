"""``swycc photoset``: a training folder of real photos from desktop-background packages."""

from __future__ import annotations


def register(sub) -> None:
    from swycc.data import photoset

    p = sub.add_parser("photoset", help="build a training folder of real photos (train/, "
                       "test/, sources and licences) from desktop-background packages")
    photoset.add_arguments(p)
    p.set_defaults(func=photoset.run)
