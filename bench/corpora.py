"""A small real-text corpus where names, codes and rare terms decide the right passage.

Forty-eight hand-written English passages in eight families of six. Within a family the passages
describe near-identical things in near-identical words (six preserved steam engines, six alloys...),
so a sentence-embedding model finds them hard to tell apart; each passage has one rare term
(a locomotive's name, an alloy designation, an error code) that its single question names. That
makes it a corpus for comparing lexical (BM25), dense and hybrid retrieval: lexical matching on
the rare term finds the gold passage, topical similarity alone does not. Every fact is fictional.

Written by tests and by bench/retrieval.py, in the layout ragft's local loader reads
(``ragft.data.sources.load_local``): ``docs/<family>/<slug>.txt`` and ``qa.jsonl``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Passage:
    slug: str
    title: str
    text: str
    question: str
    answer: str


_CORPUS: dict[str, tuple[_Passage, ...]] = {
    # ------------------------------------------------------------------ heritage steam locomotives
    "steam-locomotives": (
        _Passage(
            "4418-brackenholme",
            "No. 4418 'Brackenholme'",
            "No. 4418 'Brackenholme' is a four-cylinder express passenger locomotive built at the Ashcombe "
            "Works in 1927. It has a 4-6-0 wheel arrangement and driving wheels six feet nine inches across. "
            "After withdrawal from main line service in 1962 it spent eleven years in a scrapyard at Pellow "
            "Sands before volunteers bought it for 900 pounds. Restoration was led by the engineer Maud "
            "Tillington and took fourteen years. Today it hauls dining trains on the Wyvern Valley Railway "
            "and is painted in a dark green livery with copper chimney bands.",
            "Where was the steam locomotive Brackenholme left in a scrapyard after withdrawal?",
            "Pellow Sands",
        ),
        _Passage(
            "2291-vellacombe",
            "No. 2291 'Vellacombe'",
            "Locomotive No. 2291 'Vellacombe' left the erecting shop of the Hartfell Foundry in 1934, one of "
            "twelve mixed traffic engines ordered for the coastal lines. It is a 2-6-2 tank engine with a "
            "boiler pressed to 200 pounds per square inch. Withdrawn in 1959, it was rescued from a siding "
            "near Corran Quay by a society of railway enthusiasts. The fitter Edwin Scarrow rebuilt its "
            "firebox in copper during a restoration completed in 1988. It now works the steep branch of the "
            "Lanmoor Steam Railway, pulling four carriages in maroon livery.",
            "What is the boiler of the steam locomotive Vellacombe pressed to?",
            "200 pounds",
        ),
        _Passage(
            "6035-marrowdene",
            "No. 6035 'Marrowdene'",
            "The heavy freight locomotive No. 6035 'Marrowdene' was completed at the Ashcombe Works in 1941 "
            "and spent its working life hauling coal trains across the northern moors. Its 2-8-0 wheel "
            "arrangement gave it great pulling power on steep gradients. It was withdrawn in 1966 and stood "
            "for years behind an engine shed at Dunmere before the preservationist Agnes Holloway raised "
            "funds to save it. Its restoration used a new steel tender built in 2004. The engine is now "
            "based at Kelsey Junction and carries a plain black livery.",
            "In which year was a new steel tender built for the locomotive Marrowdene?",
            "2004",
        ),
        _Passage(
            "5112-thistlewaite",
            "No. 5112 'Thistlewaite'",
            "No. 5112 'Thistlewaite' is a small express locomotive built by the Grainger and Pell company in "
            "1912 for the lakeland routes. It has a 4-4-0 wheel arrangement and a tall brass dome that made "
            "it a favourite of photographers. Withdrawn in 1951, it was displayed on a plinth outside "
            "Farrowby station for three decades. The retired signalman Cyril Dunstan campaigned to return it "
            "to steam, and the work was finished in 1997. It now runs special excursions on the Wyvern "
            "Valley Railway in a pale blue livery.",
            "Outside which station was the steam locomotive Thistlewaite displayed on a plinth?",
            "Farrowby",
        ),
        _Passage(
            "7720-skelbrooke-abbey",
            "No. 7720 'Skelbrooke Abbey'",
            "Built at the Hartfell Foundry in 1949, No. 7720 'Skelbrooke Abbey' was among the last express "
            "passenger engines of its type. It has a 4-6-2 wheel arrangement, three cylinders and driving "
            "wheels six feet two inches across. The locomotive was withdrawn in 1965 after only sixteen years "
            "of service and was sold to a private collector, Harold Penmarrow, who stored it in a barn at "
            "Lisket. A full overhaul costing 1.2 million pounds was completed in 2011. It now hauls main line "
            "charters in a crimson livery.",
            "How much did the overhaul of the steam locomotive Skelbrooke Abbey cost?",
            "1.2 million pounds",
        ),
        _Passage(
            "3307-ardquhain",
            "No. 3307 'Ardquhain'",
            "The shunting engine No. 3307 'Ardquhain' was built at the Grainger and Pell works in 1923 for "
            "use in a whisky distillery yard. It is a compact 0-6-0 saddle tank weighing forty-one tons in "
            "working order. It was withdrawn in 1968 and left in a shed at Inverbrack until the enthusiast "
            "Fiona Maclaren bought it in 1979. The restoration replaced its wooden buffer beams with oak "
            "timbers. It now gives brake van rides on the Lanmoor Steam Railway and wears an apple green "
            "livery.",
            "How much does the tank locomotive Ardquhain weigh in working order?",
            "forty-one tons",
        ),
    ),
    # ------------------------------------------------------------------ alloys
    "alloys": (
        _Passage(
            "zk-4471",
            "Alloy ZK-4471",
            "The alloy ZK-4471 is a nickel-based material developed in 1983 at the Marlow Institute of "
            "Metallurgy by a team under Dr. Irene Castell. It contains about eighteen percent chromium and "
            "small amounts of niobium, which slow grain growth at high temperatures. ZK-4471 keeps its "
            "strength in service up to about 600 degrees and begins to soften at 640 degrees. Its tensile "
            "strength at room temperature is 1,150 megapascals. The alloy is mainly used for turbine blades "
            "in small gas turbines and for exhaust valves in racing engines.",
            "At what temperature does the alloy ZK-4471 begin to soften?",
            "640 degrees",
        ),
        _Passage(
            "tm-2208",
            "Alloy TM-2208",
            "TM-2208 is a titanium alloy first produced in 1991 by the Dornach Alloy Works for aircraft "
            "landing gear. Its composition includes six percent aluminium and four percent vanadium, with a "
            "trace of palladium to resist corrosion in salt water. The alloy begins to soften at 720 degrees, "
            "though it is rarely used above 400 degrees. Its tensile strength is 980 megapascals and its "
            "density is only 4.4 grams per cubic centimetre. The metallurgist Oskar Lindqvist patented the "
            "heat treatment that gives TM-2208 its fine grain.",
            "Which metal is added in a trace amount to the alloy TM-2208 to resist corrosion?",
            "palladium",
        ),
        _Passage(
            "nv-5150",
            "Alloy NV-5150",
            "The copper alloy NV-5150 was introduced in 1976 by the Harlan Brass Company for ship propellers "
            "and seawater pumps. It contains ten percent nickel and one percent iron, which together give "
            "excellent resistance to barnacles and pitting. NV-5150 begins to soften at 510 degrees and has a "
            "tensile strength of 420 megapascals. The engineer Beatrice Quayle tested it for nine years on "
            "buoys moored off Tarrow Point before it was approved for naval use. The alloy has a reddish "
            "colour that darkens to brown in the sea.",
            "Off which headland were buoys made of the alloy NV-5150 moored for testing?",
            "Tarrow Point",
        ),
        _Passage(
            "rb-3316",
            "Alloy RB-3316",
            "RB-3316 is a cobalt-based alloy designed in 1988 at the Marlow Institute of Metallurgy for "
            "surgical implants. It combines cobalt with twenty-eight percent chromium and six percent "
            "molybdenum, and it contains no nickel, so it does not trigger allergies. The alloy begins to "
            "soften at 810 degrees and has a tensile strength of 1,300 megapascals. Its developer, Dr. Samuel "
            "Okonkwo-Hale, chose a casting process that leaves a mirror finish. Hip and knee joints made from "
            "RB-3316 were first fitted at a clinic in Brennford in 1994.",
            "In which town were joints made from the alloy RB-3316 first fitted?",
            "Brennford",
        ),
        _Passage(
            "hx-7042",
            "Alloy HX-7042",
            "The aluminium alloy HX-7042 was developed in 1999 by the Veldt Materials Laboratory for "
            "lightweight bicycle frames. It contains five percent zinc, two percent magnesium and a little "
            "scandium, which allows it to be welded without cracking. HX-7042 begins to soften at 480 "
            "degrees and has a tensile strength of 560 megapascals. The chief researcher, Maren Solberg, "
            "first demonstrated it on a racing frame weighing just 1.1 kilograms. The alloy is now also used "
            "for tent poles and the arms of folding chairs.",
            "Which element lets the alloy HX-7042 be welded without cracking?",
            "scandium",
        ),
        _Passage(
            "cq-6189",
            "Alloy CQ-6189",
            "CQ-6189 is a stainless steel alloy produced since 1969 by the Dornach Alloy Works for kitchen "
            "knives and cutlery. It contains thirteen percent chromium and enough carbon to be hardened to 58 "
            "on the Rockwell scale. The alloy begins to soften at 560 degrees and has a tensile strength of "
            "1,700 megapascals after hardening. The cutler Walter Brinkley of Ashdale designed the forging "
            "schedule that is still used today. Blades of CQ-6189 hold a sharp edge well but must be dried "
            "after washing to avoid spots of rust.",
            "Who designed the forging schedule for the alloy CQ-6189?",
            "Walter Brinkley",
        ),
    ),
    # ------------------------------------------------------------------ orchid cultivars
    "orchids": (
        _Passage(
            "phalaenopsis-corvantha",
            "Phalaenopsis corvantha 'Silver Heron'",
            "Phalaenopsis corvantha 'Silver Heron' is an orchid cultivar registered in 2006 by the nursery of "
            "Helena Marsh in Cornwell Bay. Its flowers are white with a faint violet blush at the lip and "
            "measure about nine centimetres across. Each arching stem carries up to fourteen blooms, which "
            "open in late winter and last for three months. The plant prefers bright shade, a bark compost "
            "and warm nights of around eighteen degrees. Growers value corvantha for its light vanilla scent, "
            "which is strongest in the early morning.",
            "What does the scent of the orchid corvantha resemble?",
            "vanilla",
        ),
        _Passage(
            "dendrobium-mirelliae",
            "Dendrobium mirelliae 'Copper Lantern'",
            "Dendrobium mirelliae 'Copper Lantern' is a cane orchid cultivar first shown in 1998 by the "
            "breeder Tomas Vriesland at a flower fair in Hallenbeck. Its waxy flowers are a deep orange with "
            "a darker bronze throat and measure six centimetres across. Clusters of up to twenty blooms "
            "appear along the upper canes in early spring. The cultivar needs a cool, dry rest in autumn to "
            "flower well and should be grown in a small clay pot. Its name honours the botanist Mirella "
            "Santoro, who collected the parent plants.",
            "In which town was the orchid mirelliae first shown by its breeder?",
            "Hallenbeck",
        ),
        _Passage(
            "cattleya-tessaloides",
            "Cattleya tessaloides 'Evening Plum'",
            "Cattleya tessaloides 'Evening Plum' was registered in 2011 by the Greaves orchid nursery near "
            "Ostmoor. Its large ruffled flowers are magenta with a yellow throat and reach fourteen "
            "centimetres across, making it one of the biggest cultivars of its group. Each growth produces "
            "only two or three blooms, which appear in autumn and last about four weeks. The plant likes "
            "strong light, a coarse bark mix and generous feeding in summer. Tessaloides was awarded a silver "
            "medal at the Ostmoor Spring Show in 2013.",
            "Which medal was the orchid tessaloides awarded at a flower show?",
            "silver medal",
        ),
        _Passage(
            "masdevallia-quinbarensis",
            "Masdevallia quinbarensis 'Little Ember'",
            "Masdevallia quinbarensis 'Little Ember' is a small orchid cultivar selected in 2003 by the grower "
            "Agatha Penrose. Its triangular flowers are bright scarlet with long tails and measure only four "
            "centimetres across. Blooms appear singly on short stems through most of the summer. The plant "
            "comes from cloud forest ancestors and must be kept cool and humid, never above twenty-four "
            "degrees. Penrose raised the first seedlings in a converted dairy at Quinbar Farm, which gave the "
            "cultivar its name, and it is usually grown in living moss.",
            "In what material is the orchid quinbarensis usually grown?",
            "living moss",
        ),
        _Passage(
            "oncidium-auralesca",
            "Oncidium auralesca 'Golden Rain'",
            "Oncidium auralesca 'Golden Rain' is a spray orchid cultivar registered in 2009 by the Lindell "
            "Nursery of Harrowgate Vale. Its branched stems carry as many as eighty small yellow flowers "
            "spotted with chestnut brown, each about three centimetres across. The blooms open in midsummer "
            "and last roughly six weeks. The cultivar grows best mounted on cork bark or in a fast-draining "
            "mix, with daily misting in hot weather. The nursery manager, Colin Ashby, named auralesca after "
            "the glittering effect of its flowers in sunlight.",
            "How many flowers can one stem of the orchid auralesca carry?",
            "eighty",
        ),
        _Passage(
            "paphiopedilum-venturiella",
            "Paphiopedilum venturiella 'Green Monk'",
            "Paphiopedilum venturiella 'Green Monk' is a slipper orchid cultivar bred in 1994 by Dr. Rosa "
            "Venturi at a glasshouse in Stellbridge. Its single flower has a glossy green pouch, a striped "
            "dorsal sepal and petals edged with fine black hairs, and it measures about ten centimetres "
            "across. The flower opens in early winter and lasts up to eight weeks. The plant has mottled "
            "leaves, no pseudobulbs and prefers low light and evenly moist compost. Venturiella took nineteen "
            "years of crossing to stabilise.",
            "How long did the breeding of the orchid venturiella take to stabilise?",
            "nineteen years",
        ),
    ),
    # ------------------------------------------------------------------ small mountain villages
    "mountain-villages": (
        _Passage(
            "vhalreck",
            "Vhalreck",
            "Vhalreck is a small mountain village at an altitude of 1,640 metres, reached by a single road "
            "that climbs eighteen hairpin bends from the valley floor. About 210 people live there all year, "
            "most of them in stone houses with larch shingle roofs. The village grew up in the fourteenth "
            "century around a silver mine that closed in 1702. Today it is known for a hard goat cheese aged "
            "in the old mine tunnels. Its chapel of Saint Aurel holds a painted wooden altar carved by a "
            "local joiner named Jakob Ferrand.",
            "What food is the mountain village Vhalreck known for?",
            "hard goat cheese",
        ),
        _Passage(
            "oszkerlin",
            "Oszkerlin",
            "The mountain village of Oszkerlin sits on a sunny terrace at 1,480 metres above a narrow gorge. "
            "Its population is around 340, and it is surrounded by steep meadows that are still mown by hand "
            "each July. Oszkerlin was first recorded in 1288 as a summer grazing settlement. The village is "
            "famous for its wooden bell tower, built without a single nail in 1651. Visitors usually arrive "
            "by a cable car from the town of Merrendorf, which was opened in 1963 and carries twelve "
            "passengers at a time.",
            "From which town does the cable car up to the village Oszkerlin start?",
            "Merrendorf",
        ),
        _Passage(
            "tramelbourg",
            "Tramelbourg",
            "Tramelbourg is a remote village high in the mountains at 1,820 metres, close to the source of the "
            "river Saule. Only ninety-five people live there through the winter, when snow can cut the road "
            "for weeks. The village was founded in 1410 by shepherds from the southern valleys. It is known "
            "for its blue-painted shutters and for a spring festival in which young people carry pine "
            "torches up to the Col de Brenne. The village school, which has eleven pupils, is run by a single "
            "teacher named Odile Marchetti.",
            "How many pupils does the school in the mountain village Tramelbourg have?",
            "eleven",
        ),
        _Passage(
            "quellenzarn",
            "Quellenzarn",
            "Quellenzarn is a small mountain village at 1,390 metres, built around a warm mineral spring that "
            "never freezes. It has about 420 inhabitants and a bathhouse that has been in use since 1836. The "
            "village first appears in records in 1352, when the spring belonged to a monastery in the valley "
            "below. Its narrow streets are lined with painted farmhouses and old hay barns. The local "
            "mountain guide Anselm Riedl runs a small museum of climbing gear in the former dairy, which "
            "opened in 1987.",
            "Since which year has the bathhouse in the village Quellenzarn been in use?",
            "1836",
        ),
        _Passage(
            "piriatte",
            "Piriatte",
            "The hamlet of Piriatte lies at 1,710 metres on a ridge between two glaciers, and it is one of the "
            "highest inhabited villages in its range. Around 130 people live there, mostly farmers who keep "
            "cattle and grow rye on tiny terraced fields. Piriatte was founded in 1497, and its church of "
            "Saint Lucerne has a leaning stone spire. The village is known for black rye bread baked once a "
            "year in a communal oven. A narrow footpath leads from Piriatte to the Alp Gravetta, a summer "
            "pasture two hours away.",
            "What kind of bread is the mountain village Piriatte known for?",
            "black rye bread",
        ),
        _Passage(
            "drossgarth",
            "Drossgarth",
            "Drossgarth is a mountain village perched at 1,560 metres at the head of a long valley, where the "
            "road ends in a turning circle beside the church. About 280 people live there, many of them "
            "working in winter at a small ski area with two lifts. The village was first settled in 1316 by "
            "woodcutters. Drossgarth is known for its avalanche wall, a long earth dam built in 1890 after a "
            "disaster destroyed nine houses. The village inn, the Grey Marmot, has been run by the same "
            "family for five generations.",
            "What is the name of the inn in the mountain village Drossgarth?",
            "Grey Marmot",
        ),
    ),
    # ------------------------------------------------------------------ pharmaceutical compounds
    "compounds": (
        _Passage(
            "trx-0982",
            "Compound TRX-0982",
            "TRX-0982 is an experimental pharmaceutical compound developed by the Halvorsen Therapeutics "
            "laboratory in Ostend Harbour as a treatment for chronic migraine. It blocks a receptor in the "
            "blood vessels of the brain and has a half-life of about nine hours. In a trial of 340 patients "
            "that ended in 2019, a daily dose of 25 milligrams cut the number of attacks by nearly half. The "
            "most common side effect was a dry mouth. The project was led by the pharmacologist Dr. Lena "
            "Hartwig, and the compound is now in a larger study.",
            "What was the most common side effect of the compound TRX-0982?",
            "dry mouth",
        ),
        _Passage(
            "blv-3140",
            "Compound BLV-3140",
            "The compound BLV-3140 is an oral drug candidate discovered in 2014 at the Corbin Research Centre "
            "in Falmere for the treatment of rheumatoid arthritis. It works by calming an enzyme that drives "
            "inflammation in the joints. Its half-life is about fourteen hours, so it is taken once a day at "
            "a dose of 10 milligrams. In trials with 510 patients, swelling fell within six weeks, though "
            "some patients reported mild headaches. The chemist Rafael Montoya first made the molecule while "
            "looking for a new dye.",
            "What was the chemist looking for when he first made the compound BLV-3140?",
            "a new dye",
        ),
        _Passage(
            "kmp-7719",
            "Compound KMP-7719",
            "KMP-7719 is a pharmaceutical compound being studied as a treatment for severe asthma. It was "
            "synthesised in 2011 by the Vantree Pharma group in Kellbridge and is given by inhaler twice a "
            "day. The compound relaxes the muscles of the airways for up to twelve hours and has a half-life "
            "of six hours. In a study of 280 patients, it reduced emergency hospital visits by a third. The "
            "trial was run by Dr. Ingrid Falk, who noted that the most common side effect was hoarseness.",
            "How is the compound KMP-7719 given to patients?",
            "by inhaler",
        ),
        _Passage(
            "orz-2056",
            "Compound ORZ-2056",
            "The antiviral compound ORZ-2056 was developed in 2016 by the Halvorsen Therapeutics laboratory "
            "to treat a common winter respiratory virus. It stops the virus from copying its genetic material "
            "inside infected cells. Patients take a single 400 milligram tablet, and the compound has a long "
            "half-life of nearly three days. In a trial with 1,200 volunteers, symptoms cleared about two "
            "days sooner than with a placebo. The lead virologist, Dr. Tobias Renner, found that ORZ-2056 "
            "must be stored below thirty degrees.",
            "How large is the single tablet of the compound ORZ-2056?",
            "400 milligram",
        ),
        _Passage(
            "dxe-4603",
            "Compound DXE-4603",
            "DXE-4603 is an experimental compound for lowering blood pressure, first tested in 2008 at the "
            "Corbin Research Centre. It relaxes the walls of small arteries and has a half-life of about "
            "twenty hours, so a single morning dose of 5 milligrams is enough. In a trial of 650 patients, "
            "blood pressure fell steadily over eight weeks. A few patients had swollen ankles, which was the "
            "main side effect. The work was directed by the cardiologist Dr. Helen Ashgrove, and the compound "
            "is made from an extract of a mountain shrub.",
            "What was the main side effect of the compound DXE-4603?",
            "swollen ankles",
        ),
        _Passage(
            "fnl-8837",
            "Compound FNL-8837",
            "The compound FNL-8837 is a candidate medicine for treating insomnia, developed in 2020 by the "
            "Vantree Pharma group. It gently blocks a wake-promoting signal in the brain and has a short "
            "half-life of three hours, so patients do not feel drowsy in the morning. In a trial with 420 "
            "adults, a 20 milligram dose helped them fall asleep about twenty minutes faster. Vivid dreams "
            "were the most reported side effect. The sleep researcher Dr. Amara Whitlock led the study at a "
            "clinic in Dunsford.",
            "In which town is the clinic where the compound FNL-8837 was studied?",
            "Dunsford",
        ),
    ),
    # ------------------------------------------------------------------ obscure board games
    "board-games": (
        _Passage(
            "quorrix",
            "Quorrix",
            "Quorrix is an obscure abstract board game invented in 1957 by a retired schoolteacher named "
            "Albert Fenwick in the town of Harlow Cross. Two players move twelve wooden discs each across a "
            "hexagonal board of 61 cells. Discs capture by jumping, as in draughts, but a captured disc "
            "changes colour and joins the other side. A player wins by forming an unbroken chain from one "
            "edge of the board to the opposite edge. Only about 3,000 sets were ever made, most of them from "
            "beech wood.",
            "How many cells are there on the board of the game Quorrix?",
            "61",
        ),
        _Passage(
            "talvenhorst",
            "Talvenhorst",
            "Talvenhorst is a strategy board game for three or four players, first published in 1972 by a "
            "small toy maker in Grennich. Each player controls a trading house and sends wooden ships between "
            "islands printed on a square board of nine by nine spaces. Goods are bought and sold with brass "
            "tokens, and storms are decided by a spinning top instead of dice. The designer, Margarethe Voss, "
            "based the rules on the history of her family's shipping firm. A game usually lasts about two "
            "hours.",
            "What decides storms in the board game Talvenhorst?",
            "a spinning top",
        ),
        _Passage(
            "mizzelbrook",
            "Mizzelbrook",
            "Mizzelbrook is a little-known board game for two to six players created in 1984 by the puzzle "
            "writer Denis Arkwright. Players race small pewter hares around a winding track of 88 spaces, "
            "drawing cards that let them leap ahead or send rivals backward. The board is printed on linen "
            "and folds into a cardboard tube. The first player to reach the brook at the centre and return to "
            "the start wins. The game was sold only in the village shop at Pennick Weir, and fewer than 800 "
            "copies survive.",
            "What metal are the playing pieces of the board game Mizzelbrook made of?",
            "pewter",
        ),
        _Passage(
            "serpentade",
            "Serpentade",
            "Serpentade is an old board game for two players that was revived in 1965 by the collector Gwen "
            "Tallis after she found a set in an attic in Lowmarsh. The board is a spiral of 100 squares, and "
            "each player has a single snake made of seven linked ivory segments. Players throw four stick "
            "dice and move their snake head forward, trying to trap the opponent's tail. A snake that is "
            "trapped loses one segment, and the last snake with any segments left wins. Modern sets use "
            "bone-coloured plastic.",
            "How many segments make up each player's snake in the board game Serpentade?",
            "seven",
        ),
        _Passage(
            "kallomach",
            "Kallomach",
            "Kallomach is a board game of war and diplomacy for five players, invented in 1948 by the former "
            "army clerk Viktor Strand in the port of Emmerhaven. The board is a map of an imaginary continent "
            "divided into 42 provinces. Each player commands painted tin soldiers and must make written "
            "treaties with neighbours before attacking. Battles are resolved with a deck of numbered cards "
            "rather than dice. A player wins by holding the ancient capital, Surrow, for three full rounds. "
            "Complete sets are now rare collector's items.",
            "How many provinces are there on the board of the game Kallomach?",
            "42",
        ),
        _Passage(
            "orbinette",
            "Orbinette",
            "Orbinette is a forgotten board game for two players, designed in 1961 by the clockmaker Louise "
            "Berthier in the town of Vareilles. The circular board has three rings of holes, and each player "
            "owns nine glass marbles of a single colour. Players rotate the rings like the dials of a lock to "
            "line up their marbles, and three in a line remove an opposing marble. The first player reduced "
            "to two marbles loses. Berthier made each board by hand from walnut, and only 150 were finished "
            "before her workshop closed.",
            "How many glass marbles does each player own in the board game Orbinette?",
            "nine",
        ),
    ),
    # ------------------------------------------------------------------ ship registry numbers
    "ship-registry": (
        _Passage(
            "lr-40817",
            "Registry number LR-40817",
            "The cargo ship entered under registry number LR-40817 is the coaster Maren Holt, built in 1978 "
            "at the Sundvik shipyard. She is 64 metres long, with a gross tonnage of 1,850 tons, and her home "
            "port is Kessling. For most of her career she carried timber and paper between northern harbours. "
            "Her longest-serving master, Captain Ruth Ellison, commanded her for twenty-two years. In 2009 "
            "the ship was sold, renamed Polar Wren and fitted with a new diesel engine, and she still sails "
            "under the same registry number.",
            "What is the home port of the ship with registry number LR-40817?",
            "Kessling",
        ),
        _Passage(
            "lr-52390",
            "Registry number LR-52390",
            "Registry number LR-52390 belongs to the bulk carrier Aldra Vale, launched in 1985 at the "
            "Grimsholt yards. The ship is 182 metres long, has a gross tonnage of 28,400 tons and is "
            "registered at the port of Tavenmouth. She was built to carry grain and iron ore across the "
            "ocean. In 1997 she ran aground on a sandbank near Cape Lorrin and was towed free after six days. "
            "Her chief engineer for many years was Piet Vandermolen, who kept a detailed logbook of every "
            "voyage.",
            "Near which cape did the ship with registry number LR-52390 run aground?",
            "Cape Lorrin",
        ),
        _Passage(
            "lr-61144",
            "Registry number LR-61144",
            "The vessel recorded under registry number LR-61144 is the passenger ferry Saint Brenna, built in "
            "1991 at the Sundvik shipyard for a short island crossing. She is 96 metres long, has a gross "
            "tonnage of 7,200 tons and can carry 640 passengers and 120 cars. Her home port is Arnholm. The "
            "ferry was commanded for her first decade by Captain Osric Pellam. In 2015 her funnel was "
            "repainted bright yellow to mark the company's centenary, and she still sails three times a day.",
            "What colour was the funnel of the ship with registry number LR-61144 repainted?",
            "bright yellow",
        ),
        _Passage(
            "lr-37025",
            "Registry number LR-37025",
            "Registry number LR-37025 was issued in 1969 to the fishing trawler Kittiwake Star, built of "
            "steel at the Harnby boatyard. She is 38 metres long with a gross tonnage of 620 tons, and her "
            "home port is Scarholm. For thirty years she fished for cod on the northern banks under skipper "
            "Duncan Ferrier. The trawler was retired in 2001 and is now moored as a floating museum, where "
            "visitors can see her original steam winch and fish hold.",
            "Which fish did the ship with registry number LR-37025 catch?",
            "cod",
        ),
        _Passage(
            "lr-78563",
            "Registry number LR-78563",
            "The tanker listed under registry number LR-78563 is the Orla Brandt, built in 2004 at the "
            "Grimsholt yards. She is 144 metres long, has a gross tonnage of 16,900 tons and is registered in "
            "the port of Velmar. The ship carries vegetable oils and chemicals in twelve coated tanks. In 2012 "
            "she rescued nine crew members from a sinking yacht during a storm, and her master, Captain Sofia "
            "Lindgren, received a medal for the rescue. The tanker is painted dark red with a white "
            "superstructure.",
            "How many crew members did the ship with registry number LR-78563 rescue from a yacht?",
            "nine",
        ),
        _Passage(
            "lr-29408",
            "Registry number LR-29408",
            "Registry number LR-29408 belongs to the sail training ship Northern Lark, a three-masted "
            "schooner built in 1958 at the Harnby boatyard. She is 52 metres long, has a gross tonnage of 410 "
            "tons and her home port is Dunmarrow. Each summer she takes about forty young trainees on voyages "
            "along the coast. Her hull is made of oak planks on steel frames. The ship was restored in 1993 "
            "under the direction of the shipwright Alan Crosthwaite, who replaced all three masts with "
            "Douglas fir.",
            "Which wood were the masts of the ship with registry number LR-29408 replaced with?",
            "Douglas fir",
        ),
    ),
    # ------------------------------------------------------------------ software error codes
    "error-codes": (
        _Passage(
            "e0x7f3a",
            "Error code E0x7F3A",
            "Error code E0x7F3A appears in the Halcyon Sync desktop client when a folder cannot be uploaded "
            "because a file is locked by another program. It was introduced in version 4.2, released in 2017. "
            "The client writes the details to a log file called sync_trace.log in the user's home folder. The "
            "usual cause is a spreadsheet left open in an office suite. The documented fix is to close the "
            "program holding the file and press the Retry button. Support engineer Marta Kowal wrote the "
            "original help article for this error.",
            "What is the usual cause of the error E0x7F3A?",
            "a spreadsheet left open",
        ),
        _Passage(
            "e0x2b91",
            "Error code E0x2B91",
            "The error E0x2B91 is raised by the Halcyon Sync server when a client's security certificate has "
            "expired. It was added in version 3.8 in 2015 to replace a vague connection warning. When it "
            "occurs, the server refuses the connection and records the event in a file named cert_audit.log. "
            "The fix is to renew the certificate in the admin console and restart the client. The error "
            "often appears on the first day of a month, because many certificates are issued for exactly one "
            "year. Developer Jonas Pettersen designed the check.",
            "Which log file records the error E0x2B91?",
            "cert_audit.log",
        ),
        _Passage(
            "e0x5c04",
            "Error code E0x5C04",
            "Error code E0x5C04 is shown by the Halcyon Sync mobile app when the phone runs out of free "
            "storage during a download. The code dates from version 2.1 of the app, released in 2013. A "
            "partly downloaded file is kept in a hidden cache folder so that the transfer can resume later. "
            "The recommended fix is to free at least 500 megabytes and reopen the app. According to the "
            "support lead, Priya Raman, this is the most frequently reported error on older phones with small "
            "memory cards.",
            "How much space should be freed to fix the error E0x5C04?",
            "500 megabytes",
        ),
        _Passage(
            "e0x9d17",
            "Error code E0x9D17",
            "E0x9D17 is an error code reported by the Halcyon Sync client when two devices change the same "
            "file at the same moment and the server cannot decide which copy to keep. It was introduced in "
            "version 5.0 in 2019 along with a new conflict screen. The client saves both copies and adds the "
            "word conflicted to the name of the older one. The fix is to open both files, merge the changes "
            "by hand and delete the extra copy. The conflict logic was written by the engineer Tomasz "
            "Wieczorek.",
            "Which word does the client add to a file name after the error E0x9D17?",
            "conflicted",
        ),
        _Passage(
            "e0x3a6e",
            "Error code E0x3A6E",
            "The error E0x3A6E occurs in the Halcyon Sync desktop client when the user's password has been "
            "changed on another device and the saved login is no longer valid. It first appeared in version "
            "4.0 in 2016. The client pauses all transfers and shows a small red padlock icon in the system "
            "tray. The fix is to sign out, sign in again with the new password and wait for the folder list "
            "to refresh. This error was first reported by a tester in Lisbon, Carla Menezes, during a beta "
            "programme.",
            "What icon does the client show in the tray when the error E0x3A6E occurs?",
            "red padlock",
        ),
        _Passage(
            "e0x1f88",
            "Error code E0x1F88",
            "Error code E0x1F88 is produced by the Halcyon Sync server when a single upload exceeds the size "
            "limit set by the administrator, which is 20 gigabytes by default. The code was introduced in "
            "version 3.2 in 2014. The rejected file stays on the user's computer, and a message explains the "
            "limit. The fix is either to split the file into smaller parts or to ask the administrator to "
            "raise the limit in the quota settings. The product manager Oliver Grange chose the default limit "
            "after a survey of business customers.",
            "What is the default size limit behind the error E0x1F88?",
            "20 gigabytes",
        ),
    ),
}

FAMILIES: list[str] = list(_CORPUS)
"""The eight families, as slugs: the folder names under ``docs/`` and the first part of every doc id."""


def _doc_id(family: str, p: _Passage) -> str:
    return f"{family}/{p.slug}"


def passages() -> list[dict]:
    """The 48 passages, ``{"doc_id": "<family>/<slug>", "title", "text"}``, family by family."""
    return [
        {"doc_id": _doc_id(family, p), "title": p.title, "text": p.text}
        for family, items in _CORPUS.items()
        for p in items
    ]


def questions() -> list[dict]:
    """One question per passage, ``{"question", "answer", "doc_id"}``; the answer is a phrase of the passage."""
    return [
        {"question": p.question, "answer": p.answer, "doc_id": _doc_id(family, p)}
        for family, items in _CORPUS.items()
        for p in items
    ]


def write_prose_corpus(root: str | Path) -> tuple[Path, Path]:
    """Write <root>/docs/<family>/<slug>.txt (title line, blank line, text) and <root>/qa.jsonl
    (question, answer, doc_id per line); return (docs_dir, qa_file).

    Rewriting into the same root is fine; a document file there that is not one of ours is refused,
    because ragft's local loader would read it as part of the corpus.
    """
    root = Path(root)
    docs_dir = root / "docs"
    qa_file = root / "qa.jsonl"
    ours = {Path(*d["doc_id"].split("/")).with_suffix(".txt") for d in passages()}
    if docs_dir.is_dir():
        foreign = sorted(
            p.relative_to(docs_dir).as_posix()
            for p in docs_dir.rglob("*")
            if p.is_file() and p.relative_to(docs_dir) not in ours
        )
        if foreign:
            raise ValueError(
                f"{docs_dir}: holds files that are not part of the prose corpus ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}). Fix: write the corpus into an empty folder."
            )
    for doc in passages():
        path = docs_dir / Path(*doc["doc_id"].split("/")).with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    qa_file.write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions()),
        encoding="utf-8",
    )
    return docs_dir, qa_file
