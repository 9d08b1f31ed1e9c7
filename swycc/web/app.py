"""The page of ``swycc web``: a Gradio ``Blocks`` over one loaded autoencoder.

Upload a photo (or pick a held-back test photo), set DDIM steps, guidance w, the number of
samples and the seed, and see original | deterministic reconstruction | samples | per-pixel
variance over the samples; download the latents (safetensors, readable by ``swycc decode``)
and every reconstruction (PNG). The work is in ``swycc.web.reconstruction``; here is layout and
glue only. Element ids (``elem_id``) name what a browser test drives.
"""

from __future__ import annotations

from dataclasses import dataclass

from swycc.autoencoders.base import Autoencoder
from swycc.io.visual import to_uint8
from swycc.web.reconstruction import (RunFolders, Tiling, WebInputError, check_settings,
                                      held_back_photo, held_back_photo_names, image_tensor,
                                      reconstruct, variance_image, write_downloads)

MAX_STEPS = 200
MAX_SAMPLES = 8
MAX_GUIDANCE = 4.0
PANEL_HEIGHT = 300  # CSS pixels of every image panel
# small photos fill their panel, pixels kept sharp (``launch(css=PAGE_CSS)``)
PAGE_CSS = """
#input-image img, #original img, #initial img, #variance img, #samples-gallery img {
  width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
"""


@dataclass(frozen=True)
class PageSettings:
    """The sliders' starting values and the limits of one page."""

    steps: int = 20
    guidance: float = 0.5
    samples: int = 4
    seed: int = 0
    max_pixels: int = 1024 * 1024
    tiling: Tiling = Tiling()


def run_page(model: Autoencoder, folders: RunFolders, settings: PageSettings, image, name: str,
             steps, guidance, samples, seed) -> tuple:
    """One click of *Reconstruct*: the page's outputs (original, initial, sample gallery,
    variance map, its caption, download paths). Bad input raises WebInputError."""
    steps, guidance, samples, seed = check_settings(steps, guidance, samples, seed)
    if steps > MAX_STEPS or samples > MAX_SAMPLES:
        raise WebInputError(f"at most {MAX_STEPS} steps and {MAX_SAMPLES} samples here")
    x = image_tensor(image, settings.max_pixels)
    rec = reconstruct(model, x, steps, guidance, samples, seed, settings.tiling)
    gallery = [(to_uint8(s), f"sample {k + 1}" if rec.samples_drawn else "reconstruction")
               for k, s in enumerate(rec.samples)]
    variance, caption = None, "one deterministic reconstruction: nothing varies"
    if rec.samples_drawn:
        variance, top = variance_image(rec.samples)
        caption = (f"per-pixel variance over {samples} samples (mean over channels), magma "
                   f"from 0 (black) to {top:.4g} (pale yellow); pixel values in [-1, 1]")
    files = write_downloads(rec, model, folders.new(), name or "photo")
    initial = None if rec.initial is None else to_uint8(rec.initial)
    return to_uint8(rec.original), initial, gallery, variance, caption, [str(f) for f in files]


def build_app(model: Autoencoder, settings: PageSettings = PageSettings(),
              model_label: str = "", folders: RunFolders | None = None):
    """The page (``gr.Blocks``; ``.launch()`` serves it). ``folders`` holds the downloads
    (default: a new temporary directory)."""
    import gradio as gr

    from swycc.autoencoders.kinds import kind_of

    kind = kind_of(model)
    folders = folders or RunFolders()
    sampling = model.samples

    def on_run(image, name, steps, guidance, samples, seed,
               progress=gr.Progress(track_tqdm=True)):
        try:
            return run_page(model, folders, settings, image, name, steps, guidance, samples,
                            seed)
        except WebInputError as e:
            raise gr.Error(str(e)) from None

    def on_pick(name):
        if not name:
            return gr.update(), ""
        try:
            return held_back_photo(name), name
        except WebInputError as e:
            raise gr.Error(str(e)) from None

    # no analytics (nothing leaves the machine); results in Gradio's cache live an hour
    with gr.Blocks(title="swycc web", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as page:
        gr.Markdown(f"## swycc: sample what you can't compress\n"
                    f"Model: `{model_label}` ({kind.name}: {kind.summary}). The encoder "
                    f"compresses the photo into a small latent; "
                    + ("the decoder samples the detail the latent could not hold."
                       if sampling else "its decoder reconstructs it deterministically."))
        name = gr.State("photo")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(label="photo", type="numpy", image_mode="RGB",
                                 sources=["upload", "clipboard"], height=PANEL_HEIGHT,
                                 format="png", elem_id="input-image")  # png: lossless
                pick = gr.Dropdown(choices=held_back_photo_names(), value=None,
                                   label="or pick a test photo (a held-back crop of the "
                                         "embedded photo set, never seen in training)",
                                   elem_id="test-photo")
            with gr.Column(scale=1):
                steps = gr.Slider(1, MAX_STEPS, value=settings.steps, step=1,
                                  label="DDIM steps", visible=sampling, elem_id="steps")
                guidance = gr.Slider(0.0, MAX_GUIDANCE, value=settings.guidance, step=0.05,
                                     label="guidance w", visible=sampling, elem_id="guidance")
                samples = gr.Slider(1, MAX_SAMPLES, value=settings.samples, step=1,
                                    label="samples", visible=sampling, elem_id="samples")
                seed = gr.Number(value=settings.seed, precision=0, label="seed",
                                 visible=sampling, elem_id="seed")
                run = gr.Button("Reconstruct", variant="primary", elem_id="run")
        with gr.Row():
            original = gr.Image(label="original", format="png", interactive=False,
                                height=PANEL_HEIGHT, elem_id="original")
            initial = gr.Image(label=kind.initial_label or "deterministic reconstruction",
                               format="png", interactive=False, height=PANEL_HEIGHT,
                               visible=kind.initial_label is not None, elem_id="initial")
            gallery = gr.Gallery(label="samples" if sampling else "reconstruction",
                                 format="png", columns=2, height=PANEL_HEIGHT,
                                 object_fit="contain", elem_id="samples-gallery")
            variance = gr.Image(label="per-pixel variance over the samples", format="png",
                                interactive=False, height=PANEL_HEIGHT, visible=sampling,
                                elem_id="variance")
        caption = gr.Markdown(elem_id="variance-caption")
        downloads = gr.File(label="downloads: latents (safetensors) and reconstructions (PNG)",
                            file_count="multiple", interactive=False, elem_id="downloads")

        pick.change(on_pick, inputs=pick, outputs=[image, name])
        image.upload(lambda: "photo", outputs=name)
        run.click(on_run, inputs=[image, name, steps, guidance, samples, seed],
                  outputs=[original, initial, gallery, variance, caption, downloads])
    page.swycc_folders = folders  # removed by the CLI when the server stops
    return page
