"""Photo after photo in a notebook, without editing code: pick one from a folder (or upload one), say
where it was taken if you know, and the answer redraws.

    view = browse(predictor, "data/bluemarble")    # the last line of a cell shows it
    view.choice.value = view.choice.options[3][1]  # what picking from the list does
    view.lat.value, view.lon.value = "49.9", "21.2"
    view.result                                    # the Prediction on show

The figure is ``explain.show_prediction``'s: with a place, the small world map and what the image, the
place and both said. Empty latitude and longitude fields mean the photo's EXIF GPS position, if it has
one; the line above the figure says which place was used and where it came from. A file that cannot be
used, or a field that is not a number of degrees, is one sentence there, never a traceback.

Widgets are ipywidgets (the ``notebooks`` extra), imported when a view is made. The figure is an image
widget's PNG, not an output widget's capture: the words go to the status line, and a notebook executed
headless (papermill) never sees output captured in a widget, whose syncing can stall its run.
"""
from __future__ import annotations

import html
import io
from pathlib import Path

from ..io.images import find_images
from .explain import explain_image, place_text
from .predictor import Predictor

MAX_LISTED = 5000   # images a folder's list offers; a bigger folder is listed up to this, and says so
DPI = 80            # of the figure's PNG: 16 inches wide, 1280 pixels


def browse(predictor: Predictor | None, folder=None, image=None, tta: bool = False, hemisphere: str | None = None,
           lat: float | None = None, lon: float | None = None, footprint_km=None,
           altitude_km: float | None = None) -> Browser | None:
    """An interactive view of ``folder``'s images (searched recursively; None: the folder of ``image``, else
    the current one), ``image`` shown first (default: the first listed); ``lat``, ``lon`` fill the place
    fields; ``footprint_km``, ``altitude_km`` as ``show_prediction`` takes them, for every photo. None, with a
    printed sentence, without a model."""
    if predictor is None:
        print("no model is loaded: see the message of the cell that loads it")
        return None
    if folder is None:
        folder = Path(image).parent if image is not None else Path()
    return Browser(predictor, folder, image, tta, hemisphere, lat, lon, footprint_km, altitude_km)


class Browser:
    """The widgets (``folder``, ``choice``, ``upload``, ``lat``, ``lon``, ``status``, ``picture``) and the answer
    on show (``result``, None when there is none). Displayed by a notebook as its ``widget``."""

    def __init__(self, predictor: Predictor, folder=".", image=None, tta: bool = False,
                 hemisphere: str | None = None, lat: float | None = None, lon: float | None = None,
                 footprint_km=None, altitude_km: float | None = None):
        try:
            import ipywidgets as w
        except ImportError:
            raise ImportError("the interactive view needs ipywidgets: pip install 'biomeseason[notebooks]' "
                              "(make setup installs it)") from None
        self.predictor, self.tta, self.hemisphere = predictor, tta, hemisphere
        self.footprint_km, self.altitude_km = footprint_km, altitude_km
        self.result = None
        self._upload = None   # (name, bytes) of an uploaded file, shown until a listed image is picked
        self._listing = False  # while the list is refilled, its new value draws once, not twice
        wide = w.Layout(width="70%")
        self.folder = w.Text(str(folder), description="folder", continuous_update=False, layout=wide)
        self.choice = w.Dropdown(description="image", layout=wide)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="or upload one")
        hint = "degrees; empty: the photo's EXIF GPS, if any"
        self.lat = w.Text("" if lat is None else f"{lat:g}", description="latitude", placeholder=hint,
                          continuous_update=False)
        self.lon = w.Text("" if lon is None else f"{lon:g}", description="longitude", placeholder=hint,
                          continuous_update=False)
        self.status = w.HTML()
        self.picture = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.widget = w.VBox([self.folder, w.HBox([self.choice, self.upload]), w.HBox([self.lat, self.lon]),
                              self.status, self.picture])
        self._list(image)
        self.choice.observe(self._picked, names="value")
        self.folder.observe(lambda _: self._list(), names="value")
        self.upload.observe(self._uploaded, names="value")
        for field in (self.lat, self.lon):
            field.observe(lambda _: self.show(), names="value")

    def _repr_mimebundle_(self, **kwargs):   # a cell ending in the view shows its widgets
        return self.widget._repr_mimebundle_(**kwargs)

    # -- what the user does
    def _list(self, image=None) -> None:
        """Fill the list from the folder field, ``image`` (or the first) picked; the picture follows."""
        folder = Path(self.folder.value).expanduser()
        found = find_images([folder])[0] if folder.is_dir() else []
        options = [(_label(p, folder), str(p)) for p in found[:MAX_LISTED]]
        wanted = next((value for _, value in options if image is not None and Path(value) == Path(image)), None)
        self._listing = True
        try:
            self.choice.options = options
            self.choice.value = wanted or (options[0][1] if options else None)
        finally:
            self._listing = False
        self._upload = None
        if not options:
            self.result = None
            self.picture.value = b""
            self._say(f"no images in {folder}" if folder.is_dir() else f"{folder} is not a folder: type another")
            return
        self.show()
        if len(found) > MAX_LISTED:
            self.status.value += html.escape(f" ({folder} holds {len(found):,} images; the list offers the first "
                                             f"{MAX_LISTED:,})")

    def _picked(self, change) -> None:
        if change["new"] is not None and not self._listing:
            self._upload = None
            self.show()

    def _uploaded(self, change) -> None:
        files = change["new"]
        if files:
            self._upload = (files[0]["name"], bytes(files[0]["content"]))
            self.show()

    # -- the answer
    def place(self) -> tuple[float | None, float | None]:
        """(lat, lon) typed in the fields, None where empty; ValueError, one sentence, for anything else."""
        values = []
        for field, word, limit in ((self.lat, "latitude", 90), (self.lon, "longitude", 180)):
            text = field.value.strip().replace(",", ".")
            try:
                value = float(text) if text else None
            except ValueError:
                raise ValueError(f"the {word} {field.value!r} is not a number of degrees (e.g. 49.93)") from None
            if value is not None and not -limit <= value <= limit:
                raise ValueError(f"the {word} {value:g} is not within -{limit}..{limit} degrees")
            values.append(value)
        if values[1] is not None and values[0] is None:
            raise ValueError("a longitude alone places nothing: give the latitude too")
        return values[0], values[1]

    def show(self) -> None:
        """Predict the image on show with the place in the fields and redraw the figure."""
        try:
            lat, lon = self.place()
        except ValueError as e:
            self._say(f"{e}; correct it and the answer redraws")
            return
        if self._upload is not None:
            name, source = self._upload
        elif self.choice.value is not None:
            name, source = None, self.choice.value
        else:
            return
        self.result, fig, lines = explain_image(self.predictor, source, tta=self.tta, hemisphere=self.hemisphere,
                                                lat=lat, lon=lon, name=name, retry="pick another image",
                                                footprint_km=self.footprint_km, altitude_km=self.altitude_km)
        self.picture.value = _png(fig) if fig is not None else b""
        self.status.value = self._line(lines, lat)

    def _line(self, lines: list[str], typed_lat: float | None) -> str:
        """The status line's HTML: the answer in bold (its warning, if any), then which place it was given
        and from where; or the sentence saying why there is no answer."""
        r = self.result
        if r is None:
            return html.escape(" ".join(lines))
        if r.lat is not None:
            where = f"given {place_text(r.lat, r.lon)} ({'typed' if typed_lat is not None else 'the photo’s EXIF GPS'})"
        elif typed_lat is not None:
            where = "the image alone (this model has no geographic prior)"
        else:
            where = "the image alone (no place typed, none in the photo’s EXIF)"
        said = "<br>".join(html.escape(line) for line in lines[1:])
        return f"<b>{html.escape(lines[0])}</b><br>{said + '<br>' if said else ''}{where}"

    def _say(self, text: str) -> None:
        self.status.value = html.escape(text)


def _png(fig) -> bytes:
    """The figure as PNG bytes, then closed (it lives on in the picture, not in pyplot's list)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _label(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
