"""``sslseg preview-views DATA_DIR --out DIR``: what the SSL method asks the network to do, as volumes and a PNG."""

from __future__ import annotations

from pathlib import Path

from sslseg.errors import SSLSegError

#: What a preview writes for volume NAME: NAME_<kind>.
PREVIEW_FILES = ("original.nii.gz", "view1.nii.gz", "view2.nii.gz", "views.png")


def register(subparsers) -> None:
    from sslseg.models.presets import PRESETS

    parser = subparsers.add_parser(
        "preview-views",
        help="write one preprocessed patch and its two augmented views (NIfTI + PNG)",
        description="Preprocess one volume of DATA_DIR as `sslseg pretrain` does, take the patch at its centre and "
        "make the SSL method's two views of it. Writes NAME_original/_view1/_view2.nii.gz (with the patch's "
        "position, so they overlay the source in Slicer) and NAME_views.png.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="folder of volumes (the first one is used)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write into")
    parser.add_argument("--volume", metavar="NAME", help="case name to use instead of the first volume")
    from sslseg.ssl.table import DEFAULT_METHOD, METHODS

    parser.add_argument("--method", default=DEFAULT_METHOD, choices=[n for k, e in METHODS.items() for n in (k, *e.aliases)],
                        metavar="METHOD", help=f"SSL method, one of {', '.join(METHODS)} (default {DEFAULT_METHOD})")
    from sslseg.cli.pretrain_command import key_value

    parser.add_argument("--method-option", dest="method_options", action="append", type=key_value, default=[],
                        metavar="KEY=VALUE", help="an option of the method (repeatable), as for `sslseg pretrain`, "
                        "e.g. flip_axes=0 to see what flips would do")
    parser.add_argument("--preset", default="vit-b", choices=sorted(PRESETS),
                        help="preset whose patch size is used (default vit-b: 96)")
    parser.add_argument("--patch-size", type=int, metavar="S", help="patch edge in voxels (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the views (default 0)")
    parser.add_argument("--spacing", type=float, default=2.0, metavar="MM", help="voxel size (default 2 mm)")
    parser.add_argument("--ct-window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"),
                        help="CT HU mapped to 0..1 (default -1000 1000)")
    parser.add_argument("--modality", default="auto", choices=("auto", "ct", "mr"), help="default auto")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier preview")
    parser.set_defaults(run=run)


def run(args) -> int:
    from sslseg.data.preprocess import PreprocessSettings
    from sslseg.models.presets import get_preset
    from sslseg.pretrain.preview import preview_views
    from sslseg.ssl import create_method

    if not args.overwrite:
        _refuse_existing(args)
    size = get_preset(args.preset).with_img_size(args.patch_size).img_size
    settings = PreprocessSettings(spacing_mm=args.spacing, ct_window=tuple(args.ct_window), modality=args.modality)
    for path in preview_views(args.data_dir, args.out, create_method(args.method, **dict(args.method_options)), size, settings, args.seed,
                              args.volume):
        print(path)
    return 0


def _refuse_existing(args) -> None:
    """An earlier preview of the same volume in --out is kept unless --overwrite."""
    from sslseg.io.scan import find_volumes

    name = args.volume or find_volumes(args.data_dir)[0].name
    existing = [p for p in (args.out / f"{name}_{kind}" for kind in PREVIEW_FILES) if p.exists()]
    if existing:
        raise SSLSegError(f"{existing[0]} already exists", "choose another --out folder, or pass --overwrite")
