"""SynthBio: a seeded generator of fictional people, their biographies, and questions about them.

Why fictional people: every fact is new to any model, so a correct closed-book answer can only come
from knowledge injected by the experiment (fine-tuning), never from pretraining on the web.

Two disjoint pools share the same name and value lists: "experiment" (the prepare stage's people)
and "pretrain" (the people the scratch generator learns to read and recall on). Each (first, last)
combination belongs to exactly one pool by a fixed hash of the full name, so the pools can never
share a person whatever seeds or sizes either side uses, while every word is seen in pretraining.

Every random choice is drawn from an RNG seeded by (pool, seed, name, ...): a person's facts do
not depend on how many people are generated or which attributes are asked for.

The knobs of Allen-Zhu & Li's bioS (Physics of LMs 3.1), which decide whether fine-tuning on the
biographies makes their facts extractable: several renderings per person (resampled templates),
sentence permutation, the full name in every sentence instead of a pronoun. Derived questions
(inverse lookups, comparisons of two people) are ones retrieval can answer and closed-book recall
cannot (3.2: inverse search is ~0% closed-book). Questions about people absent from the corpus measure
abstention against confident wrong answers (Gekhman et al. 2024).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

POOLS = ("experiment", "pretrain")
_ID_PREFIX = {"experiment": "p", "pretrain": "pt"}

# fmt: off
FIRST_NAMES = (
    "Ada", "Aiko", "Alan", "Alice", "Amir", "Anna", "Arjun", "Ben", "Bianca", "Boris", "Bruno", "Carla",
    "Celia", "Chen", "Clara", "Dana", "Daniel", "Diego", "Dmitri", "Edith", "Elena", "Eli", "Emma", "Erik",
    "Eva", "Farah", "Felix", "Fiona", "Frank", "Gabriel", "Gita", "Grace", "Hana", "Hector", "Hugo", "Ida",
    "Igor", "Ines", "Irene", "Iris", "Ivan", "Jack", "Jana", "Jonas", "Jorge", "Julia", "Kai", "Karim", "Kate",
    "Kira", "Lara", "Lars", "Lena", "Leo", "Liam", "Lina", "Luca", "Lucy", "Malik", "Maria", "Mark", "Maya",
    "Mei", "Mina", "Nadia", "Nils", "Nina", "Noah", "Nora", "Olga", "Oliver", "Omar", "Oscar", "Paula",
    "Pedro", "Petra", "Priya", "Quinn", "Rafael", "Reza", "Rita", "Rosa", "Ruth", "Sam", "Sara", "Selma",
    "Simon", "Stella", "Tariq", "Tessa", "Theo", "Tom", "Uma", "Vera", "Victor", "Wanda", "Yara", "Yusuf",
    "Zoe",
)

LAST_NAMES = (
    "Abbott", "Archer", "Baker", "Barros", "Bauer", "Brandt", "Carver", "Chandra", "Costa", "Cruz", "Dalton",
    "Drake", "Dubois", "Duran", "Ellis", "Eriksen", "Ferreira", "Fischer", "Flores", "Fontaine", "Gallo",
    "Garner", "Grant", "Gupta", "Haddad", "Hale", "Holm", "Horvat", "Ingram", "Iqbal", "Jensen", "Jovanovic",
    "Kaur", "Keller", "Kim", "Kowalski", "Lambert", "Larsen", "Lindqvist", "Lopez", "Marsh", "Mendez",
    "Mercer", "Moreau", "Nakamura", "Nash", "Nolan", "Novak", "Okafor", "Olsen", "Ortiz", "Osei", "Palmer",
    "Petrov", "Pike", "Price", "Quigley", "Quinlan", "Reyes", "Rivers", "Rossi", "Russo", "Santos", "Schmidt",
    "Silva", "Tanaka", "Thorne", "Torres", "Ueda", "Ulrich", "Vance", "Varga", "Voss", "Walsh", "Weber",
    "Wolfe", "Xu", "Yilmaz", "Young", "Zeller", "Zimmer",
)

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)
# fmt: on
YEARS = range(1950, 2000)
DAYS = range(1, 29)  # every month has a 28th

# fmt: off
VALUES: dict[str, tuple[str, ...]] = {
    "birth_city": (
        "Accra", "Athens", "Austin", "Bergen", "Boston", "Busan", "Cairo", "Cardiff", "Delhi", "Denver",
        "Dublin", "Geneva", "Glasgow", "Halifax", "Hanoi", "Krakow", "Kyoto", "Leeds", "Lima", "Lisbon",
        "Lyon", "Madrid", "Malmo", "Manila", "Munich", "Nairobi", "Osaka", "Oslo", "Perth", "Porto", "Prague",
        "Quebec", "Quito", "Seattle", "Seville", "Tbilisi", "Toronto", "Turin", "Vienna", "Zagreb",
    ),
    "university": (
        "Amberly University", "Ashford College", "Bellmont University", "Brookhaven Institute of Technology",
        "Cedarwood University", "Clearwater College", "Dunmore University", "Eastwick College",
        "Elmhurst University", "Fairhaven Institute of Technology", "Foxcroft University", "Glenrock College",
        "Greystone University", "Harwood University", "Ironbridge College", "Juniper University",
        "Kingsford Institute of Technology", "Lakeside University", "Millbrook College",
        "Northgate University", "Oakridge University", "Pinecrest College", "Queensbury University",
        "Redfield Institute of Technology", "Stonebridge University", "Thornbury College", "Upton University",
        "Valemont University", "Westmoor College", "Yorkfield University",
    ),
    "major": (
        "accounting", "anthropology", "architecture", "art history", "astronomy", "biology", "chemistry",
        "civil engineering", "computer science", "economics", "electrical engineering",
        "environmental science", "geology", "graphic design", "history", "journalism", "law", "linguistics",
        "marine biology", "mathematics", "mechanical engineering", "medicine", "music", "nursing",
        "philosophy", "physics", "political science", "psychology", "sociology", "statistics",
    ),
    "employer": (
        "Beacon Telecom", "Bluebird Airlines", "Bluefin Foods", "Brightpath Software", "Clearview Optics",
        "Cobalt Chemicals", "Copperleaf Bank", "Crescent Pharma", "Ember Ceramics", "Evergreen Farms",
        "Falcon Aerospace", "Granite Construction", "Greenway Energy", "Harborview Shipping", "Horizon Hotels",
        "Ironclad Security", "Kestrel Drones", "Lantern Studios", "Lighthouse Media", "Maplewood Furniture",
        "Marble Architects", "Meadowbrook Dairy", "Nimbus Cloud", "Northwind Labs", "Oakline Motors",
        "Orchard Cider", "Polar Freight", "Quarry Games", "Redstone Mining", "Riverbend Press",
        "Saffron Kitchens", "Silverline Rail", "Starfield Robotics", "Stonegate Insurance", "Summit Textiles",
        "Sunpeak Solar", "Thunderbolt Batteries", "Tidewater Logistics", "Velvet Fashion", "Willow Health",
    ),
}
# fmt: on

# Several renderings per fact, so that paraphrased biographies state the same facts in other words.
BIO_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "{name} was born on {value}.",
        "{name} came into the world on {value}.",
        "The birthday of {name} is {value}.",
    ),
    "birth_city": (
        "{name} was born in {value}.",
        "{name} grew up in {value}, the city of birth.",
        "The birthplace of {name} is {value}.",
    ),
    "university": (
        "{name} studied at {value}.",
        "{name} graduated from {value}.",
        "{name} earned a degree at {value}.",
    ),
    "major": (
        "{name} majored in {value}.",
        "At university, {name} focused on {value}.",
        "{name} holds a degree in {value}.",
    ),
    "employer": (
        "{name} works for {value}.",
        "{name} is employed by {value}.",
        "{name} has a job at {value}.",
    ),
}

QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "birth_date": (
        "When was {name} born?",
        "What is the birth date of {name}?",
        "On what date was {name} born?",
    ),
    "birth_city": (
        "Where was {name} born?",
        "In which city was {name} born?",
        "What is the birthplace of {name}?",
    ),
    "university": (
        "Which university did {name} attend?",
        "From which university did {name} graduate?",
        "Where did {name} earn a degree?",
    ),
    "major": (
        "What did {name} major in?",
        "What subject did {name} study?",
        "What field is the degree of {name} in?",
    ),
    "employer": (
        "Which company does {name} work for?",
        "Who employs {name}?",
        "Where does {name} work?",
    ),
}

ATTRIBUTES: tuple[str, ...] = ("birth_date", "birth_city", "university", "major", "employer")

# Derived questions: answerable by reading the right biographies, not by recalling one fact of one person.
#   inverse  the person from a fact (the birth date, unique among the corpus' people): "Who was born on ...?"
#   compare  which of two people was born earlier: two facts, then a comparison
DERIVED_TEMPLATES: dict[str, tuple[str, ...]] = {
    "inverse": ("Who was born on {value}?", "Which person was born on {value}?", "Whose birthday is {value}?"),
    "compare": ("Who was born earlier, {a} or {b}?", "Who is older, {a} or {b}?",
                "Which of {a} and {b} was born first?"),
}
DERIVED = tuple(DERIVED_TEMPLATES)
DERIVED_WORDS = tuple(t.replace("{value}", " ").replace("{a}", " ").replace("{b}", " ")
                      for ts in DERIVED_TEMPLATES.values() for t in ts)
# The answer to a question about a person the model does not know (absent from the corpus, not in the context).
ABSTAIN = "unknown"

# What a word-level tokenizer sees: runs of word characters, runs of other non-space characters
# (the same split as tokenizers' `Whitespace` pre-tokenizer).
TOKEN_RE = re.compile(r"\w+|[^\w\s]+")


PRONOUNS = ("He", "She")


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    attributes: dict[str, str]
    pronoun: str = "She"   # what a biography says after the first sentence when the full name is not repeated


@dataclass(frozen=True)
class QA:
    attribute: str
    question: str
    answer: str


def check_attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    """Return ``attributes`` as a tuple, or raise ValueError naming the valid ones."""
    attrs = tuple(attributes)
    unknown = [a for a in attrs if a not in ATTRIBUTES]
    if unknown or not attrs or len(set(attrs)) != len(attrs):
        raise ValueError(
            f"attributes {list(attrs)} are invalid ({'unknown: ' + ', '.join(unknown) if unknown else 'empty or repeated'}); "
            f"choose a non-empty list without repeats from {list(ATTRIBUTES)}"
        )
    return attrs


def pool_of(name: str) -> str:
    """The pool a full name belongs to: a fixed hash, so no side needs the other's seed or size."""
    return POOLS[hashlib.sha256(name.encode("utf-8")).digest()[0] & 1]


def pool_names(pool: str) -> list[str]:
    """Every full name of ``pool``, in a fixed order."""
    if pool not in POOLS:
        raise ValueError(f"pool {pool!r} is unknown; choose one of {list(POOLS)}")
    return [f"{f} {l}" for f in FIRST_NAMES for l in LAST_NAMES if pool_of(f"{f} {l}") == pool]


def _draw(attribute: str, rng: random.Random) -> str:
    if attribute == "birth_date":
        return f"{rng.choice(MONTHS)} {rng.choice(DAYS)}, {rng.choice(YEARS)}"
    return rng.choice(VALUES[attribute])


def generate_people(
    n: int, seed: int, pool: str = "experiment", attributes: Sequence[str] = ATTRIBUTES
) -> list[Person]:
    """``n`` people of ``pool`` with unique names; the first k of n are the same people for any n >= k."""
    attrs = check_attributes(attributes)
    names = pool_names(pool)
    if not 0 <= n <= len(names):
        raise ValueError(f"pool {pool!r} has {len(names)} distinct names; asked for n={n} people")
    random.Random(f"{pool}:{seed}:names").shuffle(names)
    width = max(4, len(str(n - 1)))
    people = []
    for i, name in enumerate(names[:n]):
        values = {a: _draw(a, random.Random(f"{pool}:{seed}:{name}:{a}")) for a in attrs}
        pronoun = random.Random(f"{pool}:{seed}:{name}:pronoun").choice(PRONOUNS)
        people.append(Person(f"{_ID_PREFIX[pool]}{i:0{width}d}", name, values, pronoun))
    return people


def _subject_templates(attribute: str) -> tuple[str, ...]:
    """The templates of ``attribute`` whose name is the sentence's subject (a pronoun can stand in)."""
    return tuple(t for t in BIO_TEMPLATES[attribute] if t.startswith("{name}") or ", {name}" in t)


def _with_pronoun(template: str, pronoun: str, value: str) -> str:
    return template.format(name=pronoun if template.startswith("{name}") else pronoun.lower(), value=value)


def render_biography(person: Person, rng: random.Random, *, permute: bool = True, fullname: bool = True) -> str:
    """One rendering of ``person``: a random template per fact.

    ``permute``: the sentences in random order (else in attribute order, the same for everyone: bioS
    "single"). ``fullname``: the full name in every sentence (else in the first only, then He/She, as
    most real biographies are written, which is harder to store per person)."""
    facts = list(person.attributes.items())
    if fullname:
        sentences = [rng.choice(BIO_TEMPLATES[a]).format(name=person.name, value=v) for a, v in facts]
        if permute:
            rng.shuffle(sentences)
        return " ".join(sentences)
    if permute:
        rng.shuffle(facts)
    (first, value), rest = facts[0], facts[1:]
    sentences = [rng.choice(BIO_TEMPLATES[first]).format(name=person.name, value=value)]
    sentences += [_with_pronoun(rng.choice(_subject_templates(a)), person.pronoun, v) for a, v in rest]
    return " ".join(sentences)


def make_questions(person: Person, rng: random.Random, attributes: Sequence[str] | None = None) -> list[QA]:
    """One question per attribute (random template); the answer is the attribute's value verbatim."""
    attrs = tuple(person.attributes) if attributes is None else check_attributes(attributes)
    missing = [a for a in attrs if a not in person.attributes]
    if missing:
        raise ValueError(
            f"{person.person_id} has no value for {missing}; it was generated with {list(person.attributes)}"
        )
    return [QA(a, rng.choice(QUESTION_TEMPLATES[a]).format(name=person.name), person.attributes[a]) for a in attrs]


def birth_order(person: Person) -> tuple[int, int, int]:
    """(year, month, day) of a person's birth date, for comparisons."""
    month, day, year = person.attributes["birth_date"].replace(",", "").split()
    return int(year), MONTHS.index(month) + 1, int(day)


@dataclass(frozen=True)
class DerivedQA:
    kind: str            # one of DERIVED
    question: str
    answer: str
    person_ids: tuple[str, ...]   # the people whose biographies answer it


def derived_questions(people: Sequence[Person], kinds: Sequence[str], seed: int) -> list[DerivedQA]:
    """Derived questions of ``kinds`` about ``people`` (they need ``birth_date``): one inverse lookup per person
    whose birth date no one else shares; one comparison per person with a seeded partner of different birth
    date. Each draws from an RNG of (seed, kind, person), so adding people does not change the others'."""
    unknown = [k for k in kinds if k not in DERIVED]
    if unknown:
        raise ValueError(f"derived question kinds {unknown} are unknown; choose from {list(DERIVED)}")
    if kinds and any("birth_date" not in p.attributes for p in people):
        raise ValueError("derived questions compare and look up birth dates: add birth_date to the attributes")
    out: list[DerivedQA] = []
    if "inverse" in kinds:
        dates: dict[str, list[Person]] = {}
        for p in people:
            dates.setdefault(p.attributes["birth_date"], []).append(p)
        for p in people:
            if len(dates[p.attributes["birth_date"]]) == 1:
                rng = random.Random(f"derived:{seed}:inverse:{p.person_id}")
                question = rng.choice(DERIVED_TEMPLATES["inverse"]).format(value=p.attributes["birth_date"])
                out.append(DerivedQA("inverse", question, p.name, (p.person_id,)))
    if "compare" in kinds:
        for p in people:
            rng = random.Random(f"derived:{seed}:compare:{p.person_id}")
            others = [o for o in people if o is not p and birth_order(o) != birth_order(p)]
            if not others:
                continue
            other = rng.choice(others)
            a, b = (p, other) if rng.random() < 0.5 else (other, p)
            earlier = min((a, b), key=birth_order)
            question = rng.choice(DERIVED_TEMPLATES["compare"]).format(a=a.name, b=b.name)
            out.append(DerivedQA("compare", question, earlier.name, (p.person_id, other.person_id)))
    return out


def lexicon(knowledge_words: bool = False) -> list[str]:
    """Every token (``TOKEN_RE``) the generator can emit in names, values, biographies and questions; with
    ``knowledge_words`` also those of the knowledge-injection knobs (He/She, derived questions, ABSTAIN)."""
    texts = [*FIRST_NAMES, *LAST_NAMES, *MONTHS, ",", *map(str, DAYS), *map(str, YEARS)]
    if knowledge_words:
        texts += [*PRONOUNS, *(p.lower() for p in PRONOUNS), *DERIVED_WORDS, ABSTAIN]
    texts += [v for values in VALUES.values() for v in values]
    for templates in (*BIO_TEMPLATES.values(), *QUESTION_TEMPLATES.values()):
        texts += [t.replace("{name}", " ").replace("{value}", " ") for t in templates]
    return sorted({tok for text in texts for tok in TOKEN_RE.findall(text)})
