"""lab.measure.trust: the out-of-distribution check, the threshold's source, the run best for
photos."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from lab.core.config import RunConfig
from lab.data.splits import split_for_config
from lab.measure import trust
from lab.views import verify


def info(dataset: str, eer: float | None, status: str = "done", name: str = ""):
    return SimpleNamespace(name=name or dataset, status=status, config=RunConfig(dataset=dataset),
                           metrics={} if eer is None else {"val": {"eer": eer}})


def test_photo_order_prefers_real_faces_then_lowest_validation_eer():
    runs = [info("synthetic", 0.01, name="newest synthetic"), info("att", 0.09, name="att bad"),
            info("digits", 0.0), info("att", 0.04, name="att good"),
            info("att", 0.01, status="diverged", name="att diverged"), info("folder", None)]
    order = [r.name for r in trust.photo_order(runs)]
    assert order == ["att good", "att bad", "folder", "digits", "newest synthetic",
                     "att diverged"]


def test_verdict_words_say_how_far_to_trust_them():
    assert trust.verdict_words(True, True, True, True) == "same person"
    assert "uncalibrated here" in trust.verdict_words(True, False, True, None)
    assert "never saw a real face" in trust.verdict_words(False, False, False, None)
    words = trust.verdict_words(True, True, True, False)
    assert "the reference model disagrees: it says different people" in words


@pytest.mark.slow
def test_out_of_distribution_fires_on_a_photo_unlike_training_quiet_on_unseen_att(
        att_dir, run_root):
    from lab.faces.rephoto import rephotograph
    from lab.learn.runs import RunStore
    from lab.learn.training_run import train_run

    config = RunConfig(dataset="att", data_dir=str(att_dir), loss="arcface", energy="cosine",
                       margin=0.5, image_size=32, epochs=4, extra={"width": 8}, device="cpu")
    run, _ = train_run(config, RunStore(run_root))
    run = RunStore(run_root).load(run.id)
    calibration = trust.calibrate(run)
    channels, size = verify.input_shape_for_run(run)
    embed_fn = verify.embedder_for_run(run)
    split = split_for_config(config, 40)

    def check(photo: bytes) -> dict:
        result = verify.verify_pair(photo, (att_dir / "s1" / "1.pgm").read_bytes(), embed_fn,
                                    channels=channels, image_size=size, energy=config.energy,
                                    threshold=0.5, use_whole_image=True)
        return calibration.check(result.embeddings, result.inputs)[0]

    # Unseen people's AT&T photos, whole (as this pipeline-"none" run saw its own images).
    unseen = [check((att_dir / f"s{person + 1}" / f"{k}.pgm").read_bytes())
              for person in split.test for k in (2, 7)]
    assert sum(c["unusual"] for c in unseen) <= 2, [c["reasons"] for c in unseen]
    # The same kind of face, re-photographed into a room: unlike anything it trained on.
    scenes = [check(rephotograph(Image.open(att_dir / f"s{person + 1}" / "3.pgm"), person))
              for person in split.test[:4]]
    assert all(c["unusual"] for c in scenes), scenes
    result = verify.verify_pair(rephotograph(Image.open(att_dir / "s2" / "3.pgm"), 1),
                                (att_dir / "s2" / "4.pgm").read_bytes(), embed_fn,
                                channels=channels, image_size=size, energy=config.energy,
                                threshold=0.5, use_whole_image=True)
    found = trust.assess(run, result, 0.01, calibration)
    assert found["out_of_distribution"]["A"]["unusual"]
    assert not found["student_calibrated"] and "uncalibrated here" in found["verdict"]
    assert found["threshold_source"]["validation_people"] == len(split.val) == 5
    assert "5 validation people of AT&T" in found["threshold_source"]["text"]
