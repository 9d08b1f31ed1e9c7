"""``swycc web``: serve the page of ``swycc.web.app`` over a model (default: the shipped one).

    swycc web                                   # http://127.0.0.1:7860, the shipped model, CPU
    swycc web --checkpoint runs/x/export --port 8080 --host 0.0.0.0
"""

from __future__ import annotations

import argparse


def port_number(text: str) -> int:
    from swycc.cli.args import positive_int

    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is at most 65535, got {value}")
    return value


def register(sub) -> None:
    from swycc.cli.args import (device_arg, guidance_float, positive_int, samples_int,
                                sampling_steps_int, tile_int)

    p = sub.add_parser("web", help="a browser page: upload a photo, see D_Initial, samples and "
                       "their variance, download latents and reconstructions (Gradio)")
    p.add_argument("--checkpoint", help="exported model dir or .safetensors "
                   "(default: the small pretrained model shipped with swycc)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=7860, help="TCP port (default 7860)")
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--steps", type=sampling_steps_int, default=20, help="starting DDIM steps")
    p.add_argument("--guidance", type=guidance_float,
                   help="starting guidance w (default: the model's config)")
    p.add_argument("--samples", type=samples_int, default=4, help="starting samples")
    p.add_argument("--max-pixels", type=positive_int, default=1024 * 1024,
                   help="refuse larger photos (default 1024^2; the page tiles above 512^2)")
    p.add_argument("--tile", action=argparse.BooleanOptionalAction, default=None,
                   help="tiles for large photos (default: on above 4 tiles of pixels)")
    p.add_argument("--tile-size", type=tile_int, default=256, help="pixels (default 256)")
    p.add_argument("--tile-overlap", type=tile_int, default=64, help="pixels (default 64)")
    p.set_defaults(func=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    from swycc.cli.args import load_model
    from swycc.autoencoders.pretrained import default_checkpoint, display_path
    from swycc.web.app import MAX_SAMPLES, MAX_STEPS, PageSettings
    from swycc.web.reconstruction import Tiling

    if args.steps > MAX_STEPS or args.samples > MAX_SAMPLES:
        raise ValueError(f"--steps at most {MAX_STEPS}, --samples at most {MAX_SAMPLES}")
    model = load_model(args)  # a bad --checkpoint fails here, before the server starts
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("swycc web needs the gradio package: pip install 'swycc[web]'") from None
    guidance = model.config.sampling.guidance if args.guidance is None else args.guidance
    settings = PageSettings(steps=args.steps, guidance=guidance, samples=args.samples,
                            max_pixels=args.max_pixels,
                            tiling=Tiling(args.tile, args.tile_size, args.tile_overlap))
    return serve(model, settings, display_path(args.checkpoint or default_checkpoint()),
                 args.host, args.port)


def serve(model, settings, label: str, host: str, port: int) -> int:
    """Build the page and serve it until Ctrl-C; its download folder is removed afterwards."""
    from swycc.web.app import PAGE_CSS, build_app

    page = build_app(model, settings, label)
    try:
        print(f"swycc web: serving {label} at http://{host}:{port} (Ctrl-C stops)", flush=True)
        page.queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, share=False, inbrowser=False, quiet=True,
            show_error=True, css=PAGE_CSS)
    finally:
        page.swycc_folders.cleanup()
    return 0
