"""Convert Meta's EdgeTAM checkpoint into a save_pretrained folder; the same as `edgetam-hf convert`.

    python conversion/convert_edgetam_to_hf.py edgetam.pt edgetam-hf/ --verify
    python conversion/convert_edgetam_to_hf.py edgetam.pt edgetam-hf/ --push-to-hub you/EdgeTAM --private

`--help` lists every option; the logic lives in `edgetam_hf.conversion`.
"""

import sys

from edgetam_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
