"""Adapters that let other libraries use swycc models (``swycc.integrations.diffusers``)."""
