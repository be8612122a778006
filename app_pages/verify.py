"""Verify a pair: two photos in, "same person?" out, with the reasons shown (issue 6).

Presentation only: decoding, detection, cropping and the decision are in lab.views.verify /
lab.faces.photos. Uploads stay in memory (UploadedFile.getvalue()); each photo is decoded and
searched for faces once, kept in st.session_state by its file_id, so moving the FAR slider only
redraws.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageDraw

import ui
from lab.core.limits import GALLERY_MAX_PHOTOS
from lab.faces.photos import PhotoError, TinyFaceError, too_small_for_a_face
from lab.faces.reference import ReferenceModel
from lab.measure import trust
from lab.views import verify as V
from lab.viz.energies import energy_histogram
from lab.viz.style import COLORS
from ui import icons

PHOTO_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "pgm", "tif", "tiff"]
FARS = [1e-1, 1e-2, 1e-3]
PHOTOS_KEY = "verify_photos"  # file_id -> PreparedPhoto
RESULTS_KEY = "verify_results"  # (run, photos, choices) -> VerifyResult (energy does not move)
REFERENCE_KEY = "verify_reference"  # (photos, choices) -> (ReferenceVerdict | None, note)
GALLERY_KEY = "verify_gallery"
KEEP = 12  # photos / results kept per browser session
BAD_INPUT = (PhotoError, ValueError, RuntimeError, OSError, MemoryError)


def _remember(store_key: str, key, value):
    cache = st.session_state.setdefault(store_key, {})
    cache[key] = value
    while len(cache) > KEEP:
        cache.pop(next(iter(cache)))
    return value


def prepared(upload, name: str) -> V.PreparedPhoto:
    """Decode + detect once per upload (keyed by Streamlit's file_id), in memory only."""
    cache = st.session_state.setdefault(PHOTOS_KEY, {})
    key = (upload.file_id, name)
    if key not in cache:
        with st.spinner(f"Looking for faces in {name} ..."):
            _remember(PHOTOS_KEY, key, V.prepare_photo(upload.getvalue(), name))
    return cache[key]


def with_boxes(photo: V.PreparedPhoto, chosen: int | None) -> Image.Image:
    """The photo, at most 480 px wide, with every face boxed and numbered (chosen in orange)."""
    image = photo.image.convert("RGB")
    scale = min(1.0, 480 / image.width)
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    elif image.width < 240:  # AT&T's 92x112: enlarge so the box is visible
        scale = 240 / image.width
        image = image.resize((240, round(image.height * scale)), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for k, box in enumerate(photo.faces):
        colour = COLORS.get("accent", "#d9480f") if k == chosen else "#1c7ed6"
        x0, y0 = box.x * scale, box.y * scale
        x1, y1 = (box.x + box.w) * scale, (box.y + box.h) * scale
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=3 if k == chosen else 2)
        draw.text((x0 + 4, y0 + 2), str(k + 1), fill=colour)
    return image


def photo_slot(slot: str, column) -> tuple[V.PreparedPhoto | None, int, bool, str]:
    """One upload slot: file or camera, the photo with its faces, the face / whole-image
    choice. Returns (prepared photo or None, face index, use the whole image, file id)."""
    name = f"photo {slot}"
    with column:
        st.subheader(f"Photo {slot}")
        camera = st.toggle("Use the camera", key=f"camera_on_{slot}",
                           help="Take the photo with this device's camera instead of a file.")
        if camera:
            upload = st.camera_input(f"Photo {slot} from the camera", key=f"camera_{slot}")
        else:
            upload = st.file_uploader(f"Photo {slot}", type=PHOTO_TYPES, key=f"upload_{slot}",
                                      help="JPEG, PNG, WebP, BMP, PGM or TIFF; one face ideally.")
        if upload is None:
            st.caption("Waiting for a photo.")
            return None, 0, False, ""
        photo = prepared(upload, name)
        if not photo.ok:
            st.error(photo.error)
            return None, 0, False, ""
        faces = photo.faces
        index = 0
        if len(faces) > 1:
            index = st.selectbox(
                f"{len(faces)} faces found: which one?", list(range(len(faces))),
                format_func=lambda k: f"face {k + 1}" + (" (the largest)" if k == 0 else ""),
                key=f"face_{slot}")
        # Read before the warnings below, so they go as soon as the box is ticked.
        whole = bool(st.session_state.get(f"whole_{slot}", False))
        too_small = too_small_for_a_face(photo.image)
        if whole:
            if too_small:
                st.error(too_small)
        elif not faces:
            st.warning(f"No face found in {name}. Use a well-lit, front-facing photo, or tick "
                       "'Use the whole image' below to compare a centred square crop instead.")
        elif faces[index].tiny:
            try:
                V.choose_face(faces, index, photo=name)
            except TinyFaceError as error:
                st.warning(f"{error} Or tick 'Use the whole image' below.")
        whole = st.checkbox(
            "Use the whole image (centred crop)", key=f"whole_{slot}",
            help="Skip the detector: right for photos already cropped to the face, like "
                 "AT&T's, which is how the run saw its training images.")
        shown = None if whole else index
        width, height = photo.image.size
        detector = faces.detector or "no detector"
        st.image(with_boxes(photo, shown), width=240,
                 caption=f"{width}×{height} px · {len(faces)} face(s) found by {detector}"
                         + (" · whole image used" if whole else f" · face {index + 1} used"))
        if (not faces and not whole) or (whole and too_small):
            return None, 0, False, ""
        if faces and not whole and faces[index].tiny:
            return None, 0, False, ""
        return photo, index, whole, upload.file_id


def channel_notes(photos: list[V.PreparedPhoto], channels: int) -> None:
    for slot, photo in zip("AB", photos, strict=True):
        colour = photo.image.mode != "L"
        if channels == 1 and colour:
            st.info(f"This run was trained on grayscale images: the colour photo {slot} is "
                    "converted to grayscale (its luminance) before it is embedded.")
        elif channels == 3 and not colour:
            st.info(f"This run was trained on colour images: the grayscale photo {slot} is "
                    "copied into all three channels. Expect a less reliable answer.")


def verdict_line(same: bool, who: str, caveat: str = "") -> None:
    """The verdict; `caveat` (lab.measure.trust.verdict_caveat) says how far to trust it, in the
    line."""
    tail = f" {caveat}" if caveat else ""
    if same:
        st.markdown(f"## :green[✓ Same person]{tail}\n{who}")
    else:
        st.markdown(f"## :red[✗ Different people]{tail}\n{who}")


def reference_verdict(photos, ids, choice, whole):
    """(ReferenceVerdict | None, note), asked once per pair of photos and choices."""
    key = (ids, choice, whole)
    cache = st.session_state.setdefault(REFERENCE_KEY, {})
    if key not in cache:
        try:
            with st.spinner("Asking the reference model ..."):
                _remember(REFERENCE_KEY, key, V.reference_for_pair(
                    photos[0], photos[1], face_choice=choice, use_whole_image=whole))
        except BAD_INPUT as error:
            _remember(REFERENCE_KEY, key, (None, str(error)))
    return cache[key]


def reference_panel(photos, ids, choice, whole) -> None:
    st.markdown("#### Reference model")
    verdict, note = reference_verdict(photos, ids, choice, whole)
    if verdict is None:
        st.info(f"The reference model is not available: {note} The student's model works "
                "without it.")
        return
    verdict_line(verdict.same, f"{ReferenceModel.name}, trained on about 3 million faces")
    cols = st.columns(2)
    cols[0].metric("Distance (L2)", f"{verdict.distance:.3f}")
    cols[1].metric("Its threshold", f"{verdict.threshold:g}",
                   help="dlib's documented threshold: same person when the distance ≤ 0.6.")
    st.caption(ReferenceModel.citation)


def student_panel(run, photos, ids, choice, whole, far: float, presenter: bool) -> None:
    st.markdown(f"#### Your model · {run.name}")
    try:
        channels, image_size = V.input_shape_for_run(run)
        with st.spinner("Computing the run's validation energies (once per run) ..."):
            energies = V.run_energies(run)
            threshold = V.threshold_for_run(run, far)
    except BAD_INPUT as error:
        st.error(f"This run cannot verify photos here: {error}")
        return
    channel_notes(photos, channels)
    key = (run.id, str(run.path), ids, choice, whole)
    cache = st.session_state.setdefault(RESULTS_KEY, {})
    if key not in cache:
        try:
            with st.spinner("Embedding both faces ..."):
                _remember(RESULTS_KEY, key, V.verify_pair(
                    photos[0], photos[1], V.embedder_for_run(run), channels=channels,
                    image_size=image_size, energy=run.config.energy, threshold=threshold,
                    face_choice=choice, use_whole_image=whole,
                    pipeline=run.config.pipeline))
        except BAD_INPUT as error:
            st.error(str(error))
            return
    result = cache[key]
    same = bool(result.energy <= threshold)  # the energy is fixed; only the threshold moves
    crops = st.columns(2)
    for column, slot, crop, chosen in zip(crops, "AB", result.crops, result.chosen,
                                          strict=True):
        how = "whole image (centred crop)" if chosen is None else f"face {chosen + 1}"
        seen = input_words(result, channels, run.config.pipeline, whole=chosen is None)
        column.image(crop, caption=f"Photo {slot}: {how}, exactly as the network sees it: "
                                   f"{seen}", width=160, clamp=True)
    found = trust_of(run, result, far)
    reference, _ = reference_verdict(photos, ids, choice, whole)
    caveat = trust.verdict_caveat(same, found["student_calibrated"],
                                  found["trained_on_real_faces"],
                                  None if reference is None else reference.same)
    for name, check in found["out_of_distribution"].items():
        if check["unusual"]:
            st.warning(f"Photo {name} is unlike this run's training images: "
                       + "; ".join(check["reasons"]) + ". The threshold was not measured on "
                       "photos like it, so the verdict below is uncalibrated here.")
    verdict_line(same, f"E = {result.energy:.3f} {'≤' if same else '>'} threshold "
                       f"{threshold:.3f} (FAR {far:g})", caveat)
    st.caption(f"Where the threshold comes from: "
               f"{trust.threshold_source(run, far, found['calibration'])['text']}.")
    cols = st.columns(2)
    cols[0].metric(f"Energy E ({result.energy_kind})", f"{result.energy:.3f}")
    cols[1].metric(f"Threshold at FAR {far:g}", f"{threshold:.3f}",
                   help=f"The largest energy at which at most {100 * far:g} % of impostor "
                        f"pairs are accepted, on the run's {energies.source}.")
    for note in result.notes:
        st.caption(note)
    fig = energy_histogram(
        energies.genuine, energies.impostor, threshold=threshold,
        pair_energy=result.energy,
        title=f"Why: this pair among the run's pairs of {energies.source}",
        energy_label=f"energy E ({run.config.energy})", presenter=presenter, height=360)
    ui.show_figure(fig, f"{run.id}-verify", key="verify-hist")
    st.caption(f"Genuine (same person) and impostor pairs of the run's {energies.source}, never "
               "used to train the weights. The threshold is where the impostor side is cut at "
               "the chosen FAR: pairs left of it are accepted as the same person.")
    if not presenter:
        timings = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in result.timings.items())
        st.caption(f"Detector: {result.detector}. Time: {timings}.")


def input_words(result, channels: int, pipeline: str, whole: bool = False) -> str:
    """"48×48 px, grey, aligned + Tan & Triggs": what the crops shown are (``whole``: the
    photo's centred square, no face crop, which a whole-image run's caption said it was)."""
    crop = result.crops[0]
    size = f"{crop.shape[1]}×{crop.shape[0]} px" if pipeline != "none" else "before resizing"
    if whole and pipeline == "none":
        return f"{size}, {'grey' if channels == 1 else 'colour'}"
    light = {"none": "whole-image run: detected face crop", "aligned": "aligned",
             "aligned+hist": "aligned, histogram-equalised", "aligned+clahe": "aligned, CLAHE",
             "aligned+tantriggs": "aligned, Tan & Triggs light-normalised"}
    return f"{size}, {'grey' if channels == 1 else 'colour'}, {light.get(pipeline, pipeline)}"


def trust_of(run, result, far: float) -> dict:
    """lab.measure.trust's assessment, with the run's calibration computed once per run."""
    calibration = None
    try:
        with st.spinner("Calibrating on the run's validation faces (once per run) ..."):
            calibration = trust.calibrate(run)
    except BAD_INPUT as error:
        st.caption(f"No out-of-distribution check: the run's dataset cannot be loaded here "
                   f"({error}).")
    found = trust.assess(run, result, far, calibration)
    found["calibration"] = calibration
    return found


def pair_tab(run, far: float, presenter: bool) -> None:
    left, right = st.columns(2)
    slots = [photo_slot("A", left), photo_slot("B", right)]
    if any(slot[0] is None for slot in slots):
        st.info("Two usable photos are needed: upload (or take) them above.")
        return
    photos = [slot[0] for slot in slots]
    choice = (slots[0][1], slots[1][1])
    whole = (slots[0][2], slots[1][2])
    ids = (slots[0][3], slots[1][3])
    st.divider()
    student, reference = st.columns([3, 2], gap="large")
    with student, st.container(key="verify-student"):
        if run is None:
            st.info("No trained run to ask: the reference model answers alone.")
        else:
            student_panel(run, photos, ids, choice, whole, far, presenter)
    with reference, st.container(key="verify-reference"):
        reference_panel(photos, ids, choice, whole)


def gallery_tab(run, far: float) -> None:
    st.caption("One probe photo against photos of known people: each person is named after "
               "the file (\"ada_2.jpg\" is ada), scored by their closest photo, best first.")
    if run is None:
        st.info("The gallery search needs a trained run: train one first.")
        return
    probe = st.file_uploader("Probe: who is this?", type=PHOTO_TYPES, key="gallery_probe")
    people = st.file_uploader("Known people (several photos each is fine)", type=PHOTO_TYPES,
                              accept_multiple_files=True, key="gallery_people")
    whole = st.checkbox("Use the whole images (photos already cropped to the face)",
                        key="gallery_whole")
    if probe is None or not people:
        st.info("Upload a probe photo and at least one photo of a known person.")
        return
    if len(people) > GALLERY_MAX_PHOTOS:
        st.warning(f"{len(people)} photos uploaded; the first {GALLERY_MAX_PHOTOS} are used.")
        people = people[:GALLERY_MAX_PHOTOS]
    try:
        channels, image_size = V.input_shape_for_run(run)
        threshold = V.threshold_for_run(run, far)
    except BAD_INPUT as error:
        st.error(f"This run cannot verify photos here: {error}")
        return
    key = (run.id, probe.file_id, tuple(p.file_id for p in people), whole)
    cache = st.session_state.setdefault(GALLERY_KEY, {})
    if key not in cache:
        try:
            with st.spinner(f"Comparing the probe with {len(people)} photos ..."):
                _remember(GALLERY_KEY, key, V.search_gallery(
                    probe.getvalue(), [(V.gallery_name(p.name), p.getvalue()) for p in people],
                    V.embedder_for_run(run), channels=channels, image_size=image_size,
                    energy=run.config.energy, threshold=threshold, top=5,
                    use_whole_image=whole, pipeline=run.config.pipeline))
        except BAD_INPUT as error:
            st.error(str(error))
            return
    probe_crop, matches, skipped = cache[key]
    for reason in skipped:
        st.warning(f"Skipped {reason}")
    if not matches:
        st.error("None of the known people's photos could be used.")
        return
    columns = st.columns(len(matches) + 1)
    columns[0].image(probe_crop, caption="probe", width=120, clamp=True)
    for column, match in zip(columns[1:], matches, strict=False):
        mark = "✓" if match.energy <= threshold else "✗"
        column.image(match.crop, caption=f"{mark} {match.name}: E = {match.energy:.3f}",
                     width=120, clamp=True)
    best = matches[0]
    if best.energy <= threshold:
        st.success(f"Best match: **{best.name}** (E = {best.energy:.3f} ≤ threshold "
                   f"{threshold:.3f} at FAR {far:g}).")
    else:
        st.warning(f"Nobody is close enough: the best, {best.name}, has E = {best.energy:.3f} "
                   f"> threshold {threshold:.3f} at FAR {far:g}. An unknown person?")


st.title(f"{icons.VERIFY} Verify a pair")
st.caption("Two photos in, \"same person?\" out: the model embeds each face and measures the "
           "energy E between the two embeddings. It answers \"same\" when E is at most a "
           "threshold — a choice, set here by the false accept rate you can live with.")
st.caption(f"{icons.LOCK} Photos are processed in memory and never written to disk.")
presenter = ui.presenter()

info, run = ui.pick_run("Model (a trained run)", key="verify_run", prefer=trust.photo_order)
if run is not None:
    if trust.saw_real_faces(run.config):
        st.caption(f"This run learnt from {trust.dataset_words(run.config)} "
                   f"(face pipeline: {run.config.pipeline}). Runs best suited to photos are "
                   "listed first: a face dataset, then the lowest validation EER.")
    else:
        st.warning(f"This run never saw a real face: it learnt from "
                   f"{trust.dataset_words(run.config)}. Its verdicts on photos are "
                   "uncalibrated; pick a run trained on faces (AT&T, Olivetti, LFW or your "
                   "own folder) above, or train one.")
if run is None and info is None:
    ok, why = ReferenceModel.available()
    st.caption("Meanwhile the reference model can answer alone." if ok
               else f"The reference model is not installed either: {why}")
far = st.select_slider(
    "False accept rate (FAR): share of impostor pairs the threshold lets through",
    options=FARS, value=V.DEFAULT_FAR, key="verify_far",
    format_func=lambda f: f"{f:g} ({100 * f:g} %)")

pair, gallery = st.tabs(["Two photos", "Gallery: who is this?"])
with pair:
    pair_tab(run, far, presenter)
with gallery:
    gallery_tab(run, far)
