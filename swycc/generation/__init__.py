"""The second stage: a class-conditional latent DiT (the paper's Sec. 4) on an autoencoder's
latents.

- :mod:`swycc.generation.config`: ``DiTConfig``, ``DiTRunConfig`` and the DiT presets;
- :mod:`swycc.generation.dit`: the network (SwiGLU, 2D RoPE, adaLN-Zero);
- :mod:`swycc.generation.latents`: latents pre-extracted to safetensors shards (``encode-dataset``);
- :mod:`swycc.generation.objective`: the v-loss on latents and DDIM sampling with guidance;
- :mod:`swycc.generation.task`: training (``train-dit``) on the shared loop;
- :mod:`swycc.generation.generator`: class labels -> latents -> images (``generate``);
- :mod:`swycc.generation.evaluate`: gFID-style scores of generated images (``eval-generation``).
"""
