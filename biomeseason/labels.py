"""Labels: the biome vocabulary, month parsing, seasons, and file-name labels.

The vocabulary is a JSON file mapping canonical biome names (the class order
of the biome head) to aliases. The default one, ``vocab/default.json``, holds
the original study's seven biomes; pass another file to use your own classes:

    {"biomes": {"cropland": ["crops", "farmland"], "urban": ["city"]}}

File names follow ``<Biome>[ free text]_<Month>[suffix].<ext>``, e.g.
``Boreal_Manicouagan Crater_June.jpg`` -> (boreal_forest, 6). Anything we
cannot read unambiguously raises :class:`LabelError` with the reason; a close
misspelling of a known biome (``Ranforest``) is accepted and reported.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath

DEFAULT_VOCAB = Path(__file__).with_name("vocab") / "default.json"

MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july",
               "august", "september", "october", "november", "december"]
MONTH_ABBR = [m[:3] for m in MONTH_NAMES]
_MONTH_WORDS = {**{m: i + 1 for i, m in enumerate(MONTH_NAMES)},
                **{a: i + 1 for i, a in enumerate(MONTH_ABBR)},
                "sept": 9}

SEASONS = ["winter", "spring", "summer", "autumn"]
HEMISPHERES = ("north", "south")

# A fuzzy match must be this similar (difflib ratio) and the word this long:
# "Ranforest" -> "rainforest" scores 0.95; two-letter aliases like "DV" never
# match fuzzily because one wrong letter is half the word.
FUZZY_CUTOFF = 0.85
FUZZY_MIN_LEN = 5


class LabelError(ValueError):
    """A label that cannot be read without guessing; the message is the reason."""


def normalise(text: str) -> str:
    """Lower-case, with runs of anything but letters and digits made one space."""
    return re.sub(r"[^0-9a-z]+", " ", str(text).lower()).strip()


@dataclass(frozen=True)
class BiomeMatch:
    biome: str          # canonical name
    how: str            # "exact", "alias" or "fuzzy"
    text: str           # what was matched

    @property
    def note(self) -> str:
        """A line for the report when the match was not exact, else ''."""
        return f"'{self.text}' read as {self.biome} (close spelling)" if self.how == "fuzzy" else ""


@dataclass
class Vocabulary:
    """Canonical biome names in head order, and every alias that maps to one."""

    biomes: list[str]
    aliases: dict[str, str] = field(default_factory=dict)  # normalised alias -> canonical

    @classmethod
    def load(cls, path: str | Path | None = None) -> Vocabulary:
        path = Path(path) if path else DEFAULT_VOCAB
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"vocabulary file {path} is not valid JSON: {e}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("biomes"), (dict, list)):
            raise ValueError(f"vocabulary file {path} needs a 'biomes' object "
                             "mapping canonical names to lists of aliases")
        biomes = raw["biomes"]
        if isinstance(biomes, list):
            biomes = {b: [] for b in biomes}
        return cls.from_mapping(biomes)

    @classmethod
    def from_mapping(cls, biomes: dict[str, list[str]]) -> Vocabulary:
        if not biomes:
            raise ValueError("a vocabulary needs at least one biome")
        aliases: dict[str, str] = {}
        for name, alias_list in biomes.items():
            for alias in [name, *alias_list]:
                key = normalise(alias)
                if not key:
                    raise ValueError(f"empty alias for biome {name!r}")
                other = aliases.setdefault(key, name)
                if other != name:
                    raise ValueError(f"alias {alias!r} names two biomes: {other} and {name}")
        return cls(list(biomes), aliases)

    @classmethod
    def from_names(cls, names) -> Vocabulary:
        """A vocabulary whose classes are the given names (e.g. folder names), sorted."""
        return cls.from_mapping({n: [] for n in sorted(set(names))})

    def to_json(self) -> dict:
        """The mapping form, as written to ``labels.json``."""
        inverse: dict[str, list[str]] = {b: [] for b in self.biomes}
        for key, name in sorted(self.aliases.items()):
            if key != normalise(name):
                inverse[name].append(key)
        return {"biomes": inverse}

    def resolve(self, text: str, fuzzy: bool = True) -> BiomeMatch | None:
        """The biome that ``text`` names, or None; raises LabelError if ambiguous."""
        key = normalise(text)
        if not key:
            return None
        if key in self.aliases:
            name = self.aliases[key]
            return BiomeMatch(name, "exact" if key == normalise(name) else "alias", text)
        if not fuzzy or len(key) < FUZZY_MIN_LEN:
            return None
        close = difflib.get_close_matches(key, list(self.aliases), n=5, cutoff=FUZZY_CUTOFF)
        names = sorted({self.aliases[c] for c in close})
        if len(names) > 1:
            raise LabelError(f"biome '{text}' is ambiguous: could be {' or '.join(names)}")
        return BiomeMatch(names[0], "fuzzy", text) if names else None


def parse_month(token: str) -> int | None:
    """Month 1..12 from 'Jan', 'January', 'Sept', 'Feb2', '01', '7'; else None.

    Bare numbers count only with one or two digits, so a running index such as
    '0001' is never read as January.
    """
    t = str(token).strip().lower()
    if re.fullmatch(r"\d{1,2}", t):
        m = int(t)
        return m if 1 <= m <= 12 else None
    word = re.sub(r"\d+$", "", t)  # 'feb2' -> 'feb'
    return _MONTH_WORDS.get(word)


def season_of(month: int | None, hemisphere: str = "north") -> str:
    """Meteorological season (Dec-Feb winter in the north); '' for an unknown month."""
    if month is None or month == "":
        return ""
    if hemisphere not in HEMISPHERES:
        raise ValueError(f"hemisphere must be one of {HEMISPHERES}, got {hemisphere!r}")
    month = int(month)
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    index = (month % 12) // 3  # Dec, Jan, Feb -> 0
    if hemisphere == "south":
        index = (index + 2) % 4
    return SEASONS[index]


def north_month(month: int, hemisphere: str = "north") -> int:
    """The month in which a northern place looks as this place does in ``month``.

    Six months on south of the equator (a southern July looks like a northern
    January); the month itself in the north. Its own inverse. The month head of
    a model learns and answers these months, so one look has one month label
    whichever hemisphere an image came from; a prediction is turned back into
    the image's calendar month with the image's hemisphere.
    """
    if hemisphere not in HEMISPHERES:
        raise ValueError(f"hemisphere must be one of {HEMISPHERES}, got {hemisphere!r}")
    month = int(month)
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    return month if hemisphere == "north" else (month + 5) % 12 + 1


@dataclass(frozen=True)
class FileLabel:
    biome: str | None
    month: int | None
    note: str = ""      # non-empty when something was read leniently


def parse_filename(name: str | PurePath, vocab: Vocabulary, bare_numbers: bool = True) -> FileLabel:
    """Labels from ``<Biome>[ free text]_<Month>[suffix].<ext>``.

    With ``bare_numbers=False`` only month words count: inside a class folder
    ``AnnualCrop_7.jpg`` is the seventh picture, not July.

    >>> v = Vocabulary.load()
    >>> parse_filename("Boreal_Manicouagan Crater_June.jpg", v)
    FileLabel(biome='boreal_forest', month=6, note='')
    >>> parse_filename("Deciduous_Jan_Snow.png", v).month
    1
    """
    stem = PurePath(name).stem
    parts = [p for p in stem.split("_") if p.strip()]
    if len(parts) < 2:
        raise LabelError(f"file name '{stem}' does not follow <Biome>_<Month>")
    match = _biome_from_words(parts[0], vocab)
    if match is None:
        raise LabelError(f"no known biome in '{parts[0]}'")
    months = _months_in(parts[1:], bare_numbers)
    if not months:
        raise LabelError(f"no month in '{stem}'")
    if len(months) > 1:
        raise LabelError(f"more than one month in '{stem}': {sorted(months)}")
    return FileLabel(match.biome, months.pop(), match.note)


def _months_in(parts: list[str], bare_numbers: bool = True) -> set[int]:
    """Months named by the parts after the biome.

    A month word wins over a bare number, so in 'USGrass_Oct_3' the '3' is a
    copy index, not March; bare numbers count only when no word names a month
    ('Taiga_06').
    """
    words = {parse_month(p) for p in parts if not p.strip().isdigit()} - {None}
    if words or not bare_numbers:
        return words
    return {parse_month(p) for p in parts} - {None}


def _biome_from_words(text: str, vocab: Vocabulary) -> BiomeMatch | None:
    """Longest leading run of words naming a biome: 'Desert Mojave' -> desert."""
    # Split without lower-casing so a report quotes the name as written ('Ranforest').
    words = re.findall(r"[0-9A-Za-z]+", text)
    for n in range(len(words), 0, -1):
        match = vocab.resolve(" ".join(words[:n]))
        if match:
            return match
    return None
