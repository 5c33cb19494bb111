"""Turn the Myntra catalogue (products.csv + images.zip) into canonical JSONL with weak labels.

The catalogue has no spans, but its fields say what the title should contain; each weak-label
span marks where that value is written in the title. Labelling rules (words are whole
whitespace tokens; matching is case-insensitive and a hyphen is part of a word, so "shirt" never
matches inside "T-shirt"):

- gender: every title token that is a gender word (Men, Women, Woman, Boys, Boy, Girls, Girl,
  Unisex, Kids, Infant(s), Baby; a possessive "'s"/"'" is left outside the span: "Men's" ->
  "Men"). "Baby" counts only as the first gender word ("Baby Tomato Red T-shirt"), and "Men"
  after "Mr." is the "Mr. Men" brand.
- brand: the title prefix before the first gender word. Prefixes are counted over the whole
  catalogue; the shortest leading part seen on its own before a gender word at least
  BRAND_MIN_COUNT times is the brand ("Casio Enticer" -> "Casio", "Jockey Zone" -> "Jockey"),
  except for real two-word brands (COMPOUND_BRANDS: "Lee Cooper"). A prefix with no such part
  is marked whole when it has 1-4 words and is not only colour words. Titles without a gender
  word get a brand only when they start with a frequent brand ("Red Rose", "Carlton London").
- colour, article_type and pattern are looked for only after the whole pre-gender prefix, so
  a brand or product line ("Red Tape", "Turtle Check Men") gives no colour or pattern.
- colour: the catalogue baseColour (or a spelling of it: Grey/Gray, Off-White, Navy for Navy
  Blue, Multicoloured for Multi, Golden for Gold, ...) located in the title; "Silver-Toned" and
  "Cream-Coloured" count, "Sterling Silver" and "Stainless Steel" (materials) do not, nor
  "Skin" in cosmetics ("New Skin Compact"). The span grows to the whole colour phrase it sits
  in ("Navy Blue", "Royal Blue", "Light Pink"). Every occurrence is marked; other colours in
  the title are not (the photo decides those). `n_colour_words` counts the distinct colour
  phrases of the title ("Purple Purple Handbags" is 1) so a benchmark can slice titles with
  two or more colour words.
- article_type: the catalogue articleType located in the title through an ordered list of
  spellings, most specific first (Kurtas/Kurta, Tshirts/T-shirt/Tee/Jersey, Watches/Watch,
  Flip Flops/Flip-Flops, "X and Y" types by either part, "Formal Shoes"/"Formal Shoe"/"Shoes"
  for shoes, "Handbag"/"Tote Bag"/"Bag" for bags); the first spelling found is marked at every
  occurrence. A different article named in the title ("Sandals" for catalogue "Heels") is not.
- pattern: a small lexicon (Printed, Print, Striped, Stripes, Checked, Check, Solid, Floral,
  Embroidered, Polka Dots, Self Design, Colourblocked); precision checked by hand in
  docs/weak-label-audit.md.

The split is fixed by a seeded hash of the product id (80/10/10), so a product keeps its split
across runs and catalogue versions, and the small bundle is drawn from the same split.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dram.data.listings import Listing, write_jsonl
from dram.data.spans import Span
from training.options import add_options, settings_from

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
BRAND_MIN_COUNT = 5
COMPOUND_BRANDS = {"lee cooper", "hugo boss"}
GENDER_WORDS = {"men", "mens", "women", "womens", "woman", "boys", "boy", "girls", "girl",
                "unisex", "kids", "kid", "infant", "infants", "baby"}
COLOUR_MODIFIERS = {"light", "dark", "deep", "pale", "bright"}
MATERIAL_BEFORE = {"sterling", "stainless"}  # "Sterling Silver", "Stainless Steel" name a material
# Colour phrases for n_colour_words and for growing a span to its whole phrase; catalogue
# baseColours are added at run time, the basic colours are here so a small catalogue has them too.
EXTRA_COLOURS = ["Black", "White", "Grey", "Blue", "Red", "Green", "Yellow", "Orange", "Pink",
                 "Purple", "Brown", "Beige", "Maroon", "Navy", "Gray", "Off-White", "Ivory", "Fuchsia", "Fuschia", "Aqua", "Coral",
                 "Violet", "Wine", "Golden", "Sky Blue", "Royal Blue", "Rose Gold", "Multicoloured",
                 "Multi-coloured", "Multicolour", "Multi-colour", "Multicolor"]
COLOUR_SPELLINGS = {
    "Grey": ["Grey", "Gray"],
    "Off White": ["Off White", "Off-White"],
    "Navy Blue": ["Navy Blue", "Navy"],
    "Grey Melange": ["Grey Melange", "Grey"],
    "Turquoise Blue": ["Turquoise Blue", "Turquoise"],
    "Multi": ["Multicoloured", "Multi-coloured", "Multi Coloured", "Multicolour", "Multi-colour",
              "Multi Colour", "Multicolor", "Multi"],
    "Gold": ["Gold", "Golden"],
    "Coffee Brown": ["Coffee Brown", "Brown"],
    "Mushroom Brown": ["Mushroom Brown", "Brown"],
}
# Article types whose title spelling differs from the catalogue name, most specific first.
ARTICLE_SPELLINGS = {
    "Tshirts": ["T-shirts", "T-shirt", "Tshirts", "Tshirt", "T shirt", "Tees", "Tee", "Jerseys", "Jersey"],
    "Lounge Tshirts": ["Lounge T-shirts", "Lounge T-shirt", "Lounge Tshirts"],
    "Casual Shoes": ["Casual Shoes", "Casual Shoe", "Sneakers", "Loafers", "Moccasins", "Shoes", "Shoe"],
    "Sports Shoes": ["Sports Shoes", "Sports Shoe", "Running Shoes", "Running Shoe", "Shoes", "Shoe"],
    "Formal Shoes": ["Formal Shoes", "Formal Shoe", "Shoes", "Shoe"],
    "Handbags": ["Handbags", "Handbag", "Tote Bag", "Sling Bag", "Shoulder Bag", "Hobo Bag", "Bags", "Bag"],
    "Flip Flops": ["Flip Flops", "Flip-Flops", "Flip Flop", "Flip-Flop", "Flipflops"],
    "Sarees": ["Sarees", "Saree", "Saris", "Sari"],
    "Perfume and Body Mist": ["Perfume", "Body Mist", "Eau de Parfum", "Eau de Toilette"],
    "Deodorant": ["Deodorants", "Deodorant", "Deo"],
    "Lipstick": ["Lipsticks", "Lipstick", "Lip Colour", "Lip Color"],
    "Nightdress": ["Nightdresses", "Nightdress", "Night Dress"],
    "Innerwear Vests": ["Innerwear Vests", "Innerwear Vest", "Vests", "Vest"],
    "Trunk": ["Trunks", "Trunk"],
    "Kajal and Eyeliner": ["Kajal", "Eyeliner", "Eye Liner"],
    "Backpacks": ["Backpacks", "Backpack", "Rucksack"],
    "Scarves": ["Scarves", "Scarf"],
    "Nail Polish": ["Nail Polish", "Nail Lacquer", "Nail Enamel", "Nail Paint", "Nail Color", "Nail Colour"],
    "Night suits": ["Night Suits", "Night Suit", "Nightsuit"],
    "Sandals": ["Sandals", "Sandal", "Floaters", "Clogs"],
    "Sports Sandals": ["Sports Sandals", "Sports Sandal", "Floaters", "Sandals", "Sandal"],
}
PATTERN_WORDS = ["Printed", "Print", "Striped", "Stripes", "Checked", "Checks", "Check", "Solid",
                 "Floral", "Embroidered", "Polka Dots", "Polka Dot", "Self Design", "Colourblocked"]


@dataclass
class Product:
    id: str
    title: str
    article_type: str
    base_colour: str
    catalogue: dict[str, str]
    image: str


@dataclass
class Labels:
    spans: list[Span]
    n_colour_words: int


@dataclass
class Summary:
    per_attribute: Counter = field(default_factory=Counter)
    not_found: Counter = field(default_factory=Counter)
    no_label: int = 0
    missing_photos: int = 0
    per_split: Counter = field(default_factory=Counter)


def phrase_pattern(phrase: str, colour: bool = False) -> re.Pattern[str]:
    """Whole-word, case-insensitive pattern where a hyphen counts as part of a word.

    A colour may be followed by "-Toned"/"-Coloured" ("Silver-Toned"): the colour is still
    the value, the suffix stays outside the span.
    """
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    tail = r"(?!\w|-(?!(?:toned|tone|coloured|colored)(?!\w)))" if colour else r"(?![\w-])"
    return re.compile(rf"(?<![\w-]){words}{tail}", re.IGNORECASE)


def split_of(product_id: str, seed: int) -> str:
    """80/10/10 split from a seeded hash of the id: stable across runs and catalogue versions."""
    bucket = int(hashlib.sha256(f"{seed}:{product_id}".encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


def _order_key(product_id: str, seed: int) -> str:
    return hashlib.sha256(f"order:{seed}:{product_id}".encode()).hexdigest()


def _tokens(title: str) -> list[re.Match[str]]:
    return list(re.finditer(r"\S+", title))


def _gender_core(tokens: list[re.Match[str]], i: int) -> str | None:
    """The gender word inside token i ("Men's" -> "Men"), or None; "Mr. Men" is a brand."""
    core = re.sub(r"['’]s?$", "", tokens[i].group())
    if i > 0 and tokens[i - 1].group().lower() in ("mr.", "mr"):
        return None
    return core if core.lower() in GENDER_WORDS else None


class Labeller:
    """Weak labels for one catalogue; knows its frequent brands and its colour vocabulary."""

    def __init__(self, titles: list[str], base_colours: set[str]) -> None:
        self.prefix_counts: Counter[str] = Counter()
        for title in titles:
            gender_at = self._first_gender(_tokens(title))
            if gender_at:
                self.prefix_counts[" ".join(t.group() for t in _tokens(title)[:gender_at]).lower()] += 1
        phrases = set(base_colours) | set(EXTRA_COLOURS) | {"Off White", "Multi Coloured", "Multi Colour"}
        self.colour_phrases = sorted(phrases, key=lambda p: -len(p))
        self.colour_patterns = [phrase_pattern(p, colour=True) for p in self.colour_phrases]
        self.colour_words = {w.lower() for p in phrases for w in re.split(r"[\s-]+", p)}

    @staticmethod
    def _first_gender(tokens: list[re.Match[str]]) -> int | None:
        for i in range(len(tokens)):
            if _gender_core(tokens, i):
                return i
        return None

    def label(self, title: str, article_type: str, base_colour: str, master_category: str = "") -> Labels:
        tokens = _tokens(title)
        spans: list[Span] = []
        brand = self._brand(tokens)
        if brand is not None:
            spans.append(brand)
        # Other values are looked for after the whole pre-gender prefix: in "Turtle Check Men"
        # the brand is "Turtle" but "Check" names its product line, not the shirt's pattern.
        gender_at = self._first_gender(tokens)
        after = tokens[gender_at - 1].end() if gender_at else (brand.end if brand else 0)
        spans += self._gender(tokens)
        if not (base_colour == "Skin" and master_category == "Personal Care"):  # "Skin Cover", "New Skin"
            spans += self._colour(title, base_colour, after)
        spans += self._located(title, self._article_variants(article_type), "article_type", after)
        spans += self._located(title, PATTERN_WORDS, "pattern", after, all_groups=True)
        colours = {title[s:e].lower() for s, e in self._colour_phrase_spans(title, after)}
        return Labels(spans=self._without_overlaps(spans), n_colour_words=len(colours))

    def _brand(self, tokens: list[re.Match[str]]) -> Span | None:
        gender_at = self._first_gender(tokens)
        has_gender = gender_at is not None
        words = [t.group() for t in (tokens[:gender_at] if has_gender else tokens)]
        longest = len(words) if has_gender else min(4, len(words) - 1)
        for k in range(1, longest + 1):  # the shortest frequent prefix is the brand
            if k < len(words) and " ".join(words[:k + 1]).lower() in COMPOUND_BRANDS:
                continue
            if self._frequent(" ".join(words[:k]).lower()):
                return Span(tokens[0].start(), tokens[k - 1].end(), "brand")
        if has_gender and 0 < len(words) <= 4 and not all(w.lower() in self.colour_words for w in words):
            return Span(tokens[0].start(), tokens[len(words) - 1].end(), "brand")
        return None

    def _frequent(self, prefix: str) -> bool:
        return self.prefix_counts[prefix] >= BRAND_MIN_COUNT

    @staticmethod
    def _gender(tokens: list[re.Match[str]]) -> list[Span]:
        spans = []
        for i, token in enumerate(tokens):
            core = _gender_core(tokens, i)
            if core is None or (core.lower() == "baby" and spans):
                continue
            spans.append(Span(token.start(), token.start() + len(core), "gender"))
        return spans

    def _colour_phrase_spans(self, title: str, brand_end: int) -> list[tuple[int, int]]:
        """Non-overlapping colour phrases after the brand, each grown over a modifier."""
        taken: list[tuple[int, int]] = []
        for pattern in self.colour_patterns:
            for m in pattern.finditer(title, brand_end):
                if not any(m.start() < e and s < m.end() for s, e in taken):
                    taken.append((self._with_modifier(title, m.start(), brand_end), m.end()))
        return sorted(taken)

    @staticmethod
    def _with_modifier(title: str, start: int, brand_end: int) -> int:
        before = re.search(r"(\w+)\s+$", title[brand_end:start])
        if before and before.group(1).lower() in COLOUR_MODIFIERS:
            return brand_end + before.start(1)
        return start

    def _colour(self, title: str, base_colour: str, brand_end: int) -> list[Span]:
        phrases = self._colour_phrase_spans(title, brand_end)
        for spelling in COLOUR_SPELLINGS.get(base_colour, [base_colour]):
            hits = [m for m in phrase_pattern(spelling, colour=True).finditer(title, brand_end)
                    if _word_before(title, m.start()) not in MATERIAL_BEFORE]
            if hits:
                spans = set()
                for m in hits:
                    whole = next(((s, e) for s, e in phrases if s <= m.start() and m.end() <= e),
                                 (m.start(), m.end()))
                    spans.add(Span(whole[0], whole[1], "colour"))
                return sorted(spans)
        return []

    @staticmethod
    def _article_variants(article_type: str) -> list[str]:
        if article_type in ARTICLE_SPELLINGS:
            return ARTICLE_SPELLINGS[article_type]
        parts = re.split(r"\s+and\s+", article_type) if " and " in article_type else [article_type]
        variants: list[str] = []
        for part in parts:
            variants += [part, _singular(part), part + "s"]
        return list(dict.fromkeys(variants))

    @staticmethod
    def _located(title: str, variants: list[str], attribute: str, brand_end: int,
                 all_groups: bool = False) -> list[Span]:
        """Occurrences of the first variant found (or of every variant when `all_groups`)."""
        spans: list[Span] = []
        for variant in variants:
            hits = [Span(m.start(), m.end(), attribute) for m in phrase_pattern(variant).finditer(title, brand_end)]
            hits = [h for h in hits if not any(h.start < s.end and s.start < h.end for s in spans)]
            spans += hits
            if hits and not all_groups:
                break
        return spans

    @staticmethod
    def _without_overlaps(spans: list[Span]) -> list[Span]:
        """Across attributes the earlier rule wins (brand > gender > colour > type > pattern)."""
        kept: list[Span] = []
        for span in spans:
            if not any(span.start < k.end and k.start < span.end for k in kept):
                kept.append(span)
        return sorted(kept)


def _word_before(text: str, position: int) -> str:
    match = re.search(r"(\w+)\s+$", text[:position])
    return match.group(1).lower() if match else ""


def _singular(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    lower = last.lower()
    if lower.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif lower.endswith("s") and not lower.endswith("ss"):
        last = last[:-1]
    return f"{head} {last}".strip()


def read_products(csv_path: Path) -> list[Product]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    catalogue_keys = ("masterCategory", "subCategory", "articleType", "baseColour", "usage")
    return [Product(id=row["product_id"], title=row["title"].strip(), article_type=row["articleType"],
                    base_colour=row["baseColour"], image=row["image"],
                    catalogue={k: row[k] for k in catalogue_keys})
            for row in rows if row.get("product_id") and row.get("title", "").strip()]


def build_listings(products: list[Product], labeller: Labeller, images_dir: Path,
                   available: set[str], summary: Summary) -> list[Listing]:
    listings = []
    for product in products:
        labels = labeller.label(product.title, product.article_type, product.base_colour,
                                product.catalogue["masterCategory"])
        found = {s.attribute for s in labels.spans}
        summary.per_attribute.update(s.attribute for s in labels.spans)
        if product.base_colour and "colour" not in found:
            summary.not_found["colour"] += 1
        if "article_type" not in found:
            summary.not_found["article_type"] += 1
        if not labels.spans:
            summary.no_label += 1
        image = images_dir / f"{product.id}.jpg" if product.image in available else None
        if image is None:
            summary.missing_photos += 1
        listings.append(Listing(id=product.id, text=product.title, image=image, spans=labels.spans,
                                meta={"n_colour_words": labels.n_colour_words, "catalogue": product.catalogue}))
    return listings


def extract_photos(archive: zipfile.ZipFile, products: list[Product], images_dir: Path) -> None:
    """Copy each product's photo out of the zip byte for byte (no re-encoding)."""
    images_dir.mkdir(parents=True, exist_ok=True)
    names = set(archive.namelist())
    for product in tqdm(products, desc=f"photos -> {images_dir}", unit="photo"):
        if product.image in names:
            (images_dir / f"{product.id}.jpg").write_bytes(archive.read(product.image))


@dataclass
class SplitSettings:
    """The split and the small bundle's size; each field is a command-line option (`training.options`)."""

    seed: int = field(default=13, metadata={"help": "seed of the split's hash and order: another seed, another split"})
    bundle_train: int = field(default=3000, metadata={"help": "training listings in the --bundle"})
    bundle_valid: int = field(default=500, metadata={"help": "validation listings in the --bundle"})
    bundle_test: int = field(default=500, metadata={"help": "test listings in the --bundle"})

    def bundle_sizes(self) -> dict[str, int]:
        return {"train": self.bundle_train, "valid": self.bundle_valid, "test": self.bundle_test}


def prepare(source: Path, out: Path, settings: SplitSettings, bundle: Path | None = None) -> Summary:
    """Write out/{train,valid,test}.jsonl + out/images/, and optionally the small bundle."""
    products = read_products(source / "products.csv")
    log.info("read %d products from %s", len(products), source / "products.csv")
    labeller = Labeller([p.title for p in products], {p.base_colour for p in products if p.base_colour})
    summary = Summary()
    with zipfile.ZipFile(source / "images.zip") as archive:
        available = set(archive.namelist())
        extract_photos(archive, products, out / "images")
        listings = build_listings(products, labeller, (out / "images").resolve(), available, summary)
        by_split: dict[str, list[Listing]] = {s: [] for s in SPLITS}
        for listing in sorted(listings, key=lambda item: _order_key(item.id, settings.seed)):
            by_split[split_of(listing.id, settings.seed)].append(listing)
        for split, items in by_split.items():
            write_jsonl(out / f"{split}.jsonl", items)
            summary.per_split[split] = len(items)
        if bundle is not None:
            _write_bundle(archive, by_split, bundle, settings.bundle_sizes(), products)
    return summary


def _write_bundle(archive: zipfile.ZipFile, by_split: dict[str, list[Listing]], bundle: Path,
                  sizes: dict[str, int], products: list[Product]) -> None:
    """The first N listings with a photo of each split, in the seeded order: a subset of that split."""
    chosen: dict[str, list[Listing]] = {}
    for split, items in by_split.items():
        with_photo = [item for item in items if item.image is not None]
        chosen[split] = with_photo[:sizes.get(split, 0)]
    ids = {item.id for items in chosen.values() for item in items}
    extract = [p for p in products if p.id in ids]
    extract_photos(archive, extract, bundle / "images")
    for split, items in chosen.items():
        moved = [Listing(item.id, item.text, (bundle / "images" / f"{item.id}.jpg").resolve(), item.spans, item.meta)
                 for item in items]
        write_jsonl(bundle / f"{split}.jsonl", moved)
    log.info("bundle written to %s: %s", bundle, ", ".join(f"{s} {len(v)}" for s, v in chosen.items()))


def log_summary(summary: Summary) -> None:
    total = sum(summary.per_split.values())
    print(f"Wrote {total} listings: " + ", ".join(f"{s} {summary.per_split[s]}" for s in SPLITS))
    print("Spans per attribute: " + ", ".join(f"{a} {n}" for a, n in sorted(summary.per_attribute.items())))
    print("Catalogue value not found in the title: "
          + ", ".join(f"{a} {n}" for a, n in sorted(summary.not_found.items())))
    print(f"Listings with no label: {summary.no_label}; without a photo: {summary.missing_photos}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with products.csv and images.zip")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, help="also write a small subset here")
    add_options(parser, SplitSettings)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for needed in ("products.csv", "images.zip"):
        if not (args.source / needed).is_file():
            parser.error(f"{args.source / needed} does not exist")
    summary = prepare(args.source, args.out, settings_from(SplitSettings, args), args.bundle)
    log_summary(summary)


if __name__ == "__main__":
    main()
