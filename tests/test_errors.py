"""Error gallery: the worst false accepts and false rejects at a threshold, unseen people only."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st

from lab.measure.errors import disagreements, unseen_test_index, worst_errors


def test_worst_errors_are_the_closest_impostors_and_farthest_genuine_pairs():
    # 1-D: identity 0 at 0.0 and 0.9, identity 1 at 0.5 and 1.0, identity 2 (seen) at 0.01
    emb = np.array([[0.0], [0.9], [0.5], [1.0], [0.01]])
    labels = np.array([0, 0, 1, 1, 2])
    is_test = np.array([True, True, True, True, True])
    seen = np.array([False, False, False, False, True])
    accepts, rejects = worst_errors(emb, labels, is_test, "l2", threshold=0.45, is_seen=seen)
    # impostor pairs below 0.45: (1, 3) at 0.1, (1, 2) at 0.4, both people 0 and 1: the worst
    # of them once; the seen image 4 is left out
    assert [(a.first, a.second) for a in accepts] == [(1, 3)]
    assert [a.energy for a in accepts] == pytest.approx([0.1])
    # genuine pairs above 0.45: (0, 1) at 0.9, (2, 3) at 0.5
    assert [(r.first, r.second) for r in rejects] == [(0, 1), (2, 3)]
    assert worst_errors(emb, labels, ~is_test, "l2", 0.45) == ([], [])


def test_disagreements_split_the_pairs_by_which_model_is_right():
    # Student: 1-D embeddings, threshold 0.45. Reference: 1-D descriptors, threshold 0.6.
    emb = np.array([[0.0], [0.9], [0.5], [1.0], [0.3]])
    ref = np.array([[0.0], [0.1], [2.0], [2.2], [5.0]])
    labels = np.array([0, 0, 1, 1, 2])
    seen = np.array([False, False, False, False, True])
    index = unseen_test_index(np.ones(5, bool), seen)
    assert list(index) == [0, 1, 2, 3]
    student_wrong, reference_wrong, counted = disagreements(
        emb, ref[index], labels, index, "l2", threshold=0.45, reference_threshold=0.6)
    # pairs: (0,1) same, E 0.9 reject (wrong), d 0.1 accept (right) -> student errs
    #        (1,3) diff, E 0.1 accept (wrong), d 2.1 reject (right) -> student errs
    #        (2,3) same, E 0.5 reject (wrong), d 0.2 accept (right) -> student errs
    #        (0,2) diff, E 0.5 reject (right), d 2.0 reject (right) -> agree
    #        (1,2) diff, E 0.4 accept (wrong), d 1.9 reject (right) -> student errs
    #        (0,3) diff, both reject (right) -> agree
    assert counted.pairs == 6 and counted.reference_right == 4 and counted.student_right == 0
    assert reference_wrong == []
    # one row per pair of people, the surest mistake first: (0,1) is 0.45 past, (1,3) 0.35
    assert [(r.first, r.second) for r in student_wrong] == [(0, 1), (1, 3), (2, 3)]
    assert all(not r.student_right for r in student_wrong)
    assert student_wrong[1].same is False and student_wrong[1].distance == pytest.approx(2.1)
    # Swap the roles: the reference at a threshold of 3 accepts every impostor pair; the
    # student at 0.95 rejects only (0, 3), rightly
    _, reference_wrong, counted = disagreements(emb, ref[index], labels, index, "l2", 0.95, 3.0)
    assert {(r.first, r.second) for r in reference_wrong} == {(0, 3)}
    assert all(r.student_right and not r.same for r in reference_wrong)


@pytest.mark.slow
def test_energies_page_shows_the_error_gallery(run_root):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from lab.core.config import RunConfig
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    st.cache_resource.clear()
    st.cache_data.clear()
    train_run(RunConfig(dataset="digits", network="mlp", embedding_dim=8, epochs=1,
                        test_identities=3, val_identities=2, p_identities=5, k_images=4,
                        steps_per_epoch=4, seed=3), store=RunStore(run_root))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"),
                           default_timeout=120)
    at.switch_page("app_pages/energies.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Error gallery" in s.value for s in at.subheader)
    text = " ".join(m.value for m in at.markdown)
    assert "Worst false accepts" in text and "Worst false rejects" in text
    # digits are no faces: the reference model is not asked, and the page says why
    assert "Where the student and the reference model disagree" in text
    assert any("(digits) is not one" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_face_folder_run_shows_where_the_student_and_the_reference_disagree(run_root,
                                                                              tmp_path):
    """A folder dataset (the path a teacher's own face photos take; synthetic faces written as
    PNG stand in for them, no real photo in the tests): the toggle asks the reference model
    about every test photo and the page counts and shows the disagreements."""
    from pathlib import Path

    from PIL import Image
    from streamlit.testing.v1 import AppTest

    from lab.core.config import RunConfig
    from lab.data.synthetic import make_synthetic_faces
    from lab.faces.reference import ReferenceModel
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    ok, why = ReferenceModel.available()
    if not ok:
        pytest.skip(why)
    faces = make_synthetic_faces(num_identities=10, images_per_identity=4, image_size=48)
    folder = tmp_path / "photos"
    for k, (image, label) in enumerate(zip(faces.images, faces.labels, strict=True)):
        person = folder / f"person{int(label):02d}"
        person.mkdir(parents=True, exist_ok=True)
        pixels = (image.permute(1, 2, 0).numpy() * 255).astype("uint8")
        Image.fromarray(pixels).save(person / f"{k}.png")
    st.cache_resource.clear()
    st.cache_data.clear()
    train_run(RunConfig(dataset="folder", data_dir=str(folder), network="mlp", image_size=16,
                        embedding_dim=8, epochs=1, test_identities=3, val_identities=2,
                        p_identities=5, k_images=4, steps_per_epoch=4, seed=3),
              store=RunStore(run_root))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"),
                           default_timeout=180)
    at.switch_page("app_pages/energies.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    toggle = at.toggle(key="errors_reference")
    assert "the 12 test photos" in toggle.label
    toggle.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    counted = [c.value for c in at.caption if c.value.startswith("Of the ")]
    assert counted and "Of the 66 pairs of test photos" in counted[0], counted
    text = " ".join(m.value for m in at.markdown)
    assert "The student errs, the reference is right" in text
    assert "The student is right, the reference errs" in text
