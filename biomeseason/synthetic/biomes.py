"""The biomes of synthetic scenes: file prefixes, colour anchors and each biome's month tables.

The tables are data; ``season`` reads them at a scene's day and
``features`` paints what they say.

Seasonal cues by biome (months at the reference place; the month-by-month
numbers are the tables in ``BIOMES``; "sun" is the noon elevation range)
--------------------------------------------------------------------------------
biome, place              months   what the scene shows
------------------------  -------  ---------------------------------------------------
Boreal                    Dec-Feb  full snow, conifers speckle it grey-green; lakes
Manicouagan, Quebec                frozen and white from mid-Dec; long shadows
51.4N, sun 15-62 deg      Mar-May  snow to April, melting in May; ice out mid-May;
                                   birch and aspen leaf out late May
                          Jun-Aug  dark conifers, lighter birch/aspen, green-brown
                                   bogs, blue lakes (sometimes the 70 km ring lake)
                          Sep-Nov  birch/aspen yellow late Sep-early Oct, bare after;
                                   first snow late Oct, about 60% by mid-Nov
Deciduous                 Dec-Feb  leaf-off grey-brown ridges; snow after storms,
Appalachian ridges, PA             fields first; rivers partly frozen
40.5N, sun 26-73 deg      Mar-May  leaf-off to April; patchy light-green green-up late
                                   Apr-May; winter wheat green, maize fields bare
                          Jun-Aug  full dark-green canopy; green, golden (wheat) and
                                   stubble fields in the valleys; summer haze
                          Sep-Nov  colour peaks mid-late Oct (red, orange, yellow in
                                   patches); brown leaves, then bare, in Nov
DV                        Dec-Feb  tan fans, dark ranges, white playa; snow on the
Death Valley / Mojave              highest peaks; shallow lake on the playa after
36.5N, sun 30-77 deg               winter storms; long shadows, strong relief
                          Mar-May  faint green on fans and in washes after winter
                                   rain (Feb-Apr); the snow leaves the peaks
                          Jun-Aug  high sun, flat light; dusty haze peaks Jul-Aug;
                                   a few monsoon thunderstorm clouds
                          Sep-Nov  little change: tan and brown as the sun sinks
Rainforest                Dec-Feb  main dry season: least cloud, small cumulus; smoke
Congo basin                        haze from fires north of the equator (peak Jan);
1.5N, sun 65-90 deg                leaf turnover in some crowns; rivers high, falling
(sun is a weak cue here)  Mar-May  long rains: cloud peaks in Apr, large systems;
                                   light-green leaf flush Feb-Mar; rivers low in
                                   Mar-Apr (sandbars), up again in May
                          Jun-Aug  shorter dry spell: less cloud; smoke from fires
                                   south of the equator (Aug-Sep); rivers lowest Jul
                          Sep-Nov  second rains, heaviest cloud Oct-Nov; rivers
                                   brown, rising to the Dec maximum; swamps flooded
TropGrass                 Dec-Feb  short rains/short dry spell: short green grass,
Serengeti / Lake Victoria          patchy tan where storms missed in Dec; pans full
2.5S, sun 64-90 deg       Mar-May  long rains (Apr wettest): greenest, cloudiest,
                                   rivers brown and high, most pans and pools
                          Jun-Aug  dry season: grass cures golden then tan; fresh
                                   black burn scars Jun-Sep; woodland leafless;
                                   dust and smoke haze; pans dry up
                          Sep-Nov  bare tan, grey old scars, haze until the short
                                   rains green it in patches from Nov
Tundra                    Dec-Feb  snow on all but the valley floors; lakes frozen
European Alps, above               deep shadows from a low sun
the tree line             Mar-May  snow recedes upslope from May; meadows emerge brown
46.5N, sun 20-67 deg      Jun-Aug  green then brown-green meadows, grey rock, snow
                                   only high up; glaciers stay white
                          Sep-Nov  fresh snow from late Sep; larches gold in Oct;
                                   most ground white again by Nov
USGrass                   Dec-Feb  dormant tan prairie; snow comes and goes (little in
Great Plains, Lake Oahe            Dec); the reservoir frozen from about the New Year
South Dakota              Mar-May  ice out Mar-Apr; green-up Apr-May; wheat and maize
44.5N, sun 22-69 deg               fields bare, then green
                          Jun-Aug  peak green in June (cool-season grasses), curing
                                   golden Jul-Aug; crop patchwork green, gold, stubble
                          Sep-Nov  tan and brown; harvested stubble; first snow Nov

Sources checked for the figures above (general knowledge elsewhere):

- Noon sun elevation: 90 deg - |latitude - solar declination|, declination
  from the standard cosine approximation (Cooper 1969).
- Manicouagan Reservoir (Wikipedia): 51.4N, 70 km annular lake in boreal
  forest on the Canadian Shield. Ice season of a northern Quebec reservoir
  "from mid-December to mid-May": Tremblay & Begin 2005, Ecoscience 12(4),
  "The effects of snow packing on tree growth forms on an island in a
  recently created reservoir in northern Quebec".
- Pennsylvania fall foliage reports (PA Department of Conservation and
  Natural Resources, as reported by the press): northern and high ground
  peak in the first half of October, the south-east in the third or fourth
  week of October.
- Death Valley: Telescope Peak (3,368 m, Panamint Range) is snow-capped in
  winter; Badwater Basin holds an ephemeral lake (Lake Manly) after winter
  storms, e.g. Feb 2005 (Los Angeles Times, "Ancient shore") and Feb 2024
  (NASA SWOT measurements as reported in the press).
- Congo basin: Nicholson, "Congo Basin Hydrology, Climate, and
  Biogeochemistry" (AGU Monograph 2022), ch. 3: at 0-5N the rains are
  bimodal (MAM and SON) and the dry season is Dec-Feb. Britannica, "Congo
  River - Hydrology": at Kinshasa the main maximum at the end of the year,
  a secondary one in May, the major low in July and a secondary low in
  Mar-Apr. NASA Earth Observatory, "Fires in West Africa" and "Fires in
  Central Africa": burning north of the equator peaks Dec-Feb, south of it
  in the May-Oct dry season. Kearsley et al. 2024, Plant-Environment
  Interactions, "Historical tree phenology data reveal the seasonal rhythms
  of the Congo Basin rainforest" (Yangambi, 0.8N): leaf turnover of
  deciduous species triggered by the dry season.
- Serengeti (climate normals at Ikoma, climatestotravel.com): rain per month
  80, 100, 130, 155, 90, 35, 15, 30, 55, 70, 115, 105 mm (Jan-Dec); sun at
  the zenith mid-March and late September. Early dry-season management burns
  from June, smoke and dust through the dry season (June-October).
- Alps: snow depth and duration declining but still Nov-May below 2,000 m
  (Matiu et al. 2021, The Cryosphere, "Observed snow depth trends in the
  European Alps: 1971 to 2019"); summer snow line near 3,000 m.
- Great Plains: cool-season (C3) grasses give about 77% of production in
  South Dakota mixed-grass prairie, so it peaks green in May-June and cures
  in July-August (Rigge et al. 2013, Rangeland Ecology & Management, "Linking
  phenology and biomass productivity in South Dakota mixed-grass prairie").
  Lake Oahe rarely freezes before the New Year (Capital Journal, Pierre,
  Dec 2022); lake ice-out in eastern South Dakota between early March and
  early May (Lake Kampeska records).
"""
from __future__ import annotations

FILE_PREFIX = {
    "boreal_forest": "Boreal",
    "temperate_deciduous_forest": "Deciduous",
    "desert": "DV",
    "tropical_rainforest": "Rainforest",
    "tropical_grassland": "TropGrass",
    "tundra": "Tundra",
    "temperate_grassland": "USGrass",
}

# Colour anchors (sRGB as seen from orbit); the month tables mix them.
COLOURS = {
    "conifer": (36, 56, 36), "broadleaf": (50, 82, 38), "fresh": (118, 150, 68),
    "yellow": (186, 158, 62), "autumn": (165, 82, 40), "orange": (182, 118, 48),
    "leafoff": (108, 98, 84), "brownleaf": (128, 98, 70),
    "bog": (112, 116, 74), "bogbrown": (132, 112, 84),
    "green": (92, 124, 58), "lush": (70, 116, 44), "golden": (188, 162, 104),
    "tan": (168, 146, 110), "bare": (142, 116, 90), "stubble": (186, 170, 130),
    "burnt": (52, 48, 44), "scar": (96, 90, 80),
    "fan": (180, 160, 140), "fangreen": (166, 162, 132), "darkrock": (98, 82, 70),
    "redrock": (140, 100, 80), "salt": (232, 230, 222), "rock": (128, 126, 122),
    "meadow": (98, 124, 64), "meadowbrown": (138, 124, 90), "larch": (176, 140, 60),
    "canopy": (30, 64, 32), "canopy2": (40, 74, 36), "flush": (84, 124, 52),
    "turnover": (96, 88, 60), "swamp": (24, 48, 30), "clearing": (120, 130, 80),
    "acacia": (70, 84, 48), "leafless": (112, 104, 88), "sand": (196, 180, 140),
    "snow": (246, 248, 252), "glacier": (222, 234, 242), "water": (22, 42, 56),
    "turbid": (128, 100, 66), "ice": (206, 214, 224), "playa_water": (120, 156, 164),
}
WHITES = ("snow", "glacier", "salt", "ice")
HAZE_COLOURS = {"blue": (186, 198, 214), "smoke": (176, 170, 158), "dust": (206, 186, 150)}

# Per biome:
#   lat             latitude of the reference place (noon sun elevation)
#   slope, crests   typical terrain slope; sharp ridged crests (mountains)
#   ridges          (min, max) stretch of terrain along a random direction
#   water, rivers   lake share of the scene; river half-width in px at 256 px
#                   (Lake Oahe is a dammed river, hence a wide one)
#   texture         amplitude of fine brightness texture
#   snow_by_height  1: snow lies on high ground first; 0: in patches
#   month tables    mid-month values, Jan..Dec, percent: snow (share of land),
#                   ice (of lakes), cloud, cells (100 small cumulus, 0 large
#                   systems), haze, burn (fresh scars), river_level (width, mud),
#                   lakes (seasonal pans, of the full share), wash_green and
#                   playa_water (desert)
#   cover           (name, field, lo, hi, snow visibility, colours by month):
#                   the class takes the free pixels whose `field` quantile lies
#                   in [lo, hi); "fields" is a farm patchwork on a share hi of
#                   the free grid cells, coloured by `crops`; "rest" takes what
#                   is left. 'a/b' in a month splits the class's pixels into
#                   patches of the phase field (farm fields: field by field), so
#                   green-up and autumn colour advance in patches.
BIOMES = {
    "boreal_forest": dict(
        lat=51.4, slope=0.12, water=0.12, rivers=3.0, texture=0.14, haze_colour="blue", ring=0.3,
        snow=[100, 100, 100, 92, 40, 0, 0, 0, 0, 8, 60, 95], snow_by_height=0.2,
        ice=[100, 100, 100, 100, 55, 0, 0, 0, 0, 0, 10, 60],
        cloud=[20, 18, 18, 18, 20, 22, 24, 22, 22, 25, 28, 24],
        cells=[40, 40, 40, 50, 60, 70, 70, 70, 60, 50, 40, 40],
        haze=[4, 4, 4, 4, 5, 8, 10, 8, 5, 4, 4, 4],
        cover=[
            ("bog", "patch", 0.0, 0.12, 1.0,
             "bogbrown bogbrown bogbrown bogbrown bogbrown bog/bogbrown bog bog bog/bogbrown "
             "bogbrown bogbrown bogbrown"),
            ("birch and aspen", "patch", 0.78, 1.0, 0.85,
             "leafoff leafoff leafoff leafoff leafoff/fresh fresh/broadleaf broadleaf broadleaf "
             "broadleaf/yellow yellow/leafoff leafoff leafoff"),
            ("conifer", "rest", 0, 1, 0.7, "conifer " * 12),
        ]),
    "temperate_deciduous_forest": dict(
        lat=40.5, slope=0.5, ridges=(2.5, 4.0), water=0.02, rivers=4.0, texture=0.12, haze_colour="blue",
        snow=[45, 40, 15, 1, 0, 0, 0, 0, 0, 0, 3, 20], snow_by_height=0.5,
        ice=[40, 30, 5, 0, 0, 0, 0, 0, 0, 0, 0, 10],
        cloud=[30, 30, 30, 30, 28, 25, 25, 25, 20, 20, 28, 30],
        cells=[30, 30, 40, 50, 60, 80, 80, 80, 70, 50, 40, 30],
        haze=[5, 5, 5, 6, 8, 14, 18, 16, 10, 6, 5, 5],
        cover=[
            ("ridge forest", "height", 0.42, 1.0, 0.75,
             "leafoff leafoff leafoff leafoff/leafoff/fresh fresh/broadleaf broadleaf broadleaf broadleaf "
             "broadleaf/broadleaf/yellow autumn/orange/yellow brownleaf/leafoff leafoff"),
            ("fields", "fields", 0, 0.75, 1.0, None),
            ("woodlots", "rest", 0, 1, 0.75,
             "leafoff leafoff leafoff leafoff/fresh fresh/broadleaf broadleaf broadleaf broadleaf "
             "broadleaf/yellow autumn/orange brownleaf/leafoff leafoff"),
        ],
        crops=[  # pasture and hay; maize; winter wheat
            "tan tan tan/green green/tan green green green green/tan green green/tan tan tan",
            "bare bare bare bare bare bare/green green green green/golden golden/stubble stubble bare",
            "green/tan green/tan green/tan green green green/golden golden stubble stubble bare/green "
            "green/bare green/tan",
        ]),
    "desert": dict(
        lat=36.5, slope=0.55, crests=0.3, ridges=(1.5, 2.5), water=0.0, rivers=0.0, texture=0.06,
        haze_colour="dust",
        snow=[14, 14, 9, 4, 1, 0, 0, 0, 0, 0, 2, 9], snow_by_height=1.0,
        cloud=[12, 14, 10, 6, 3, 2, 8, 10, 5, 3, 5, 10],
        cells=[20, 20, 30, 50, 60, 80, 90, 90, 80, 60, 40, 20],
        haze=[3, 3, 4, 5, 8, 14, 22, 22, 14, 7, 4, 3],
        wash_green=[5, 30, 60, 45, 10, 0, 0, 0, 0, 0, 0, 0],
        playa_water=[25, 30, 15, 4, 0, 0, 0, 0, 0, 0, 2, 12],
        cover=[
            ("playa", "height", 0.0, 0.12, 1.0, "salt " * 12),
            ("mountains", "height", 0.62, 1.0, 0.95, "darkrock/darkrock/redrock " * 12),
            ("fans", "rest", 0, 1, 1.0,
             "fan fan/fan/fan/fangreen fan/fan/fangreen fan/fan/fangreen fan/fan/fan/fangreen "
             "fan fan fan fan fan fan fan"),
        ]),
    "tropical_rainforest": dict(
        lat=1.5, slope=0.12, water=0.0, rivers=8.0, texture=0.18, haze_colour="smoke",
        cloud=[20, 25, 45, 60, 50, 30, 25, 30, 50, 65, 60, 35],
        cells=[90, 80, 50, 20, 30, 60, 80, 70, 40, 10, 20, 60],
        haze=[35, 30, 15, 6, 5, 6, 12, 22, 20, 8, 5, 22],
        river_level=[70, 50, 30, 30, 55, 40, 20, 25, 45, 65, 85, 95],
        cover=[
            ("swamp forest", "height", 0.0, 0.15, 0, "swamp " * 12),
            ("clearings", "patch", 0.95, 1.0, 0, "clearing " * 12),
            ("canopy", "rest", 0, 1, 0,
             "canopy/canopy2/canopy/turnover canopy/canopy2/turnover/flush canopy/flush/canopy2/flush "
             "canopy/canopy2/canopy/flush canopy/canopy2 canopy/canopy2 canopy/canopy2/canopy/turnover "
             "canopy/canopy2/canopy/turnover canopy/canopy2 canopy/canopy2 canopy/canopy2 "
             "canopy/canopy2/canopy/turnover"),
        ]),
    "tropical_grassland": dict(
        lat=-2.5, slope=0.12, water=0.06, rivers=2.5, texture=0.10, haze_colour="dust",
        cloud=[28, 30, 40, 55, 35, 15, 10, 12, 15, 20, 40, 40],
        cells=[60, 60, 40, 20, 40, 70, 90, 90, 80, 70, 40, 40],
        haze=[5, 5, 4, 4, 4, 10, 16, 20, 22, 18, 8, 5],
        burn=[0, 0, 0, 0, 0, 6, 14, 16, 10, 5, 0, 0],
        river_level=[30, 30, 45, 75, 70, 35, 15, 10, 10, 15, 40, 45],
        lakes=[60, 60, 70, 100, 100, 70, 40, 25, 20, 20, 40, 55],
        cover=[
            ("woodland", "patch", 0.8, 1.0, 0,
             "green green acacia/green green green acacia acacia/leafless leafless leafless leafless "
             "acacia acacia/green"),
            ("grass", "rest", 0, 1, 0,
             "green green/fresh lush/green lush lush/green green/golden golden golden/tan tan/scar "
             "tan/bare tan/tan/fresh green/fresh/tan"),
        ]),
    "tundra": dict(
        lat=46.5, slope=0.9, crests=0.5, water=0.02, rivers=2.0, texture=0.10, haze_colour="blue",
        snow=[92, 95, 92, 85, 65, 35, 12, 6, 12, 35, 70, 88], snow_by_height=0.85,
        ice=[100, 100, 100, 100, 80, 30, 0, 0, 0, 10, 50, 95],
        cloud=[25, 25, 30, 35, 35, 30, 28, 28, 25, 25, 30, 25],
        cells=[30, 30, 30, 40, 60, 80, 80, 80, 60, 40, 30, 30],
        haze=[3, 3, 3, 4, 5, 6, 8, 8, 5, 4, 3, 3],
        cover=[
            ("glacier", "height", 0.92, 1.0, 1.0, "glacier " * 12),
            ("rock", "height", 0.62, 0.92, 0.9, "rock " * 12),
            ("valley forest", "height", 0.0, 0.15, 0.6,
             "conifer conifer conifer conifer conifer conifer conifer conifer conifer conifer/larch "
             "conifer/leafoff conifer"),
            ("meadow", "rest", 0, 1, 1.0,
             "meadowbrown meadowbrown meadowbrown meadowbrown meadowbrown/meadow meadow meadow "
             "meadow/meadowbrown meadowbrown meadowbrown meadowbrown meadowbrown"),
        ]),
    "temperate_grassland": dict(
        lat=44.5, slope=0.15, water=0.04, rivers=7.0, texture=0.08, haze_colour="blue",
        snow=[60, 60, 30, 5, 0, 0, 0, 0, 0, 1, 15, 30], snow_by_height=0.1,
        ice=[85, 95, 50, 5, 0, 0, 0, 0, 0, 0, 0, 15],
        cloud=[25, 25, 30, 30, 30, 25, 18, 15, 15, 20, 25, 25],
        cells=[30, 30, 40, 50, 60, 80, 90, 90, 70, 50, 30, 30],
        haze=[4, 4, 5, 6, 8, 10, 14, 14, 10, 6, 4, 4],
        cover=[
            ("fields", "fields", 0, 0.55, 1.0, None),
            ("prairie", "rest", 0, 1, 1.0,
             "tan tan tan tan/green green green/lush green/golden golden/tan tan tan tan tan"),
        ],
        crops=[  # spring wheat; maize and sunflower; hay and range
            "bare bare bare bare/green green green golden/green golden/stubble stubble stubble bare bare",
            "bare bare bare bare bare green/bare green green green/golden golden stubble bare",
            "tan tan tan tan/green green green/lush green/golden golden/tan tan tan tan tan",
        ]),
}
