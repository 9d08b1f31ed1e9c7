"""``swycc web``: a browser page over any exported autoencoder (Gradio).

``swycc.web.reconstruction`` holds the work, as plain functions (tested without a browser);
``swycc.web.app`` lays out the page; ``swycc.cli.web`` is the verb.
"""
