"""Regenerate the bundled models' cards with the one card builder (svqcast.zoo.card).

    .venv/bin/python scripts/refresh_cards.py [--check]

The metadata of each bundled card (library, pipeline tag, tags, dataset, base model and the
model-index of its registry metrics) and its ensemble section (for a model whose config.json
carries a fitted ensemble) are rebuilt by `card_data` and `ensemble_section`; the prose written
when the model was bundled (description, scores, reproduce, limitations) is kept. `--check`
changes nothing and exits 1 when a card differs from what the builder makes (the tests run it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from huggingface_hub import ModelCard

from svqcast.zoo.card import card_data, ensemble_section
from svqcast.zoo.registry import load_registry

PACKAGE = Path(__file__).resolve().parents[1] / "svqcast"
LICENCE = "apache-2.0"


def rebuilt(name: str, directory: Path, metrics: dict) -> str:
    """The card of bundled model `name` as the builder makes it today."""
    meta = json.loads((directory / "config.json").read_text())
    card = ModelCard((directory / "README.md").read_text())
    body = card.text
    section = re.compile(r"## Ensemble\n.*?(?=\n## |\Z)", re.S)
    body = section.sub("", body).rstrip() + "\n"
    if meta.get("ensemble"):
        use = body.find("\n## Use")
        at = use if use >= 0 else len(body)
        body = body[:at].rstrip() + "\n\n" + ensemble_section(meta["ensemble"]) + body[at:]
    data = card_data(meta, name, LICENCE, metrics)
    return f"---\n{data.to_yaml()}\n---\n{body if body.startswith(chr(10)) else chr(10) + body}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    stale = []
    for name, entry in load_registry().items():
        if not entry.bundled:
            continue
        directory = PACKAGE / entry.bundled
        scores = {k: v for k, v in entry.metrics.items() if not k.endswith("_samples")}  # counts are no metric
        text = rebuilt(name, directory, scores)
        if (directory / "README.md").read_text() != text:
            stale.append(name)
            if not a.check:
                (directory / "README.md").write_text(text)
    if a.check and stale:
        print(f"cards not as the builder makes them: {', '.join(stale)}; run scripts/refresh_cards.py")
        return 1
    print(("checked " if a.check else "refreshed ") + ", ".join(n for n, e in load_registry().items() if e.bundled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
