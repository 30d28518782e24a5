"""Seeded generator of realistic product catalogs, and a mutator that makes v2 from v1.

    python bench/catalog_gen.py --n 100000 --out data/catalog     # writes v1.jsonl, v2.jsonl, changes.json

The mutator records exactly what it changed, so benchmarks and tests can check the diff against it:
1% metadata-only (price, stock, availability), 1% text (title or description), 0.5% added, 0.5% deleted.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

CATEGORIES: dict[str, dict[str, list[str]]] = {
    "Electronics > Audio > Headphones": {
        "nouns": ["wireless headphones", "noise-cancelling headphones", "earbuds", "sports earphones"],
        "features": [
            "active noise cancellation",
            "30-hour battery life",
            "Bluetooth 5.3",
            "sweat resistance",
            "a built-in microphone for calls",
            "fast USB-C charging",
            "foldable design",
            "low-latency mode",
        ],
        "uses": ["commuting", "running", "long flights", "working from home", "gaming"],
    },
    "Home > Kitchen > Coffee Makers": {
        "nouns": [
            "espresso machine",
            "drip coffee maker",
            "French press",
            "pour-over kettle",
            "coffee grinder",
        ],
        "features": [
            "a 15-bar pump",
            "a programmable timer",
            "a thermal carafe",
            "a steam wand for milk",
            "conical burrs",
            "a gooseneck spout",
            "a keep-warm plate",
            "a removable water tank",
        ],
        "uses": ["morning espresso", "brewing for a crowd", "slow weekend coffee", "small kitchens"],
    },
    "Sports > Running > Shoes": {
        "nouns": ["running shoes", "trail running shoes", "racing flats", "stability trainers"],
        "features": [
            "a breathable mesh upper",
            "responsive foam cushioning",
            "a grippy rubber outsole",
            "a carbon plate",
            "reflective details",
            "a wide toe box",
            "a waterproof membrane",
        ],
        "uses": ["marathon training", "muddy trails", "daily jogging", "race day", "treadmill sessions"],
    },
    "Home > Furniture > Office Chairs": {
        "nouns": ["ergonomic office chair", "mesh desk chair", "gaming chair", "kneeling chair"],
        "features": [
            "adjustable lumbar support",
            "4D armrests",
            "a breathable mesh back",
            "a tilt lock",
            "a headrest",
            "smooth-rolling casters",
            "a memory foam seat",
        ],
        "uses": ["long workdays", "home offices", "gaming marathons", "better posture"],
    },
    "Outdoors > Camping > Tents": {
        "nouns": ["backpacking tent", "family camping tent", "ultralight shelter", "pop-up tent"],
        "features": [
            "a waterproof rainfly",
            "aluminium poles",
            "two vestibules",
            "taped seams",
            "a footprint included",
            "quick setup",
            "mesh panels for airflow",
        ],
        "uses": ["summer festivals", "alpine trips", "family weekends", "thru-hiking"],
    },
    "Beauty > Skincare > Moisturizers": {
        "nouns": ["daily moisturizer", "night cream", "hydrating gel", "SPF day cream"],
        "features": [
            "hyaluronic acid",
            "ceramides",
            "SPF 30 protection",
            "a fragrance-free formula",
            "niacinamide",
            "a lightweight texture",
            "vitamin C",
        ],
        "uses": ["dry skin", "sensitive skin", "oily skin", "daily sun protection"],
    },
    "Toys > Building > Construction Sets": {
        "nouns": ["building block set", "magnetic tiles", "robot construction kit", "marble run"],
        "features": [
            "over 500 pieces",
            "step-by-step instructions",
            "a storage box",
            "motorised parts",
            "compatibility with major brands",
            "non-toxic plastic",
        ],
        "uses": ["creative play", "STEM learning", "family afternoons", "gifts for kids"],
    },
    "Home > Appliances > Vacuum Cleaners": {
        "nouns": ["cordless stick vacuum", "robot vacuum", "canister vacuum", "handheld vacuum"],
        "features": [
            "HEPA filtration",
            "60 minutes of runtime",
            "a self-emptying base",
            "laser navigation",
            "a pet-hair tool",
            "a washable filter",
            "strong suction on carpets",
        ],
        "uses": ["homes with pets", "hardwood floors", "quick cleanups", "large apartments"],
    },
}
BRANDS = [
    "Nordlys",
    "Acorn & Co",
    "Vantage",
    "Kestrel",
    "Lumio",
    "Brightfield",
    "Oakridge",
    "Sora",
    "Helix",
    "Pinecrest",
    "Maris",
    "Tundra",
    "Alto",
    "Cobalt",
    "Fernway",
]
COLORS = ["black", "white", "graphite", "navy", "sage green", "sand", "red", "silver"]
MATERIALS = ["recycled plastic", "aluminium", "stainless steel", "organic cotton", "bamboo", "nylon"]
ADJECTIVES = ["compact", "premium", "durable", "lightweight", "award-winning", "everyday", "professional"]
AVAILABILITY = ["in_stock", "in_stock", "in_stock", "out_of_stock", "preorder", "backorder"]
FILLER = [
    "It is built to last and backed by a two-year warranty.",
    "Customers praise its comfort and value for money.",
    "Every unit is tested before it leaves the factory.",
    "The packaging is plastic-free and fully recyclable.",
    "Designed in Scandinavia and made with care.",
    "Setup takes only a few minutes with the included guide.",
    "It pairs well with the rest of the range.",
    "Replacement parts are available for years to come.",
]


def _description(
    rng: random.Random, noun: str, spec: dict[str, list[str]], brand: str, color: str, material: str
) -> str:
    features = rng.sample(spec["features"], k=min(3, len(spec["features"])))
    use = rng.choice(spec["uses"])
    sentences = [
        f"This {rng.choice(ADJECTIVES)} {noun} from {brand} is made for {use}.",
        f"It comes with {features[0]}, {features[1]} and {features[2]}.",
        f"The {color} finish in {material} looks good anywhere.",
    ]
    words = sum(len(s.split()) for s in sentences)
    target = rng.randint(40, 120)
    filler = rng.sample(FILLER, k=len(FILLER))
    while words < target:
        sentence = filler[len(sentences) % len(filler)]
        sentences.append(sentence)
        words += len(sentence.split())
    return " ".join(sentences)


def make_product(rng: random.Random, number: int) -> dict[str, Any]:
    category = rng.choice(list(CATEGORIES))
    spec = CATEGORIES[category]
    noun = rng.choice(spec["nouns"])
    brand = rng.choice(BRANDS)
    model = f"{rng.choice('ABCDEFGHJKLMNPRSTVXZ')}{rng.randint(100, 999)}"
    availability = rng.choice(AVAILABILITY)
    color, material = rng.choice(COLORS), rng.choice(MATERIALS)
    return {
        "sku": f"SKU-{number:07d}",
        "title": f"{brand} {model} {noun.title()}",
        "brand": brand,
        "category": category,
        "description": _description(rng, noun, spec, brand, color, material),
        "price": round(rng.uniform(9, 899), 2),
        "currency": "EUR",
        "availability": availability,
        "stock": 0 if availability == "out_of_stock" else rng.randint(1, 500),
        "attributes": {"color": color, "material": material},
        "tags": sorted(rng.sample(["new", "bestseller", "eco", "sale", "gift", "limited", "bundle"], k=2)),
        "image_url": f"https://cdn.example.com/img/{number:07d}.jpg",
    }


def generate(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for number in range(1, n + 1):
        yield make_product(rng, number)


def mutate(products: list[dict[str, Any]], seed: int = 11) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """v2 from v1, with the change set it applied: 1% metadata-only, 1% text, 0.5% added, 0.5% deleted."""
    rng = random.Random(seed)
    n = len(products)
    picks = rng.sample(range(n), k=int(n * 0.025))
    meta_ids = picks[: int(n * 0.01)]
    text_ids = picks[int(n * 0.01) : int(n * 0.02)]
    delete_ids = set(picks[int(n * 0.02) :])
    changes: dict[str, list[str]] = {"metadata_only": [], "text_changed": [], "added": [], "deleted": []}
    out = [dict(p) for p in products]
    for i in meta_ids:
        product = out[i]
        choice = rng.random()
        if choice < 0.5:
            product["price"] = round(product["price"] * rng.choice([0.8, 0.9, 1.1, 1.25]) + 0.01, 2)
        elif choice < 0.8:
            product["stock"] = product["stock"] + rng.randint(1, 50)
        else:
            product["availability"] = "out_of_stock" if product["availability"] != "out_of_stock" else "in_stock"
        changes["metadata_only"].append(product["sku"])
    for i in text_ids:
        product = out[i]
        if rng.random() < 0.5:
            product["description"] = product["description"] + " Now with an improved design."
        else:
            product["title"] = product["title"] + " (2027 edition)"
        changes["text_changed"].append(product["sku"])
    changes["deleted"] = [out[i]["sku"] for i in sorted(delete_ids)]
    out = [p for i, p in enumerate(out) if i not in delete_ids]
    next_number = n + 1
    for number in range(next_number, next_number + int(n * 0.005)):
        product = make_product(rng, number)
        out.append(product)
        changes["added"].append(product["sku"])
    return out, changes


def write_jsonl(path: Path, products: list[dict[str, Any]]) -> None:
    with path.open("wb") as out:
        for product in products:
            out.write(orjson.dumps(product) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    v1 = list(generate(args.n, args.seed))
    v2, changes = mutate(v1, args.seed + 1)
    write_jsonl(args.out / "v1.jsonl", v1)
    write_jsonl(args.out / "v2.jsonl", v2)
    (args.out / "changes.json").write_bytes(orjson.dumps(changes, option=orjson.OPT_INDENT_2))
    print(f"wrote {len(v1):,} + {len(v2):,} products to {args.out}")


if __name__ == "__main__":
    main()
