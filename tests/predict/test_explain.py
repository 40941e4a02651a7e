"""What a researcher reads at a glance: the figure of a photo with a place (the world map; the image alone,
the place alone, both), the demo's closing figure (its model beside the shipped one), and the interactive
view of predict.ipynb driven as a click would drive it."""
from __future__ import annotations

import dataclasses
import datetime
import html
import io
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from test_predict import BIOMES, make_checkpoint, placed_model, random_image, save

from biomeseason import demo
from biomeseason.predict import explain
from biomeseason.predict.browse import browse
from biomeseason.predict.predictor import Predictor, load_model

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = ROOT / "data" / "bluemarble" / demo.HELDOUT_TILE


def toy_map() -> np.ndarray:
    """A pixel a degree, rows from 90 N: tundra north of 60 N, desert at 15-35 N, rainforest on the equator,
    deciduous forest west and grassland east at 40-50 N; water elsewhere (nothing south of 10 S)."""
    codes = np.full((180, 360), 255, np.uint8)
    codes[0:30] = 0
    codes[55:75] = 1
    codes[85:95] = 2
    codes[40:50, :180], codes[40:50, 180:] = 3, 4
    return codes


@pytest.fixture(scope="module")
def placed(tmp_path_factory) -> Predictor:
    """A tiny model with the Earth's prior of ``toy_map``."""
    return placed_model(tmp_path_factory.mktemp("placed") / "best.pt", toy_map())


@pytest.fixture
def photo(tmp_path) -> Path:
    return save(random_image(), tmp_path / "photo.png")


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def colour_bars(fig) -> list:
    return [ax for ax in fig.axes if ax.get_ylabel().startswith("evidence")]


# --------------------------------------------------------------------------- the figure of one photo

def test_the_figure_shows_what_the_image_and_the_place_each_said(placed, photo):
    alone = placed.predict(photo)[0]
    result = placed.predict(photo, lat=45.0, lon=-90.0)[0]
    # The image's own answer rides on the result, beside the answer given the place.
    assert result.image_biome_probs == pytest.approx(alone.biome_probs)
    assert alone.image_biome_probs == pytest.approx(alone.biome_probs)
    place = explain.place_alone(placed, result)
    like = placed.geo.likelihood([45.0], [-90.0])[0]
    assert [place[b] for b in BIOMES] == pytest.approx(like / like.sum())
    assert max(place, key=place.get) == "temperate_deciduous_forest"   # the west of the toy map's 40-50 N

    fig = explain.plot_prediction(photo, result, explain.grad_cams(placed, photo, result), place=place)
    shown = titles(fig)
    assert "where it was taken\n45.0° N, 90.0° W" in shown
    pretty = {b: b.replace("_", " ") for b in BIOMES}
    assert f"the image alone:\n{pretty[alone.biome]} {alone.biome_p:.2f}" in shown
    best = "temperate_deciduous_forest"
    assert f"the place alone:\n{pretty[best]} {place[best]:.2f}" in shown
    assert f"both together:\n{pretty[result.biome]} {result.biome_p:.2f}" in shown
    world = fig.axes[shown.index("where it was taken\n45.0° N, 90.0° W")]
    assert world.images and any(list(line.get_xdata()) == [-90.0] and list(line.get_ydata()) == [45.0]
                                for line in world.lines)
    # The three panels draw every biome, in one order, with the probabilities of each answer.
    panels = [fig.axes[i] for i, t in enumerate(shown) if t.split(":")[0] in
              ("the image alone", "the place alone", "both together")]
    order = [t.get_text() for t in panels[0].get_yticklabels()]
    for ax, probs in zip(panels, (alone.biome_probs, place, result.biome_probs)):
        widths = [bar.get_width() for bar in ax.patches]
        assert len(widths) == len(BIOMES)
        assert widths == pytest.approx([probs[b.replace(" ", "_")] for b in order])
    assert len(colour_bars(fig)) == 2 and fig.get_suptitle() == "photo.png"   # the name, not the folders

    plain = explain.plot_prediction(photo, alone)
    assert not [t for t in titles(plain) if t.startswith(("where it was taken", "the image alone"))]
    kind = explain.plot_prediction(photo, dataclasses.replace(alone, camera="photo"))
    assert kind.get_suptitle() == "photo.png (read by the model's photo kind)"


def test_a_latitude_alone_is_a_line_and_a_place_the_map_knows_nothing_of_says_so(placed, photo):
    north = placed.predict(photo, lat=70.0)[0]
    place = explain.place_alone(placed, north)
    assert max(place, key=place.get) == "tundra"
    fig = explain.plot_prediction(photo, north, place=place)
    shown = titles(fig)
    world = fig.axes[shown.index("where it was taken\n70.0° N")]
    assert any(list(line.get_ydata()) == [70.0, 70.0] for line in world.lines)
    assert any(t.startswith("the latitude alone:\ntundra") for t in shown)

    south = placed.predict(photo, lat=-70.0)[0]          # no land at 70 S on the toy map
    assert explain.place_alone(placed, south) is None
    assert "the latitude alone: nothing known" in titles(explain.plot_prediction(photo, south, place=None))


def test_the_notebook_cell_draws_the_place_row_when_a_place_is_given(placed, photo, capsys, monkeypatch):
    drawn = []
    monkeypatch.setattr(explain.plt, "show", lambda: drawn.append(explain.plt.gcf()))
    result = explain.show_prediction(placed, photo, lat=45.0, lon=90.0)
    assert result.summary() in capsys.readouterr().out and result.biome == "temperate_grassland"
    assert any(t.startswith("the place alone:\ntemperate grassland") for t in titles(drawn[0]))
    explain.plt.close("all")


def test_the_notebook_reads_a_photo_at_its_footprint_and_explains_that_view(tmp_path, photo, capsys, monkeypatch):
    monkeypatch.setattr(explain.plt, "show", lambda: None)
    scaled = load_model(make_checkpoint(tmp_path / "earth.pt", km_per_pixel=7.4))
    explained = []
    cams = explain.grad_cams
    monkeypatch.setattr(explain, "grad_cams",
                        lambda p, image, result: explained.append(image) or cams(p, image, result))
    told = explain.show_prediction(scaled, photo, footprint_km=300.0)   # 300 km at 7.4 km a pixel: 41 px across
    assert told.biome_probs == pytest.approx(scaled.predict(photo, footprint_km=300.0)[0].biome_probs, abs=1e-6)
    assert told.biome_probs != pytest.approx(scaled.predict(photo)[0].biome_probs, abs=1e-6)
    assert max(explained[-1].size) == 41                                # the heat maps explain the view answered
    explain.show_prediction(scaled, photo)
    assert explained[-1].size == (48, 40)                                # without a footprint: the image as it is
    view = browse(scaled, photo.parent, image=photo, footprint_km=300.0)
    assert view.result.biome_probs == pytest.approx(told.biome_probs, abs=1e-6)
    # a model that does not know the ground scale: one sentence naming the setting to edit
    plain = load_model(make_checkpoint(tmp_path / "plain.pt"))
    assert explain.show_prediction(plain, photo, footprint_km=60.0) is None
    assert "edit FOOTPRINT_KM and run again" in capsys.readouterr().out
    explain.plt.close("all")


# --------------------------------------------------------------------------- the demo's closing figure

def test_the_demos_figure_shows_the_shipped_models_answer_beside_its_own(placed, tmp_path, monkeypatch):
    own = load_model(make_checkpoint(tmp_path / "demo.pt", seed=1))      # a model with no prior
    shipped = placed.path
    seen = {}
    plot = explain.plot_comparison

    def spy(image, answers, truth=None, title=None):
        seen.update(answers=answers, truth=truth, title=title)
        seen["fig"] = fig = plot(image, answers, truth, title)
        fig.savefig(io.BytesIO())   # drawn whole, as save_figure will
        return fig

    monkeypatch.setattr(explain, "plot_comparison", spy)
    target = demo.save_heldout_figure(HELDOUT, own, tmp_path / "plots" / "heldout_prediction.png", tta=False,
                                      shipped=shipped)
    assert target.is_file() and Image.open(target).size[0] > 1000
    names = [name for name, *_ in seen["answers"]]
    assert names == ["this demo's model", f"shipped {shipped.name}"]
    by_name = {name: (result, note) for name, result, _, note in seen["answers"]}
    assert by_name[names[1]][0].summary() == load_model(shipped).predict(HELDOUT)[0].summary()
    assert by_name[names[0]][0].summary() == own.predict(HELDOUT)[0].summary()
    given = load_model(shipped).predict(HELDOUT, lat=49.93, lon=21.2)[0]
    assert by_name[names[1]][1] == f";  given the place: {given.biome.replace('_', ' ')} ({given.biome_p:.2f})"
    assert by_name[names[0]][1] == ""                                  # no prior, no answer given the place
    assert seen["truth"] == "temperate_deciduous_forest, Oct"
    assert seen["title"] == ("Deciduous_europe-carpathian-0585-3002_Oct.png · europe-carpathian (49.9° N, 21.2° E) "
                             "· October")
    fig = seen["fig"]
    rows = [sub.get_suptitle() for sub in fig.subfigs]
    assert rows[0].startswith("this demo's model: ") and rows[1].startswith(f"shipped {shipped.name}: ")
    assert len(colour_bars(fig)) == 4                                  # both heat maps of both models
    assert sum(ax.get_xlabel() == "true: temperate deciduous forest, Oct" for ax in fig.axes) == 2


def test_the_demo_reads_its_tiles_with_the_composite_kind_of_a_shipped_model_of_two(placed, tmp_path, monkeypatch):
    from test_kinds import both_kinds

    _, both = both_kinds(placed.path, tmp_path)
    seen, plot = {}, explain.plot_comparison
    monkeypatch.setattr(explain, "plot_comparison", lambda image, answers, truth=None, title=None:
                        seen.update(answers=answers) or plot(image, answers, truth, title))
    demo.save_heldout_figure(HELDOUT, placed, tmp_path / "plots" / "figure.png", tta=False, shipped=both)
    shipped = seen["answers"][1][1]
    composite, other = (load_model(both, camera=k).predict(HELDOUT)[0] for k in ("composite", "photo"))
    assert shipped.camera == "composite" and shipped.biome_probs == composite.biome_probs
    assert other.biome_probs != composite.biome_probs   # the kinds differ here: the test can tell them apart


# --------------------------------------------------------------------------- the interactive view

def gps_jpeg(path: Path, lat: float, lon: float, seed: int = 7) -> Path:
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = ("S" if lat < 0 else "N"), (abs(lat), 0.0, 0.0)
    gps[3], gps[4] = ("W" if lon < 0 else "E"), (abs(lon), 0.0, 0.0)
    random_image(seed=seed).save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    for i, name in enumerate(("a.png", "b.png", "trip/c.png")):
        save(random_image(seed=10 + i), photos / name)
    gps_jpeg(photos / "placed.jpg", 45.0, 90.0)
    (photos / "broken.jpg").write_text("not a jpeg")
    return photos


def test_the_view_redraws_when_another_photo_is_picked(placed, folder):
    view = browse(placed, folder, image=folder / "b.png")
    assert [label for label, _ in view.choice.options] == ["a.png", "b.png", "broken.jpg", "placed.jpg",
                                                           "trip/c.png"]
    assert view.result.path == str(folder / "b.png")
    first = (bytes(view.picture.value), view.status.value)   # the widget holds its bytes as a memoryview
    assert first[0].startswith(b"\x89PNG") and html.escape(view.result.summary()) in first[1]

    view.choice.value = str(folder / "trip" / "c.png")                 # a pick in the list
    expected = placed.predict(folder / "trip" / "c.png")[0]
    assert view.result.summary() == expected.summary()
    assert bytes(view.picture.value).startswith(b"\x89PNG") and bytes(view.picture.value) != first[0]
    assert html.escape(expected.summary()) in view.status.value and "the image alone" in view.status.value

    view.choice.value = str(folder / "broken.jpg")                     # one sentence, no traceback
    assert view.result is None and bytes(view.picture.value) == b""
    assert "broken.jpg: not an image" in view.status.value and "pick another image" in view.status.value
    assert not matplotlib.pyplot.get_fignums()                          # every figure drawn is closed

    view.folder.value = str(folder / "trip")                           # another folder: its first image
    assert [label for label, _ in view.choice.options] == ["c.png"] and view.result.path.endswith("c.png")
    view.folder.value = str(folder / "nowhere")
    assert view.result is None and "is not a folder" in view.status.value


def test_the_view_gives_the_place_typed_or_the_photos_exif_and_refuses_what_is_not_degrees(placed, folder):
    view = browse(placed, folder, image=folder / "a.png")
    alone = bytes(view.picture.value)
    view.lat.value = "45"
    view.lon.value = "-90"
    expected = placed.predict(folder / "a.png", lat=45.0, lon=-90.0)[0]
    assert view.result.biome_probs == pytest.approx(expected.biome_probs)
    assert view.result.biome == "temperate_deciduous_forest" and "(typed)" in view.status.value
    assert bytes(view.picture.value) != alone

    view.lon.value = "west"
    assert "the longitude 'west' is not a number of degrees" in html.unescape(view.status.value)
    view.lon.value = "200"
    assert "not within -180..180 degrees" in view.status.value
    view.lon.value = "-90"
    view.lat.value = ""
    assert "a longitude alone places nothing" in view.status.value
    view.lon.value = ""                                                 # empty: the photo's own GPS, if any
    assert view.result.lat is None and "none in the photo" in view.status.value

    view.choice.value = str(folder / "placed.jpg")
    assert (view.result.lat, view.result.lon) == (45.0, 90.0) and "EXIF GPS" in view.status.value
    assert view.result.biome == "temperate_grassland"


def test_the_view_answers_an_uploaded_file(placed, folder):
    view = browse(placed, folder, image=folder / "a.png")
    data = (folder / "trip" / "c.png").read_bytes()
    view.upload.value = ({"name": "mine.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                          "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert view.result.path == "mine.png"
    assert view.result.summary() == placed.predict(folder / "trip" / "c.png")[0].summary()
    view.choice.value = str(folder / "b.png")                          # a pick in the list leaves the upload
    assert view.result.path == str(folder / "b.png")


def test_without_a_model_the_view_is_one_sentence(capsys):
    assert browse(None, ".") is None
    assert capsys.readouterr().out.strip() == "no model is loaded: see the message of the cell that loads it"
