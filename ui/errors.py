"""The Energies page's error gallery (the search is lab.measure.errors)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from lab.measure.errors import worst_errors
from lab.views.run_view import nearest_neighbours
from lab.viz.maps import image_grid
from lab.viz.style import COLORS

NEIGHBOURS = 2


def error_gallery(run, history, round_index: int, threshold: float, images,
                  presenter: bool = False) -> None:
    """Worst false accepts and false rejects at ``threshold``: both photos, the energy, and each
    photo's nearest neighbours (blue: same person, vermillion: another)."""
    embeddings = history.at(round_index)
    accepts, rejects = worst_errors(embeddings, history.labels, history.is_test,
                                    run.config.energy, threshold, is_seen=history.is_seen)
    if images is None:
        st.caption("The images of this run's dataset are not available here.")
        return
    for title, errors, empty in (
            ("Worst false accepts: two people taken for one", accepts,
             "No impostor pair is accepted at this threshold."),
            ("Worst false rejects: one person taken for two", rejects,
             "No genuine pair is rejected at this threshold.")):
        st.markdown(f"**{title}**")
        if not errors:
            st.caption(empty)
            continue
        for k, error in enumerate(errors):
            picks = [error.first, error.second]
            captions = [f"id {history.labels[error.first]}", f"id {history.labels[error.second]}"]
            colours: list[str | None] = [None, None]
            for who, name in ((error.first, "left"), (error.second, "right")):
                near = [(o, e) for o, e in nearest_neighbours(
                    embeddings, who, run.config.energy, NEIGHBOURS + 1)
                    if o not in (error.first, error.second)][:NEIGHBOURS]
                for other, e in near:
                    picks.append(other)
                    captions.append(f"near {name}: E {e:.2f}")
                    colours.append(COLORS["genuine"] if history.labels[other] ==
                                   history.labels[who] else COLORS["impostor"])
            st.plotly_chart(image_grid(
                np.asarray(images)[picks], captions, columns=len(picks),
                title=f"{error.kind}: E = {error.energy:.3f} (threshold {threshold:.3f})",
                border_colors=colours, presenter=presenter), width="stretch",
                key=f"error-{error.kind}-{k}")


@st.cache_data(max_entries=8, show_spinner=False)
def _reference_descriptors(config_json: str, indices: tuple[int, ...]) -> np.ndarray:
    """The reference model's descriptors of these dataset images, loaded at the reference's
    size through the run's own loader (same order, same centre crop), kept per run."""
    from lab.core.config import RunConfig
    from lab.data import load_for_config
    from lab.faces.reference import REFERENCE_IMAGE_SIZE, describe_images, shared_reference

    config = RunConfig.from_json(config_json)
    faces = load_for_config(config.replace(image_size=REFERENCE_IMAGE_SIZE))
    return describe_images(shared_reference(), faces.images[list(indices)].numpy())


def reference_disagreements(run, history, round_index: int, threshold: float, images,
                            presenter: bool = False) -> None:
    """Face datasets: the unseen test pairs where the student (at ``threshold``) and the
    reference model (at its own 0.6) answer differently, both photos and both distances."""
    from lab.data import DatasetError
    from lab.faces.reference import FACE_DATASETS, ReferenceModel
    from lab.measure.errors import disagreements, unseen_test_index

    st.markdown("**Where the student and the reference model disagree**")
    if run.config.dataset not in FACE_DATASETS:
        st.caption(f"The reference model (dlib's ResNet, trained on about 3 million photos of "
                   f"faces) answers for photographed faces only; this run's dataset "
                   f"({run.config.dataset}) is not one, so there is nothing to compare. Train on "
                   "AT&T, Olivetti, LFW or a folder of face photos to see it.")
        return
    ok, why = ReferenceModel.available()
    if not ok:
        st.caption(f"The reference model is not available: {why}")
        return
    if images is None or history.indices is None:
        st.caption("The images of this run's dataset are not available here.")
        return
    index = unseen_test_index(history.is_test, history.is_seen)
    if not st.toggle(f"Ask the reference model about the {len(index)} test photos",
                     key="errors_reference",
                     help="dlib's face descriptor of every test photo, once per run (0.1-0.2 s "
                          "a photo on a 2-core CPU, benchmarks/results/inside-cpu.json), then "
                          "every pair at the reference's own threshold 0.6"):
        return
    try:
        with st.spinner(f"The reference model describes {len(index)} photos ..."):
            descriptors = _reference_descriptors(
                run.config.to_json(), tuple(int(k) for k in history.indices[index]))
    except (DatasetError, OSError, RuntimeError) as error:
        st.caption(f"The reference model could not read this run's photos: {error}")
        return
    student_wrong, reference_wrong, counted = disagreements(
        history.at(round_index), descriptors, history.labels, index, run.config.energy,
        threshold, ReferenceModel.threshold)
    st.caption(f"Of the {counted.pairs:,} pairs of test photos, the two models answer differently "
               f"on {counted.student_right + counted.reference_right:,}: the reference is right "
               f"on {counted.reference_right:,}, the student on {counted.student_right:,} "
               f"(student at its threshold {threshold:.3f} on E ({run.config.energy}); reference "
               f"at its own {ReferenceModel.threshold:g} on the Euclidean distance of its "
               "descriptors, each photo whole, as the student saw it).")

    def verdict(accepted: bool) -> str:
        return "same" if accepted else "different"

    for title, rows, empty in (
            ("The student errs, the reference is right", student_wrong,
             "No pair where only the student errs."),
            ("The student is right, the reference errs", reference_wrong,
             "No pair where only the reference errs.")):
        st.markdown(f"*{title}*")
        if not rows:
            st.caption(empty)
            continue
        columns = st.columns(2)
        for k, row in enumerate(rows):
            truth = "one person" if row.same else "two people"
            colour = COLORS["genuine"] if row.same else COLORS["impostor"]
            fig = image_grid(
                np.asarray(images)[[row.first, row.second]],
                [f"id {history.labels[row.first]}", f"id {history.labels[row.second]}"],
                columns=2, border_colors=[colour, colour], presenter=presenter)
            # words above the photos, not a plotly title: a half-width title was cut
            columns[k % 2].markdown(
                f"**{truth}**: student E {row.energy:.3f} → "
                f"{verdict(row.energy <= threshold)} · reference d {row.distance:.2f} → "
                f"{verdict(row.distance <= ReferenceModel.threshold)}")
            columns[k % 2].plotly_chart(fig, width="stretch",
                                        key=f"disagree-{int(row.student_right)}-{k}")
