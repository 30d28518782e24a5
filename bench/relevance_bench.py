"""A small relevance check of the local embedders on a generated catalog.

    python bench/relevance_bench.py [--n 2000]

Embeds n generated products with each local embedder and runs two kinds of queries written in words the
catalog does not use: 16 category queries (precision@10 = share of the top 10 in the intended category) and
8 feature queries (share of the top 10 whose text has the intended feature). Prints precision and speed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from _common import bench_config
from catalog_gen import generate
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.embedders.minilm import MiniLMEmbedder
from catalog_sync.adapters.embedders.static_minilm import StaticMiniLMEmbedder
from catalog_sync.logic.validation import RecordValidator

CATEGORY_QUERIES = {
    "Electronics > Audio > Headphones": ["something to block out engine noise on a plane", "earphones for jogging"],
    "Home > Kitchen > Coffee Makers": ["machine for making lattes at home", "keep my coffee hot for hours"],
    "Sports > Running > Shoes": ["footwear for a marathon", "sneakers with good grip on muddy paths"],
    "Home > Furniture > Office Chairs": ["seat that supports my lower back at work", "comfortable desk seating"],
    "Outdoors > Camping > Tents": ["shelter for sleeping outdoors in the mountains", "gear for a festival campsite"],
    "Beauty > Skincare > Moisturizers": ["cream for very dry skin in winter", "face lotion with sun protection"],
    "Toys > Building > Construction Sets": ["educational building toy for a child", "creative kit to build robots"],
    "Home > Appliances > Vacuum Cleaners": ["cleaning dog hair off the carpet", "automatic floor cleaner"],
}
FEATURE_QUERIES = {
    "coffee machine that can froth milk": "a steam wand for milk",
    "vacuum that empties itself": "a self-emptying base",
    "tent you can pitch in seconds": "quick setup",
    "office chair where the arms move in every direction": "4D armrests",
    "moisturizer without perfume": "a fragrance-free formula",
    "headphones that last a whole day and more on one charge": "30-hour battery life",
    "construction toy with motors": "motorised parts",
    "running shoes that keep feet dry in rain": "a waterproof membrane",
}


def evaluate(name: str, embed: Callable[[list[str]], np.ndarray], texts: list[str], categories: np.ndarray) -> None:
    started = time.perf_counter()
    products = embed(texts)
    rate = len(texts) / (time.perf_counter() - started)
    category_precision = []
    for category, queries in CATEGORY_QUERIES.items():
        for vector in embed(queries):
            top = np.argsort(-(products @ vector))[:10]
            category_precision.append(float(np.mean(categories[top] == category)))
    feature_precision = []
    for query, phrase in FEATURE_QUERIES.items():
        top = np.argsort(-(products @ embed([query])[0]))[:10]
        feature_precision.append(float(np.mean([phrase in texts[i] for i in top])))
    print(
        f"{name:<15}{np.mean(category_precision):>10.3f}{np.mean(feature_precision):>10.3f}{rate:>14,.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    products = list(generate(args.n, seed=3))
    validator = RecordValidator(bench_config())
    texts = [validator.validate(p["sku"], p).text for p in products]
    categories = np.array([p["category"] for p in products])
    print(f"{args.n:,} products; precision@10 by query kind, and embedding speed")
    print(f"{'embedder':<15}{'category':>10}{'feature':>10}{'texts/s':>14}")
    evaluate("hashing (test)", HashingEmbedder().embed, texts, categories)
    evaluate("minilm-static", StaticMiniLMEmbedder().embed, texts, categories)
    evaluate("minilm", MiniLMEmbedder().embed, texts, categories)


if __name__ == "__main__":
    main()
